"""Label errors: intra/extra distance ratio, suggested labels, class confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quality_assets.knn import build_knn_graph
from quality_assets.scores.label_error import (
    class_confusion, label_error_scores, label_noise_ceiling, noise_corrected_confidence,
)

from .dense_reference import (
    clustered_vectors,
    dense_distances,
    dense_label_error,
    normalise,
    spearman,
)


def _flipped(n: int = 1500, seed: int = 1, spread: float = 0.8):
    x, cluster = clustered_vectors(n, 32, n_clusters=8, spread=spread, seed=seed)
    labels = cluster.copy()
    rng = np.random.default_rng(0)
    flip = rng.choice(n, 50, replace=False)
    labels[flip] = (labels[flip] + 1) % 8
    return x, cluster, labels, flip


def test_flipped_label_in_tight_cluster_is_top_error_with_right_suggestion() -> None:
    x, cluster = clustered_vectors(600, 16, n_clusters=4, spread=0.1, seed=31)
    labels = np.array([f"class{c}" for c in cluster], dtype=object)
    victim = int(np.flatnonzero(cluster == 2)[5])
    labels[victim] = "class0"
    out = label_error_scores(build_knn_graph(x, 10), labels)
    assert int(out["score"].idxmin()) == victim
    assert out.loc[victim, "suggested_label"] == "class2"
    assert out.loc[victim, "confidence"] >= 0.9
    assert out.loc[victim, "d_diff"] < out.loc[victim, "d_same"]


def test_graph_ranking_matches_dense_ratio() -> None:
    # 1500 samples, 8 overlapping classes (~190 each), 50 flipped labels. Measured Spearman of
    # the whole ranking vs the dense formula: 0.87 at k=10, 0.95 at k=20, 0.996 at k=40, 1.0
    # at k=80: the clean majority needs an other-label sample within k to be scored exactly.
    x, _, labels, flip = _flipped()
    ref = dense_label_error(dense_distances(x), labels)
    assert spearman(label_error_scores(build_knn_graph(x, 40), labels)["score"], ref) >= 0.99
    # The part a reviewer sees, the top of the ranking, agrees already at k=10.
    small = label_error_scores(build_knn_graph(x, 10), labels)["score"].to_numpy()
    top_graph = set(np.argsort(small, kind="stable")[:50].tolist())
    top_dense = set(np.argsort(ref, kind="stable")[:50].tolist())
    assert len(top_graph & top_dense) >= 45
    assert len(top_graph & set(flip.tolist())) >= 38


def test_unlabelled_samples_get_nan_and_are_not_neighbours() -> None:
    x, cluster = clustered_vectors(300, 8, n_clusters=3, spread=0.1, seed=32)
    labels = pd.Series(cluster.astype(str), dtype=object)
    labels[:30] = None
    labels[30:40] = np.nan
    out = label_error_scores(build_knn_graph(x, 6), labels)
    assert out["score"][:40].isna().all() and out["d_same"][:40].isna().all()
    assert out["score"][40:].notna().all()
    assert out["suggested_label"][:40].notna().all()  # a suggestion is offered anyway
    # Same labels, unlabelled rows dropped from the data: neighbours of labelled samples that
    # are unlabelled must not count as "different label".
    assert (out["score"][40:] > 0.5).mean() > 0.95


def test_exact_duplicates_with_both_labels_score_half() -> None:
    x, _ = clustered_vectors(100, 8, seed=33)
    x[1] = x[0]
    x[2] = x[0]
    labels = np.array(["a"] * 100, dtype=object)
    labels[50:] = "b"
    labels[2] = "b"
    out = label_error_scores(build_knn_graph(x, 5), labels)
    assert out.loc[0, "d_same"] == 0 and out.loc[0, "d_diff"] == 0
    assert out.loc[0, "score"] == 0.5


def test_missing_same_label_uses_kth_distance_bound() -> None:
    x, cluster = clustered_vectors(200, 8, n_clusters=2, spread=0.1, seed=34)
    labels = cluster.astype(str).astype(object)
    lone = int(np.flatnonzero(cluster == 0)[0])
    labels[lone] = "unique"  # no other sample has this label
    graph = build_knn_graph(x, 6)
    out = label_error_scores(graph, labels)
    assert np.isclose(out.loc[lone, "d_same"], graph.distances[lone, -1])
    assert np.isclose(out.loc[lone, "d_diff"], graph.distances[lone, 0])


def test_vote_k_and_multilabel_sets() -> None:
    x, cluster = clustered_vectors(200, 8, n_clusters=2, spread=0.1, seed=35)
    labels = np.where(cluster == 0, "a|b", "c").astype(object)
    labels[::7] = np.where(cluster[::7] == 0, "b|a", "c")  # same set, other order
    out = label_error_scores(build_knn_graph(x, 8), labels, vote_k=3)
    assert set(out["suggested_label"]) <= {"a|b", "c"}
    assert (out["score"] > 0.5).all()


def test_class_confusion_counts_flagged_disagreements() -> None:
    given_ = ["cat", "cat", "dog", "dog", "dog", None, "cat"]
    suggested = ["dog", "dog", "cat", "dog", "cat", "cat", "dog"]
    flagged = [True, True, True, True, False, True, False]
    out = class_confusion(given_, suggested, flagged)
    assert out.to_dict("records") == [
        {"given_label": "cat", "suggested_label": "dog", "count": 2},
        {"given_label": "dog", "suggested_label": "cat", "count": 1},
    ]
    assert class_confusion(["a"], ["a"], [True]).empty


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=6, max_value=60),
    k=st.integers(min_value=1, max_value=5),
    n_labels=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_property_scores_in_unit_interval(n: int, k: int, n_labels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, 4)))
    labels = rng.integers(0, n_labels, size=n).astype(object)
    labels[rng.random(n) < 0.2] = None
    out = label_error_scores(build_knn_graph(x, k), labels)
    s = out["score"].to_numpy(dtype=float)
    unl = pd.isna(labels)
    assert np.all(np.isnan(s[unl]))
    assert np.all((s[~unl] >= 0) & (s[~unl] <= 1))
    conf = out["confidence"].to_numpy(dtype=float)
    ok = ~np.isnan(conf)
    assert np.all((conf[ok] > 0) & (conf[ok] <= 1 + 1e-12))


def test_confidently_contradicted_needs_another_label_at_the_threshold():
    from quality_assets.scores.label_error import confidently_contradicted

    given = np.array(["a", "a", "a", "a", None, "b", "b"], dtype=object)
    suggested = np.array(["b", "b", "a", None, "a", "a", "c"], dtype=object)
    confidence = np.array([0.95, 0.5, 0.99, 0.99, 0.99, np.nan, 0.9])
    np.testing.assert_array_equal(confidently_contradicted(given, suggested, confidence, 0.9),
                                  [True, False, False, False, False, False, True])


def test_the_noise_correction_inverts_a_uniform_label_noise_channel():
    rng = np.random.default_rng(0)
    k, noise = 10, 0.2
    clean = rng.dirichlet(np.full(k, 0.3), size=500)
    clean[:50] = np.eye(k)[rng.integers(0, k, 50)]     # unambiguous samples reach the ceiling
    noisy = (1 - noise) * clean + noise * (1 - clean) / (k - 1)
    confidence = noisy.max(1)
    ceiling = label_noise_ceiling(confidence, quantile=1.0)
    assert ceiling == pytest.approx(1 - noise)
    np.testing.assert_allclose(noise_corrected_confidence(confidence, ceiling, k), clean.max(1), atol=1e-12)
    # No noise: nothing changes; NaN stays NaN; the order is kept.
    np.testing.assert_allclose(noise_corrected_confidence(clean.max(1), 1.0, k), clean.max(1))
    assert np.isnan(noise_corrected_confidence(np.array([np.nan]), 0.8, k)).all()
    corrected = noise_corrected_confidence(confidence, 0.7, k)
    assert (np.diff(corrected[np.argsort(confidence)]) >= 0).all()


def test_the_noise_correction_is_capped_when_the_evidence_is_unsure_everywhere():
    # A ceiling of 0.3 with 2 classes would mean labels worse than coin flips; the cap keeps the
    # implied noise at a quarter, so an unsure 0.6 does not become certain.
    assert noise_corrected_confidence(np.array([0.6]), 0.3, 2)[0] == pytest.approx((0.6 - 0.25) / 0.5)
    assert label_noise_ceiling(np.array([np.nan, np.nan])) == 1.0
    assert label_noise_ceiling(np.array([0.2, 0.4, np.nan]), quantile=1.0) == pytest.approx(0.4)
