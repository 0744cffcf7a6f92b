"""Out-of-fold probabilities of a CNN trained on the pixels (`scores.pixel_classifier`): held-out
flips get a low probability for their given label and the lowest training margins, anchors keep
theirs, and runs repeat. A kept fit
serves a small drop by predicting its new rows only, and is trained again when the data changed more
than the growth fraction, the classes, the label book, the settings or the image size changed."""

import threading

import numpy as np
import pytest

from quality_assets.consumer_cnn import CnnConfig
from quality_assets.scores.pixel_classifier import (fit_pixel_classifier, out_of_fold_pixel_probabilities,
                                                     pixel_probabilities)
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


def test_flips_are_learned_late_their_training_margins_are_the_lowest():
    images, truth = coloured_images(40)
    given = truth.copy()
    flipped = np.array([5, 50, 100, 115])
    given[flipped] = (truth[flipped] + 1) % 3
    margins = np.full(120, 99.0)
    probs = out_of_fold_pixel_probabilities(images, given, 3, config=QUICK, margins=margins)
    # Every row sat in the training rows of four of the five folds: every row has a margin.
    assert np.isfinite(margins).all() and not (margins == 99.0).any()
    assert set(np.argsort(margins)[:4]) == set(flipped)
    assert margins[flipped].max() < 0 < np.median(margins)   # a flip's rival class wins while training
    # Recording the margins does not change what the networks learn.
    np.testing.assert_array_equal(probs, out_of_fold_pixel_probabilities(images, given, 3, config=QUICK))


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
    asked: list[tuple[int, np.ndarray]] = []

    def load(rows):
        asked.append((threading.get_ident(), np.asarray(rows)))
        return images[rows]

    probs = out_of_fold_pixel_probabilities(load, given, 3, anchor=anchor, config=QUICK, max_train_rows=60)
    # Folds train side by side; each thread asks, per fold it fits, for its training rows, then its held-out rows.
    per_thread = [[rows for ident, rows in asked if ident == thread] for thread in dict.fromkeys(i for i, _ in asked)]
    training = [rows for calls in per_thread for rows in calls[0::2]]
    predicted = [rows for calls in per_thread for rows in calls[1::2]]
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


def _keys(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i:04d}" for i in range(n)], dtype=object)


def test_a_kept_fit_predicts_only_a_small_drops_rows_and_finds_its_flip():
    images, codes = coloured_images(40)
    classes = ("red", "green", "blue")
    first = pixel_probabilities(images, codes, classes, _keys("a", 120), config=QUICK)
    assert first.trained and first.reason == "no earlier fit" and first.fit.n_trained == 120
    more, more_truth = coloured_images(3, seed=5)
    given = more_truth.copy()
    given[0] = 2   # a red square filed as blue
    asked: list[np.ndarray] = []
    all_images = np.concatenate([images, more])

    def load(rows):
        asked.append(np.asarray(rows))
        return all_images[rows]

    # The drop in the middle of the rows, the classes named in another order: both are mapped.
    order = ("blue", "red", "green")
    to_order = np.array([1, 2, 0])
    drop = pixel_probabilities(load, to_order[np.concatenate([codes, given])], order,
                               np.concatenate([_keys("a", 120), _keys("b", 9)]), previous=first.fit, config=QUICK)
    assert not drop.trained and drop.n_predicted == 9 and "9 new rows" in drop.reason
    # No network trained on the new rows: they have no margin; the others keep theirs.
    assert np.isfinite(first.margins).all() and np.isnan(drop.margins[120:]).all()
    np.testing.assert_array_equal(drop.margins[:120], first.margins)
    assert drop.fit.margins.shape == (129,) and np.isnan(drop.fit.margins[120:]).all()
    assert [sorted(rows) for rows in asked] == [list(range(120, 129))]   # only the new rows' images
    np.testing.assert_allclose(drop.probabilities[:120], first.probabilities[:, [2, 0, 1]], atol=1e-6)
    self_confidence = drop.probabilities[np.arange(129), to_order[np.concatenate([codes, given])]]
    assert np.argmin(self_confidence) == 120 and drop.probabilities[120].argmax() == 1   # red
    assert drop.fit.keys.size == 129 and drop.fit.n_trained == 120 and drop.fit.folds is first.fit.folds
    # The next run finds the drop's rows in the fit: nothing to predict, no image read.
    again = pixel_probabilities(lambda rows: pytest.fail("no image should be read"),
                                to_order[np.concatenate([codes, given])], order,
                                np.concatenate([_keys("a", 120), _keys("b", 9)]), previous=drop.fit, config=QUICK)
    assert not again.trained and again.n_predicted == 0 and not again.fit_changed
    np.testing.assert_allclose(again.probabilities, drop.probabilities, atol=1e-6)


@pytest.mark.parametrize("change, reason", [
    ("grown", "changed by 25% > 20%"),
    ("relabelled", "changed by 25% > 20%"),
    ("removed", "changed by 25% > 20%"),
    ("new class", "the classes changed"),
    ("label book", "the label book changed"),
    ("settings", "settings changed"),
])
def test_the_folds_train_again_when_the_data_changed_too_much(change, reason):
    images, codes = coloured_images(20, seed=1)
    classes, keys = ("r", "g", "b"), _keys("a", 60)
    fit = fit_pixel_classifier(images, codes, classes, keys, config=TINY)
    anchor, seed = None, 0
    if change == "grown":
        extra, extra_codes = coloured_images(5, seed=2)
        images, codes, keys = (np.concatenate([images, extra]), np.concatenate([codes, extra_codes]),
                               np.concatenate([keys, _keys("b", 15)]))
    elif change == "relabelled":
        codes = codes.copy()
        codes[:15] = (codes[:15] + 1) % 3
    elif change == "removed":
        images, codes, keys = images[15:], codes[15:], keys[15:]
    elif change == "new class":
        codes = codes.copy()
        codes[0] = 3
        classes = classes + ("y",)
    elif change == "label book":
        anchor = np.zeros(len(codes), bool)
        anchor[0] = True
    else:
        seed = 1
    found = pixel_probabilities(images, codes, classes, keys, previous=fit, config=TINY, anchor=anchor, seed=seed)
    assert found.trained and reason in found.reason and found.fit.n_trained == len(codes)


def test_a_fifth_of_the_rows_relabelled_keeps_the_fit_and_each_images_probabilities():
    images, codes = coloured_images(20, seed=1)
    fit = fit_pixel_classifier(images, codes, ("r", "g", "b"), _keys("a", 60), config=TINY)
    relabelled = codes.copy()
    relabelled[:12] = (relabelled[:12] + 1) % 3   # 20%: not more than the fraction
    kept = pixel_probabilities(images, relabelled, ("r", "g", "b"), _keys("a", 60), previous=fit, config=TINY)
    assert not kept.trained and kept.n_predicted == 0
    np.testing.assert_allclose(kept.probabilities, fit.probabilities, atol=1e-6)
    # A margin says how a row's label then was learned: the relabelled rows have none now.
    assert np.isnan(kept.margins[:12]).all()
    np.testing.assert_array_equal(kept.margins[12:], fit.margins[12:])


def test_new_images_of_another_size_than_the_fits_train_it_again():
    images, codes = coloured_images(20, seed=1)
    fit = fit_pixel_classifier(images, codes, ("r", "g", "b"), _keys("a", 60), config=TINY)
    extra, extra_codes = coloured_images(1, seed=2)
    bigger = np.concatenate([np.kron(images, np.ones((1, 2, 2, 1), np.uint8)),
                             np.kron(extra, np.ones((1, 2, 2, 1), np.uint8))])
    found = pixel_probabilities(bigger, np.concatenate([codes, extra_codes]), ("r", "g", "b"),
                                np.concatenate([_keys("a", 60), _keys("b", 3)]), previous=fit, config=TINY)
    assert found.trained and found.reason == "the images' size changed" and found.fit.side == 64
