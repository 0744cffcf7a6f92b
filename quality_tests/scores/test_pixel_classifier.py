"""Out-of-fold probabilities of a CNN trained on the pixels (`scores.pixel_classifier`): held-out
flips get a low probability for their given label, anchors keep theirs, and runs repeat."""

import numpy as np
import pytest

from quality_assets.consumer_cnn import CnnConfig
from quality_assets.scores.pixel_classifier import out_of_fold_pixel_probabilities
from quality_tests.imagefolders import coloured_images

QUICK = CnnConfig(epochs=12, batch_size=32)
TINY = CnnConfig(epochs=2, batch_size=32)   # what the model learns does not matter to the test


def test_held_out_flips_get_a_low_probability_for_their_given_label():
    images, truth = coloured_images(40)
    given = truth.copy()
    flipped = np.array([5, 50, 100, 115])
    given[flipped] = (truth[flipped] + 1) % 3
    probs = out_of_fold_pixel_probabilities(images, given, 3, config=QUICK)
    assert probs.shape == (120, 3) and np.allclose(probs.sum(1), 1.0)
    self_confidence = probs[np.arange(120), given]
    assert set(np.argsort(self_confidence)[:4]) == set(flipped)
    assert (probs[flipped].argmax(1) == truth[flipped]).all()


def test_anchors_keep_their_label_and_runs_repeat():
    images, codes = coloured_images(20, seed=1)
    anchor = np.zeros(60, dtype=bool)
    anchor[::7] = True
    keys = np.array([f"k{(i * 37) % 60:03d}" for i in range(60)])
    first = out_of_fold_pixel_probabilities(images, codes, 3, anchor=anchor, order_key=keys, config=TINY)
    assert (first[anchor, codes[anchor]] == 1.0).all()
    again = out_of_fold_pixel_probabilities(images, codes, 3, anchor=anchor, order_key=keys, config=TINY)
    np.testing.assert_allclose(first, again, atol=1e-6)
    # The same images in another row order give each image the same probabilities (folds follow keys).
    perm = np.random.default_rng(2).permutation(60)
    moved = out_of_fold_pixel_probabilities(images[perm], codes[perm], 3, anchor=anchor[perm], order_key=keys[perm],
                                            config=TINY)
    np.testing.assert_allclose(moved, first[perm], atol=1e-5)


def test_a_capped_run_reads_rows_through_the_loader_trains_on_the_anchors_and_still_finds_the_flips():
    images, truth = coloured_images(40)
    given = truth.copy()
    flipped = np.array([5, 50, 100, 115])
    given[flipped] = (truth[flipped] + 1) % 3
    anchor = np.zeros(120, dtype=bool)
    anchor[[0, 41, 82]] = True
    asked: list[np.ndarray] = []

    def load(rows):
        asked.append(np.asarray(rows))
        return images[rows]

    probs = out_of_fold_pixel_probabilities(load, given, 3, anchor=anchor, config=QUICK, max_train_rows=60)
    training, predicted = asked[0::2], asked[1::2]   # per fold: its training rows, then its held-out rows
    assert len(training) == 5 and all(50 <= rows.size <= 60 for rows in training)   # of 96
    assert all(set(np.flatnonzero(anchor)) <= set(rows) for rows in training)
    held = np.concatenate(predicted)
    assert sorted(held) == sorted(np.flatnonzero(~anchor))   # every other row once, by a fold that did not train on it
    assert all(not set(p) & set(t) for p, t in zip(predicted, training))
    self_confidence = probs[np.arange(120), given]
    assert set(np.argsort(self_confidence)[:4]) == set(flipped)


def test_bad_input_is_refused_with_a_reason():
    images, codes = coloured_images(4)
    with pytest.raises(ValueError, match="one code per image"):
        out_of_fold_pixel_probabilities(images[:5], codes, 3, config=TINY)
    with pytest.raises(ValueError, match="one code per image"):
        out_of_fold_pixel_probabilities(images[..., 0], codes, 3, config=TINY)
    with pytest.raises(ValueError, match="class codes"):
        out_of_fold_pixel_probabilities(images, codes + 1, 3, config=TINY)
    with pytest.raises(ValueError, match="max_train_rows"):
        out_of_fold_pixel_probabilities(images, codes, 3, config=TINY, max_train_rows=1)
    with pytest.raises(ValueError, match="one per row asked for"):
        out_of_fold_pixel_probabilities(lambda rows: images[:1], codes, 3, config=TINY)
