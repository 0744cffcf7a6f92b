"""Train/eval leakage from duplicate pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quality_assets.knn import build_knn_graph
from quality_assets.scores.leakage import leakage_pairs, leakage_rate, leakage_scores
from quality_assets.scores.near_duplicate import near_duplicate_pairs

from .dense_reference import clustered_vectors, normalise


def test_train_test_copy_is_a_leak() -> None:
    x, _ = clustered_vectors(500, 16, seed=41)
    splits = np.array(["train"] * 400 + ["test"] * 50 + ["val"] * 50, dtype=object)
    x[450] = x[7]  # a val image that is a copy of a train image
    pairs = near_duplicate_pairs(build_knn_graph(x, 8))
    pairs["is_issue"] = pairs["score"] <= 1e-6
    leaks = leakage_pairs(pairs, splits)
    assert leaks[["eval_index", "train_index"]].values.tolist() == [[450, 7]]
    assert leaks["score"].iloc[0] == 0.0
    assert leakage_rate(pairs, splits) == 1 / 100
    s = leakage_scores(pairs, splits, 500)
    assert s[450] == 0.0
    assert np.isnan(s[:400]).all()
    assert np.all(s[400:] <= 1) and np.all(s[400:][np.arange(100) != 50] > 0)


def test_flags_filter_and_eval_to_eval_pairs_do_not_count() -> None:
    pairs = pd.DataFrame(
        {
            "i": [0, 1, 2, 3],
            "j": [4, 5, 6, 7],
            "score": [0.01, 0.02, 0.5, 0.0],
            "is_issue": [True, True, False, True],
        }
    )
    splits = ["train", "test", "train", "test", "VAL", "Test ", "test", "val"]
    leaks = leakage_pairs(pairs, splits)
    assert leaks[["eval_index", "train_index"]].values.tolist() == [[4, 0]]
    assert leakage_rate(pairs, splits) == 1 / 6
    everything = leakage_pairs(pairs, splits, flagged_only=False)
    assert sorted(everything["eval_index"].tolist()) == [4, 6]
    scores = leakage_scores(pairs, splits, 8)
    assert scores[4] == 0.01 and scores[6] == 0.5 and scores[1] == 1.0 and np.isnan(scores[0])


def test_exact_copies_are_closed_transitively() -> None:
    # One identical file in train and in two eval folders; the hash group arrives as a star
    # centred on an eval sample, so the second eval copy only pairs with the first.
    x, _ = clustered_vectors(60, 8, seed=42)
    files = np.array([f"f{i}" for i in range(60)], dtype=object)
    files[[10, 11, 12]] = "same"
    splits = np.array(["test"] * 12 + ["train"] * 48, dtype=object)
    splits[12] = "train"
    pairs = near_duplicate_pairs(build_knn_graph(x, 3), file_sha256=files, hash_group_limit=2)
    star = pairs[pairs["evidence"].astype(str).str.contains("file")]
    assert set(star["i"]) == {10}  # (10, 11), (10, 12): no direct (11, 12) pair
    pairs["is_issue"] = False
    leaks = leakage_pairs(pairs, splits)
    assert sorted(leaks["eval_index"].tolist()) == [10, 11]
    assert set(leaks["train_index"]) == {12}
    assert leakage_scores(pairs, splits, 60)[11] == 0.0


def test_no_eval_samples() -> None:
    pairs = pd.DataFrame({"i": [0], "j": [1], "score": [0.0]})
    assert leakage_rate(pairs, ["train", "train"]) == 0.0
    assert np.isnan(leakage_scores(pairs, ["train", "train"], 2)).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=6, max_value=50),
    seed=st.integers(min_value=0, max_value=10_000),
    cut=st.floats(min_value=0, max_value=1),
)
def test_property_leak_scores_and_rate(n: int, seed: int, cut: float) -> None:
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, 4)))
    splits = rng.choice(["train", "val", "test", "other"], size=n)
    pairs = near_duplicate_pairs(build_knn_graph(x, 3))
    pairs["is_issue"] = pairs["score"] < cut
    s = leakage_scores(pairs, splits, n)
    is_eval = np.isin(splits, ["val", "test"])
    assert np.all(np.isnan(s[~is_eval]))
    assert np.all((s[is_eval] >= 0) & (s[is_eval] <= 1))
    rate = leakage_rate(pairs, splits)
    assert 0.0 <= rate <= 1.0
    leaked = set(leakage_pairs(pairs, splits)["eval_index"].tolist())
    # A leaked eval sample has a flagged pair, so its best score is below the cut.
    assert all(s[e] < cut for e in leaked)
    assert rate == (len(leaked) / is_eval.sum() if is_eval.any() else 0.0)
