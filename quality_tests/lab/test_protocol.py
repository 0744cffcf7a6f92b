"""The contamination generators follow the published SelfClean protocol (parameters in
quality_lab/protocol_images.py, with their source lines)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quality_lab import protocol_images as P
from quality_lab.protocol import (
    LEAK_VARIANTS,
    ProtocolRates,
    inject,
    inject_leakage,
    leak_count_for_rate,
)


def _gray(seed: int = 0, size: int = 28) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.uint8)
    img[6:22, 10:18] = rng.integers(120, 256, size=(16, 8))
    return img


def _colour(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    img[10:50, 12:40] = (200, 30, 40)
    img[30:60, 30:60] = rng.integers(0, 256, size=3)
    return img


def test_aug_parameters_stay_in_the_published_ranges():
    rng = np.random.default_rng(0)
    records = []
    for i in range(120):
        rec: dict = {}
        out = P.aug_copy(_gray(i), rng, record=rec)
        assert out.shape == (28, 28) and out.dtype == np.uint8
        records.append(rec)
    angles = [r["angle"] for r in records if r["angle"] is not None]
    assert all(0.0 <= a <= 180.0 for a in angles)
    assert max(angles) > 150 and min(angles) < 30           # the whole 0-180 range is used
    assert 0.35 < len(angles) / len(records) < 0.65         # rotation with p = 0.5 (3 sd at n = 120)
    areas = [r["crop_area_fraction"] for r in records]
    assert all(0.5 - 0.01 <= a <= 0.9 + 0.01 for a in areas)  # RandomResizedCrop scale (0.5, 0.9)
    for key in ("pad", "hflip", "vflip"):
        share = np.mean([r[key] for r in records])
        assert 0.35 < share < 0.65, key
    sigmas = [r["sigma"] for r in records if r["sigma"] is not None]
    assert all(0.1 <= s <= 2.0 for s in sigmas) and 0.35 < len(sigmas) / len(records) < 0.65


def test_crop_box_follows_torchvision_sampling():
    rng = np.random.default_rng(1)
    for _ in range(200):
        left, top, right, bottom = P.random_resized_crop_box(512, 512, rng, (0.5, 0.9), (3 / 4, 4 / 3))
        w, h = right - left, bottom - top
        assert 0 <= left and right <= 512 and 0 <= top and bottom <= 512
        assert 0.49 <= w * h / 512 ** 2 <= 0.91
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02


def test_colour_stays_colour_and_gray_stays_gray():
    rng = np.random.default_rng(2)
    colour, gray = _colour(), _gray()
    for make in (lambda x: P.aug_copy(x, rng), lambda x: P.arte_copy(x, rng, x), lambda x: P.blur_off_topic(x, rng),
                 P.jpeg_copy, lambda x: P.light_crop_copy(x, rng)):
        c = make(colour)
        assert c.shape == colour.shape and c.dtype == np.uint8
        spread = c.astype(int).max(axis=2) - c.astype(int).min(axis=2)
        assert spread.max() > 40          # still colour, not gray replicated in three channels
        g = make(gray)
        assert g.shape == gray.shape
    photo = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert P.foreign_image(photo, colour).shape == colour.shape
    assert P.foreign_image(photo, gray).shape == gray.shape


def test_arte_applies_each_artefact_with_half_probability():
    rng = np.random.default_rng(4)
    applied = []
    for i in range(80):
        rec: dict = {}
        P.arte_copy(_colour(i), rng, _colour(i + 1), record=rec)
        applied.append(rec["applied"])
    for artefact in ("watermark", "colorbar", "mosaic"):
        assert 0.3 < np.mean([artefact in a for a in applied]) < 0.7, artefact


def test_blur_radius_and_the_two_coin_flips():
    rng = np.random.default_rng(5)
    recs = []
    for i in range(60):
        rec: dict = {}
        out = P.blur_off_topic(_colour(i), rng, record=rec)
        recs.append(rec)
    assert all(10.0 <= r["radius"] <= 100.0 for r in recs)
    assert 0.28 < np.mean([r["posterize"] for r in recs]) < 0.72
    assert 0.28 < np.mean([r["solarize"] for r in recs]) < 0.72
    # a radius of at least 10 px at 512 px leaves no edge at 64 px
    assert np.abs(np.diff(out.astype(int), axis=0)).max() < 40


def _dataset(n_per_class: int = 60, classes: int = 5, colour: bool = False):
    images, labels = [], []
    for c in range(classes):
        for i in range(n_per_class):
            images.append(_colour(c * 1000 + i) if colour else _gray(c * 1000 + i))
            labels.append(f"c{c}")
    labels = np.asarray(labels)
    splits = np.where(np.arange(len(labels)) % 5 == 0, "test", "train")
    return images, labels, splits


def test_inject_counts_partners_and_exclusivity():
    images, labels, splits = _dataset()
    n = len(images)
    pool = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(4)]
    rates = ProtocolRates(xr=0.02, blur=0.02, aug=0.03, arte=0.03, lbl=0.02, lblc=0.05, leak=0.03)
    res = inject(images, labels, splits, np.random.default_rng(0), rates, foreign_pool=pool)
    t = res.truth
    counts = t["kind"].value_counts().to_dict()
    assert counts["AUG"] == math.ceil(0.03 * n) and counts["XR"] == math.ceil(0.02 * n)
    assert counts["LBLC"] == 5 * math.ceil(0.05 * 60)           # ceil(fraction x class size), every class
    assert (t[t.kind == "LBLC"].true_label.value_counts() == 3).all()
    assert len(res.images) == n + counts["AUG"] + counts["ARTE"] + counts["XR"] + counts["LEAK"]
    touched = np.concatenate([t["index"].to_numpy(), t["partner_index"].to_numpy()])
    originals = touched[(touched >= 0) & (touched < n)]
    assert len(originals) == len(set(originals.tolist()))      # each original carries one issue at most
    flips = t[t.issue_type == "label_error"]
    assert (flips.given_label != flips.true_label).all()
    assert (res.labels[flips["index"]] == flips.given_label).all()
    copies = t[t.kind.isin(["AUG", "ARTE"])]
    assert (res.labels[copies["index"]] == res.labels[copies["partner_index"]]).all()
    assert (res.splits[copies["index"]] == res.splits[copies["partner_index"]]).all()
    leaks = t[t.kind == "LEAK"]
    assert (res.splits[leaks["index"]] == "test").all() and (res.splits[leaks["partner_index"]] == "train").all()
    assert sorted(leaks.detail.value_counts().tolist()) == [3, 3, 3]
    blur = t[t.kind == "BLUR"]
    assert all(not np.array_equal(res.images[i], images[i]) for i in blur["index"])
    # inputs are never modified
    assert all(np.array_equal(a, b) for a, b in zip(images, _dataset()[0]))


def test_leakage_thirds_exact_jpeg_crop():
    images, labels, splits = _dataset(colour=True)
    res = inject_leakage(images, labels, splits, np.random.default_rng(1), 12)
    t = res.truth
    assert t.detail.value_counts().to_dict() == {v: 4 for v in LEAK_VARIANTS}
    for row in t.itertuples():
        copy, source = res.images[row.index], images[row.partner_index]
        assert copy.shape == source.shape and copy.ndim == 3
        if row.detail == "LEAK-exact":
            assert np.array_equal(copy, source)
        else:
            assert not np.array_equal(copy, source)
            assert np.abs(copy.astype(int) - source.astype(int)).mean() < 40
    n_test = int((splits == "test").sum())
    k = leak_count_for_rate(n_test, 0.024)
    assert abs(k / (n_test + k) - 0.024) < 0.5 / (n_test + k) + 1e-9


def test_rates_are_checked():
    with pytest.raises(ValueError):
        ProtocolRates(aug=1.5)
    assert ProtocolRates().count("AUG", 3000) == 30 and ProtocolRates().count("AUG", 3001) == 31
