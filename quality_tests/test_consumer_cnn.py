"""The CNN training consumer on real images (MNIST digits written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from quality_assets.consumer_cnn import (
    EXPERIMENTS, CnnConfig, consumer_experiments_from_frame, load_images, predict, run_consumer_experiments,
    side_by_side_workers, train_cnn, train_side_by_side,
)

FAST = CnnConfig(epochs=10, batch_size=16)


def _digits(tmp_path: Path, per_class: int = 60, classes: tuple[str, ...] = ("0", "1", "7")):
    from quality_lab.demo_data import load_mnist_5k

    images, labels = load_mnist_5k()
    rng = np.random.default_rng(0)
    paths, out_labels = [], []
    for c in classes:
        for i in rng.choice(np.flatnonzero(labels == c), per_class, replace=False):
            path = tmp_path / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(path)
            paths.append(str(path))
            out_labels.append(c)
    order = rng.permutation(len(paths))
    return [paths[i] for i in order], np.asarray(out_labels, dtype=object)[order]


def test_cnn_learns_digits_from_png_files_well_above_chance(tmp_path):
    paths, labels = _digits(tmp_path, per_class=100)
    images = load_images(paths)
    assert images.shape == (300, 32, 32, 3) and images.dtype == np.uint8   # 28 px digits, fed at 32
    classes = np.unique(labels)
    codes = np.searchsorted(classes, labels)
    model = train_cnn(images[:200], codes[:200], len(classes), FAST, seed=0)
    accuracy = (predict(model, images[200:]) == codes[200:]).mean()
    assert accuracy > 0.85            # chance is 1/3; measured 0.98

    again = train_cnn(images[:200], codes[:200], len(classes), FAST, seed=0)
    assert (predict(again, images[200:]) == predict(model, images[200:])).all()   # deterministic per seed


def test_images_load_as_the_ssl_model_sees_them_turned_deep_and_transparent_ones_too(tmp_path):
    """The networks read the pixels the ingest statistics and the SSL model read (`ssl.data.decode_views`):
    EXIF turn applied, 16-bit scaled (PIL's own conversion saturates it to white), transparent pixels
    on black (not the colour a transparent pixel happens to hold)."""
    from sklearn.datasets import load_sample_image

    from quality_assets.ssl.data import decode_views

    rng = np.random.default_rng(3)
    paths = []
    turned = Image.fromarray(load_sample_image("china.jpg")[:240:10, :400:10])   # 40 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6
    paths.append(tmp_path / "turned.jpg")
    turned.save(paths[-1], quality=95, exif=exif)
    paths.append(tmp_path / "deep.png")
    Image.fromarray((rng.integers(20, 200, (32, 32)) * 257).astype(np.uint16)).save(paths[-1])
    rgba = np.concatenate([np.full((32, 32, 3), 255, np.uint8), np.zeros((32, 32, 1), np.uint8)], axis=2)
    rgba[8:24, 8:24, 3] = 255
    paths.append(tmp_path / "transparent.png")
    Image.fromarray(rgba, "RGBA").save(paths[-1])

    images = load_images([str(p) for p in paths], 32)
    for image, path in zip(images, paths):
        np.testing.assert_array_equal(image, decode_views(path, [(32, 3, Image.BILINEAR)])[0].transpose(1, 2, 0))
    assert np.abs(images[0].astype(int) - np.asarray(turned.transpose(Image.Transpose.ROTATE_270).resize(
        (32, 32), Image.BILINEAR))).mean() < 8      # upright (JPEG noise aside)
    assert 20 <= images[1].mean() <= 200             # scaled, not saturated
    assert images[2][0, 0].tolist() == [0, 0, 0] and images[2][16, 16].tolist() == [255, 255, 255]


def test_networks_trained_side_by_side_are_the_networks_trained_alone(tmp_path):
    paths, labels = _digits(tmp_path, per_class=20)
    images = load_images(paths)
    codes = np.searchsorted(np.unique(labels), labels)
    config = CnnConfig(epochs=2, batch_size=16)

    def weights(model):
        return np.concatenate([v.detach().numpy().ravel() for v in model.state_dict().values() if v.is_floating_point()])

    seeds = [0, 1, 2]
    threads = torch.get_num_threads()
    alone = [weights(train_cnn(images, codes, 3, config, seed=s)) for s in seeds]
    # Three networks on two threads: the builds and the batches must not draw from each other's seeds.
    side_by_side = train_side_by_side(lambda s: weights(train_cnn(images, codes, 3, config, seed=s)), seeds, workers=2)
    for a, b in zip(alone, side_by_side):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])   # the seed decides the network
    assert torch.get_num_threads() == threads       # the process's other torch work keeps its threads


def test_four_experiments_and_the_clean_eval_are_reported_per_seed(tmp_path):
    paths, truth = _digits(tmp_path, per_class=40)
    images = load_images(paths)
    n = len(paths)
    split = np.where(np.arange(n) < 80, "train", np.where(np.arange(n) < 100, "trusted", "test")).astype(object)
    rng = np.random.default_rng(1)
    given = truth.copy()
    flipped = (split != "trusted") & (rng.random(n) < 0.3)
    given[flipped] = np.where(truth[flipped] == "0", "1", "0")
    # The cleaned split relabelled half the flips and dropped the other half (train and test alike).
    action = np.where(flipped, np.where(np.arange(n) % 2 == 0, "relabel", "drop"), "keep")
    frame = pd.DataFrame({"split": split, "original_label": given, "action": action,
                          "label": np.where(action == "relabel", truth, given)})
    result = consumer_experiments_from_frame(frame, images, seeds=(0, 1), config=CnnConfig(epochs=2, batch_size=32))

    assert len(result.per_seed) == 2 * 2 * 3        # seeds x trained models x eval sets
    for train, eval_ in EXPERIMENTS:
        mean, std = result.figure(train, eval_)
        assert 0.0 <= mean <= 1.0 and np.isfinite(std)
    per = result.per_seed.set_index(["seed", "train", "eval"])
    assert per.loc[(0, "raw", "raw"), "n_train"] == 80
    assert per.loc[(0, "cleaned", "raw"), "n_train"] == 80 - int((flipped & (action == "drop"))[:80].sum())
    assert per.loc[(0, "raw", "cleaned"), "n_eval"] == int(((split == "test") & (action != "drop")).sum())
    assert per.loc[(0, "raw", "clean"), "n_eval"] == 20            # the trusted split is the clean eval set
    meta = result.metadata()
    assert {"cnn_raw_train_raw_eval_mean", "cnn_cleaned_train_cleaned_eval_mean", "cnn_cleaned_train_raw_eval_std",
            "cnn_raw_train_cleaned_eval_mean", "cnn_cleaned_train_clean_eval_mean"} <= set(meta)


def test_bad_input_is_refused_with_a_reason(tmp_path):
    paths, labels = _digits(tmp_path, per_class=4)
    images = load_images(paths)
    n = len(paths)
    none = np.zeros(n, dtype=bool)
    with pytest.raises(ValueError, match="eval"):
        run_consumer_experiments(images, labels, labels, ~none, none, seeds=(0,), config=FAST)
    with pytest.raises(ValueError, match="single-label"):
        multi = labels.copy()
        multi[0] = "0|1"
        run_consumer_experiments(images, multi, multi, np.arange(n) < 8, np.arange(n) >= 8, seeds=(0,))
    with pytest.raises(ValueError, match="one value per image"):
        train_cnn(images, np.zeros(n, dtype=np.int64), 3, FAST, margins=np.zeros(n - 1))


def test_an_extra_train_arm_trains_on_its_own_labels_of_the_same_rows(tmp_path):
    """The benchmark's perfect-cleaning reference: the same CNN on the ground-truth train labels."""
    paths, truth = _digits(tmp_path, per_class=40)
    images = load_images(paths)
    n = len(paths)
    is_train, is_eval = np.arange(n) < 90, np.arange(n) >= 90
    given = truth.copy()
    given[:90] = np.where(truth[:90] == "7", "0", truth[:90])      # every train 7 is called 0
    result = run_consumer_experiments(images, given, given, is_train, is_eval, clean_eval=(is_eval, truth),
                                      seeds=(0,), config=FAST, extra_train={"truth": truth})
    clean = result.per_seed[result.per_seed["eval"] == "clean"].set_index("train")["accuracy"]
    assert set(clean.index) == {"raw", "cleaned", "truth"}
    assert clean["raw"] < 0.8                     # no 7 was ever seen as a 7: a third of eval is lost
    assert clean["truth"] > clean["raw"] + 0.2    # measured 0.97 against 0.63
    with pytest.raises(ValueError, match="exists already"):
        run_consumer_experiments(images, given, given, is_train, is_eval, seeds=(0,), config=FAST,
                                 extra_train={"raw": truth})
    with pytest.raises(ValueError, match="one label per sample"):
        run_consumer_experiments(images, given, given, is_train, is_eval, seeds=(0,), config=FAST,
                                 extra_train={"truth": truth[:-1]})


def test_the_workers_setting_caps_the_networks_at_once_and_a_malformed_one_is_refused(monkeypatch):
    monkeypatch.setenv("QUALITY_CNN_WORKERS", "1")
    assert side_by_side_workers(5) == 1
    monkeypatch.setenv("QUALITY_CNN_WORKERS", "two")
    with pytest.raises(ValueError, match="QUALITY_CNN_WORKERS must be a whole number"):
        side_by_side_workers(5)
