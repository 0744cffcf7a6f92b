"""The second truth of the matrix: the source's own duplicates left out, for every method alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from quality_lab.bench.data import BenchData
from quality_lab.bench.methods import MethodResult
from quality_lab.bench.metrics import WITHOUT_SOURCE_DUPLICATES, evaluate_method
from quality_lab.source_duplicates import dihedral_twin_pairs, source_duplicates


def _pictures(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n)]


def _truth(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["issue_type", "kind", "detail", "index", "partner_index"])


def test_turned_mirrored_and_nudged_twins_are_found_and_other_pictures_are_not():
    rng = np.random.default_rng(1)
    pics = _pictures(5)
    nudged = np.clip(pics[2].astype(int) + rng.integers(-3, 4, pics[2].shape), 0, 255).astype(np.uint8)
    redrawn = pics[3].copy()
    redrawn[:16] = 255 - redrawn[:16]                      # half the picture changed: another picture
    images = pics + [np.ascontiguousarray(np.rot90(pics[0])), np.ascontiguousarray(pics[1][:, ::-1]), nudged, redrawn]
    a, b = dihedral_twin_pairs(images)
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 5), (1, 6), (2, 7)]


def test_a_copy_stands_for_its_source_and_injected_pairs_always_count():
    pics = _pictures(6)
    twin = np.ascontiguousarray(pics[0][::-1])             # the source holds picture 0 twice
    copy = pics[0].copy()
    copy[:4] = 0                                          # an injected copy of 0, far from exact
    leak = pics[4].copy()                                 # an injected leak of 4 in test
    images = pics + [twin, copy, leak]                    # 6 = twin of 0, 7 = copy of 0, 8 = leak of 4
    splits = np.array(["train", "train", "train", "train", "train", "test", "test", "train", "test"])
    truth = _truth([
        dict(issue_type="near_duplicate", kind="AUG", detail="AUG", index=7, partner_index=0),
        dict(issue_type="leakage", kind="LEAK", detail="LEAK-exact", index=8, partner_index=4),
    ])
    found = source_duplicates(images, splits, truth)
    pairs = {(int(k // 9), int(k % 9)) for k in found.pair_keys}
    assert (0, 6) in pairs and (6, 7) in pairs            # the twin, and the copy against the twin
    assert (0, 7) not in pairs and (4, 8) not in pairs    # injected pairs are never left out
    assert found.eval_images.tolist() == [6]              # the twin in test of a train picture; not the listed leak


def _bench(images: list[np.ndarray], splits: np.ndarray, truth: pd.DataFrame) -> BenchData:
    n = len(images)
    paths = np.array([f"{s}/0/img_{i:06d}.png" for i, s in enumerate(splits)], dtype=object)
    return BenchData("toy", Path("."), Path("."), paths, images, np.zeros(n, dtype=object), splits, truth,
                     pd.DataFrame({"sample_id": paths}))


def test_a_real_duplicate_ranked_first_no_longer_counts_against_a_method():
    pics = _pictures(6, seed=3)
    twin = np.ascontiguousarray(np.rot90(pics[1], 2))
    copy = pics[0].copy()
    copy[8:24, 8:24] = 255
    leak = pics[2].copy()
    images = pics + [twin, copy, leak]
    splits = np.array(["train", "train", "train", "train", "train", "test", "test", "train", "test"])
    truth = _truth([
        dict(issue_type="near_duplicate", kind="AUG", detail="AUG", index=7, partner_index=0),
        dict(issue_type="leakage", kind="LEAK", detail="LEAK-exact", index=8, partner_index=2),
    ])
    data = _bench(images, splits, truth)
    # The method lists the source's twin pair first and the injected copy second; in leakage it
    # puts the test twin of a train picture above the injected leak.
    rankings = {"near_duplicate": (np.array([1, 0, 3]), np.array([6, 7, 4])), "leakage": np.array([6, 8, 5])}
    result = MethodResult("m", "-", rankings, 0.0)
    protocol = pd.DataFrame(evaluate_method(result, data)).set_index(["issue_type", "kind"])["AP"]
    second = pd.DataFrame(evaluate_method(result, data, source_duplicates(images, splits, truth)))
    assert set(second.truth) == {WITHOUT_SOURCE_DUPLICATES}
    assert set(second.issue_type) == {"near_duplicate", "leakage"}
    second = second.set_index(["issue_type", "kind"])["AP"]
    assert protocol[("near_duplicate", "all")] == 0.5 and second[("near_duplicate", "all")] == 1.0
    assert protocol[("leakage", "all")] == 0.5 and second[("leakage", "all")] == 1.0


def test_any_image_shape_or_mode_is_compared_and_tiny_sets_pair_nothing():
    pics = _pictures(3, seed=5)
    grey = np.asarray(pics[0].mean(axis=2), dtype=np.uint8)                        # 2-D grey
    rgba = np.dstack([pics[1], np.full(pics[1].shape[:2], 255, np.uint8)])         # 4 channels
    # A smooth picture and the same drawing at twice the size (noise does not survive resampling).
    coarse = Image.fromarray(np.random.default_rng(6).integers(0, 256, (6, 6, 3), dtype=np.uint8))
    pics[2] = np.asarray(coarse.resize((32, 32), Image.BILINEAR))
    larger = np.asarray(coarse.resize((64, 64), Image.BILINEAR))
    images = pics + [grey, rgba, larger, np.zeros((1, 1), np.uint8)]
    a, b = dihedral_twin_pairs(images)
    # The RGBA and the doubled copy are their pictures; the grey one is pics[0] without its colour.
    assert {(1, 4), (2, 5)} <= set(zip(a.tolist(), b.tolist()))
    assert 6 not in set(a.tolist()) | set(b.tolist())
    assert [x.size for x in dihedral_twin_pairs(pics[:1])] == [0, 0]
    assert [x.size for x in dihedral_twin_pairs([])] == [0, 0]
