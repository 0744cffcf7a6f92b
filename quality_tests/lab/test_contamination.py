"""Tests for the SelfClean-style contamination generators, on real MNIST 5k images in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quality_lab.contamination import (
    GROUND_TRUTH_COLUMNS,
    KIND_ISSUE,
    ContaminationRates,
    add_leakage,
    add_near_duplicates_arte,
    add_near_duplicates_aug,
    add_off_topic_xr,
    arte_copy,
    aug_copy,
    blur_corrupt,
    conform_image,
    contaminate,
    flip_labels_per_class,
    flip_labels_uniform,
    replace_off_topic_blur,
)
from quality_lab.demo_data import load_mnist_5k, load_offtopic_pool

N = 400


@pytest.fixture(scope="module")
def clean() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    images, labels = load_mnist_5k()
    pick = np.random.default_rng(123).choice(len(images), size=N, replace=False)
    splits = np.where(np.arange(N) % 5 == 0, "test", "train")
    return [images[i] for i in pick], labels[pick], splits


@pytest.fixture(scope="module")
def pool() -> list[np.ndarray]:
    return load_offtopic_pool()


RATES = ContaminationRates.from_counts(N, xr=6, blur=5, aug=8, arte=8, lbl=10, lblc=10, leak=6)


@pytest.fixture(scope="module")
def result(clean, pool):
    images, labels, splits = clean
    return contaminate(images, labels, splits, np.random.default_rng(7), RATES, off_topic_pool=pool)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def _copy_corr(copy: np.ndarray, src: np.ndarray) -> float:
    # Flip-aware, because AUG may mirror.
    return max(_corr(copy, src), _corr(copy, src[:, ::-1]))


def _grad_energy(img: np.ndarray) -> float:
    f = img.astype(np.float64)
    return float(np.abs(np.diff(f, axis=0)).sum() + np.abs(np.diff(f, axis=1)).sum())


def test_rates_counts_and_validation() -> None:
    rates = ContaminationRates.from_counts(5000, xr=20, lbl=50)
    assert rates.counts(5000)["XR"] == 20
    assert rates.counts(5000)["LBL"] == 50
    assert rates.counts(5000)["AUG"] == 0
    # A positive rate still yields one sample on a tiny dataset.
    assert rates.counts(10)["XR"] == 1
    with pytest.raises(ValueError):
        ContaminationRates(xr=1.5)
    with pytest.raises(ValueError, match="unknown contamination kind"):
        ContaminationRates.from_counts(100, bogus=3)


def test_contaminate_counts_columns_and_no_overlap(clean, result) -> None:
    images, labels, splits = clean
    gt = result.ground_truth
    assert tuple(gt.columns) == GROUND_TRUTH_COLUMNS
    assert gt["kind"].value_counts().to_dict() == {k: v for k, v in RATES.counts(N).items() if v}
    assert (gt["issue_type"] == gt["kind"].map(KIND_ISSUE)).all()
    appended = sum(RATES.counts(N)[k] for k in ("XR", "AUG", "ARTE", "LEAK"))
    assert len(result.images) == len(result.labels) == len(result.splits) == N + appended
    # One injected issue per sample, and copy sources carry none.
    assert gt["index"].is_unique
    partners = gt.loc[gt["partner_index"] >= 0, "partner_index"]
    assert partners.is_unique
    assert not set(partners) & set(gt["index"])
    # In place kinds hit originals, appended kinds sit after them.
    in_place = gt["kind"].isin(["BLUR", "LBL", "LBLC"])
    assert (gt.loc[in_place, "index"] < N).all()
    assert (gt.loc[~in_place, "index"] >= N).all()
    # Given label is what the dataset now says.
    assert (result.labels[gt["index"].to_numpy()] == gt["given_label"].to_numpy()).all()
    # The clean part of the dataset is untouched, and inputs were not mutated.
    untouched = np.setdiff1d(np.arange(N), gt["index"].to_numpy())
    assert all(np.array_equal(result.images[i], images[i]) for i in untouched)
    assert (result.labels[untouched] == labels[untouched]).all()
    assert (result.splits[:N] == splits).all()


def test_contaminate_is_deterministic(clean, pool, result) -> None:
    images, labels, splits = clean
    again = contaminate(images, labels, splits, np.random.default_rng(7), RATES, off_topic_pool=pool)
    pd.testing.assert_frame_equal(again.ground_truth, result.ground_truth)
    assert all(np.array_equal(a, b) for a, b in zip(again.images, result.images))
    other = contaminate(images, labels, splits, np.random.default_rng(8), RATES, off_topic_pool=pool)
    assert not other.ground_truth["index"].equals(result.ground_truth["index"])


def test_label_errors(result) -> None:
    gt = result.ground_truth
    errs = gt[gt["issue_type"] == "label_error"]
    assert len(errs) == 20
    assert (errs["given_label"] != errs["true_label"]).all()
    lblc = errs[errs["kind"] == "LBLC"]
    # Class-dependent noise: each true class maps to exactly one wrong class.
    assert lblc.groupby("true_label")["given_label"].nunique().max() == 1
    assert lblc["true_label"].nunique() <= 3


def test_near_duplicates_are_close_but_not_identical(result) -> None:
    gt = result.ground_truth
    dups = gt[gt["issue_type"] == "near_duplicate"]
    rng = np.random.default_rng(0)
    copy_corrs = []
    for row in dups.itertuples():
        copy, src = result.images[row.index], result.images[row.partner_index]
        assert copy.shape == src.shape and copy.dtype == np.uint8
        assert not np.array_equal(copy, src)
        assert result.labels[row.index] == result.labels[row.partner_index]
        assert result.splits[row.index] == result.splits[row.partner_index]
        c = _copy_corr(copy, src)
        others = [j for j in rng.choice(N, size=40, replace=False) if j != row.partner_index]
        unrelated = [_copy_corr(copy, result.images[j]) for j in others]
        assert c > np.median(unrelated), (row.kind, c, np.median(unrelated))
        copy_corrs.append(c)
    assert np.median(copy_corrs) > 0.7


def test_leakage_copies_go_from_train_to_test(clean) -> None:
    images, labels, splits = clean
    exact = add_leakage(images, labels, splits, np.random.default_rng(1), 5, exact_fraction=1.0)
    light = add_leakage(images, labels, splits, np.random.default_rng(1), 5, exact_fraction=0.0)
    for res, same in ((exact, True), (light, False)):
        gt = res.ground_truth
        assert (gt["kind"] == "LEAK").all() and len(gt) == 5
        assert (res.splits[gt["index"].to_numpy()] == "test").all()
        assert (res.splits[gt["partner_index"].to_numpy()] == "train").all()
        for row in gt.itertuples():
            assert np.array_equal(res.images[row.index], res.images[row.partner_index]) is same
            assert _corr(res.images[row.index], res.images[row.partner_index]) > 0.8
    too_many = int((splits == "train").sum()) + 1
    with pytest.raises(ValueError, match="LEAK"):
        add_leakage(images, labels, splits, np.random.default_rng(1), too_many)


def test_off_topic(clean, pool, result) -> None:
    images, labels, splits = clean
    gt = result.ground_truth
    classes = set(np.unique(labels))
    for row in gt[gt["issue_type"] == "off_topic"].itertuples():
        img = result.images[row.index]
        assert img.shape == (28, 28) and img.dtype == np.uint8
        assert row.partner_index == -1 and row.true_label == ""
        assert row.given_label in classes
        assert not any(np.array_equal(img, x) for x in images)
    for row in gt[gt["kind"] == "BLUR"].itertuples():
        # Heavy blur wipes out the strokes' edges.
        assert _grad_energy(result.images[row.index]) < 0.3 * _grad_energy(images[row.index])


def test_conform_image_matches_mode_and_size(pool) -> None:
    big_rgb = next(p for p in pool if p.ndim == 3 and p.shape[0] > 100)
    gray = conform_image(big_rgb, (28, 28))
    assert gray.shape == (28, 28) and gray.dtype == np.uint8
    rgb = conform_image(np.zeros((28, 28), np.uint8), (40, 60, 3))
    assert rgb.shape == (40, 60, 3)


def test_generators_work_on_rgb_datasets(pool) -> None:
    rng = np.random.default_rng(3)
    images = [p for p in pool if p.ndim == 3 and p.shape[:2] == (32, 32)]
    labels = np.array([str(i % 4) for i in range(len(images))])
    splits = np.array(["train"] * (len(images) - 6) + ["test"] * 6)
    rates = ContaminationRates(xr=0.1, blur=0.1, aug=0.1, arte=0.1, lbl=0.1, lblc=0.1, leak=0.1)
    res = contaminate(images, labels, splits, rng, rates, off_topic_pool=[p for p in pool if p.ndim == 2])
    assert all(img.shape == (32, 32, 3) for img in res.images)
    assert set(res.ground_truth["kind"]) == set(KIND_ISSUE)


def test_single_generators_respect_candidates(clean, pool) -> None:
    images, labels, splits = clean
    allowed = np.arange(50, 100)
    rng = np.random.default_rng(4)
    for fn in (replace_off_topic_blur, add_near_duplicates_aug, add_near_duplicates_arte, flip_labels_uniform):
        gt = fn(images, labels, splits, rng, 5, candidates=allowed).ground_truth
        used = np.where(gt["partner_index"] >= 0, gt["partner_index"], gt["index"])
        assert np.isin(used, allowed).all(), fn.__name__
    gt = flip_labels_per_class(images, labels, splits, rng, 5, candidates=allowed, n_pairs=2).ground_truth
    assert np.isin(gt["index"], allowed).all()
    xr = add_off_topic_xr(images, labels, splits, rng, len(pool) + 3, pool)
    extra = xr.images[N:]
    # Beyond one pass over the pool, crops keep the off-topic samples distinct.
    assert len({x.tobytes() for x in extra}) == len(extra)


def test_copy_functions_change_pixels(clean) -> None:
    images, _, _ = clean
    rng = np.random.default_rng(5)
    for img in images[:20]:
        assert not np.array_equal(aug_copy(img, rng), img)
        assert not np.array_equal(aug_copy(img, rng, allow_flip=False), img)
        assert not np.array_equal(arte_copy(img, rng, images[-1]), img)
        assert blur_corrupt(img, rng).shape == img.shape


def test_copies_of_flat_images_still_differ() -> None:
    rng = np.random.default_rng(6)
    flat = np.zeros((16, 16), np.uint8)
    assert not np.array_equal(aug_copy(flat, rng), flat)
    assert not np.array_equal(arte_copy(flat, rng, flat), flat)
