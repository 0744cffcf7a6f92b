"""LAD off-topic scores, the two-view off-topic score and the mean kNN distance baseline."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from quality_assets.knn import KnnGraph, build_knn_graph
import pytest

from quality_assets.scores.off_topic import (
    lad_from_merge_tree,
    lad_scores,
    mean_knn_distance_scores,
    off_topic_evidence,
    off_topic_scores,
    robust_z,
)

from .dense_reference import (
    clustered_vectors,
    dense_distances,
    dense_lad,
    dense_mean_knn,
    normalise,
    spearman,
)


def _scipy_tree(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = linkage(squareform(d, checks=False), method="single")
    n = d.shape[0]
    children = z[:, :2].astype(np.int64)
    counts = z[:, 3].astype(np.int64)
    size = np.ones(2 * n - 1)
    size[n:] = counts
    a, b = children[:, 0], children[:, 1]
    swap = (size[a] > size[b]) | ((size[a] == size[b]) & (a > b))
    children = np.where(swap[:, None], children[:, ::-1], children)
    return children, z[:, 2], counts


def test_vectorised_walk_equals_explicit_walk_on_the_same_tree() -> None:
    x, _ = clustered_vectors(700, 16, n_clusters=5, spread=0.4, seed=21)
    d = dense_distances(x)
    np.testing.assert_allclose(lad_from_merge_tree(*_scipy_tree(d)), dense_lad(d), atol=1e-12)


def test_graph_lad_matches_dense_lad() -> None:
    # Eight overlapping clusters, N = 1500: from k = 10 on the kNN graph is connected and holds
    # the MST, and the rankings agree (Spearman 1.0 measured; 0.99 required).
    x, _ = clustered_vectors(1500, 32, n_clusters=8, spread=0.5, seed=1)
    ref = dense_lad(dense_distances(x))
    for k in (10, 20):
        assert spearman(lad_scores(build_knn_graph(x, k)), ref) >= 0.99


def test_far_outlier_ranks_first() -> None:
    # Connected data (overlapping clusters): the graph alone suffices.
    x, _ = clustered_vectors(600, 16, n_clusters=4, spread=0.5, seed=22)
    x[123] = normalise(-x.mean(axis=0, keepdims=True))[0]  # opposite the data
    assert int(np.argmin(lad_scores(build_knn_graph(x, 10)))) == 123
    # Four tight clusters, so the graph falls apart: the vectors place the components.
    y, _ = clustered_vectors(600, 16, n_clusters=4, spread=0.1, seed=22)
    y[123] = normalise(-y.mean(axis=0, keepdims=True))[0]
    assert int(np.argmin(lad_scores(build_knn_graph(y, 10), y))) == 123


def test_disconnected_graph_with_vectors_matches_dense_lad() -> None:
    # Eight separated clusters: at k <= 20 the graph has 7-8 components. Joined at measured
    # distances they reproduce the dense dendrogram; joined blindly they cannot (~0.6).
    x, _ = clustered_vectors(1500, 32, n_clusters=8, spread=0.3, seed=1)
    ref = dense_lad(dense_distances(x))
    graph = build_knn_graph(x, 10)
    assert spearman(lad_scores(graph, x), ref) >= 0.99
    assert spearman(lad_scores(graph), ref) < 0.9


def _with_offtopic_batch(seed: int = 23) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1000)
    x, _ = clustered_vectors(1500, 32, n_clusters=6, spread=0.5, seed=seed)
    center = normalise(rng.standard_normal((1, 32)))
    batch = normalise(center + 0.05 * rng.standard_normal((25, 32)))  # tight, far, together
    xs = np.vstack([x, batch])
    truth = np.arange(1500, 1525)
    return xs, truth


def _precision(scores: np.ndarray, truth: np.ndarray) -> float:
    top = np.argsort(scores, kind="stable")[: truth.size]
    return len(set(top.tolist()) & set(truth.tolist())) / truth.size


def test_lad_finds_an_offtopic_cluster_that_mean_knn_distance_misses() -> None:
    xs, truth = _with_offtopic_batch()
    # k=10: the batch is its own graph component; k=40 (> batch size): its rows reach the main
    # data, the graph is connected and the dendrogram's small-cluster term does the work.
    for k in (10, 40):
        graph = build_knn_graph(xs, k)
        lad_p = _precision(lad_scores(graph), truth)
        assert _precision(lad_scores(graph, xs), truth) >= 0.95
        base_p = _precision(mean_knn_distance_scores(graph), truth)
        assert lad_p >= 0.95, (k, lad_p)
        assert base_p <= 0.2, (k, base_p)


def test_lad_finds_the_cluster_when_the_graph_is_connected_the_dense_way_too() -> None:
    xs, truth = _with_offtopic_batch()
    assert _precision(dense_lad(dense_distances(xs)), truth) >= 0.95


def test_mean_knn_baseline_matches_dense() -> None:
    x, _ = clustered_vectors(500, 16, seed=24)
    graph = build_knn_graph(x, 8)
    np.testing.assert_allclose(
        mean_knn_distance_scores(graph), dense_mean_knn(dense_distances(x), 8), atol=1e-5
    )
    np.testing.assert_allclose(
        mean_knn_distance_scores(graph, k=3), dense_mean_knn(dense_distances(x), 3), atol=1e-5
    )


def test_identical_vectors_and_duplicates_do_not_break_lad() -> None:
    x = normalise(np.ones((20, 4)))
    lad = lad_scores(build_knn_graph(x, 3))
    np.testing.assert_array_equal(lad, np.ones(20))
    y, _ = clustered_vectors(100, 8, seed=25)
    y[:10] = y[0]
    s = lad_scores(build_knn_graph(y, 4))
    assert np.all((s > 0) & (s <= 1))


def test_disconnected_components_join_smallest_last() -> None:
    # Three blobs that share no kNN edge: the walk must reach the smallest one first.
    rng = np.random.default_rng(26)
    blobs = []
    for size, c in ((200, 0), (120, 1), (15, 2)):
        center = np.zeros(8)
        center[c] = 1.0
        blobs.append(normalise(center + 0.02 * rng.standard_normal((size, 8))))
    x = np.vstack(blobs)
    lad = lad_scores(build_knn_graph(x, 5))
    assert set(np.argsort(lad)[:15].tolist()) == set(range(320, 335))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=6, max_value=80),
    k=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_property_scores_in_unit_interval_and_walk_order(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, 5)))
    graph = build_knn_graph(x, k)
    lad = lad_scores(graph)
    base = mean_knn_distance_scores(graph)
    for s in (lad, base):
        assert s.shape == (n,) and np.all(np.isfinite(s))
        assert np.all((s >= 0) & (s <= 1))
    # The last leaf the walk reaches has accumulated the whole area.
    assert np.isclose(lad.max(), 1.0)
    # Scores are cumulative areas along one walk: no two leaves share one unless an area is 0.
    assert np.all(np.diff(np.sort(lad)) >= 0)


def test_graph_built_by_hand_gives_expected_order() -> None:
    # Path 0-1-2 with distances 0.1, 0.1 and an outlier 3 at 0.9 from 2.
    nb = np.array([[1, 2], [0, 2], [1, 0], [2, 1]], dtype=np.int64)
    dist = np.array([[0.1, 0.2], [0.1, 0.1], [0.1, 0.2], [0.9, 0.95]], dtype=np.float32)
    lad = lad_scores(KnnGraph(nb, dist, "flat", None))
    assert int(np.argmin(lad)) == 3
    # Outlier: own rectangle width 1/4 x height 0.9, over root height 0.9 -> 0.25.
    assert np.isclose(lad[3], 0.25)


# --- two-view score: SSL vectors plus a second, correlated "pixel" view ---------------------


def _pixel_view(x: np.ndarray, seed: int) -> np.ndarray:
    """A second view that agrees with x about who is near whom, up to noise (as thumbnails do
    for in-domain images): random projection to 48-d plus noise."""
    rng = np.random.default_rng(seed)
    proj = rng.standard_normal((x.shape[1], 48))
    return normalise(x @ proj + 0.3 * rng.standard_normal((x.shape[0], 48)))


def _rank_of(scores: np.ndarray, i: int) -> int:
    return int(np.flatnonzero(np.argsort(scores, kind="stable") == i)[0]) + 1


def _two_view(x: np.ndarray, p: np.ndarray, k: int = 10):
    return build_knn_graph(x, k), x, build_knn_graph(p, 8), p


def test_collapsed_clump_is_found_by_the_two_view_score_and_missed_by_lad() -> None:
    # 20 samples the encoder squeezes into a clump sitting inside the data, whose pixels are
    # unrelated to each other (what an SSL net does to inputs from another domain).
    rng = np.random.default_rng(31)
    x, _ = clustered_vectors(1500, 32, n_clusters=6, spread=0.5, seed=3)
    truth = np.arange(1500, 1520)
    xs = np.vstack([x, normalise(x[7] + 0.02 * rng.standard_normal((20, 32)))])
    p = _pixel_view(xs, 5)
    p[truth] = normalise(rng.standard_normal((20, 48)))
    graph, _, pixel_graph, _ = _two_view(xs, p)
    assert _precision(off_topic_scores(graph, xs, pixel_graph, p), truth) >= 0.9
    assert _precision(lad_scores(graph, xs), truth) <= 0.1
    assert _precision(mean_knn_distance_scores(graph), truth) <= 0.1
    ev = off_topic_evidence(graph, xs, pixel_graph, p)
    assert np.median(ev["collapse"][truth]) > np.quantile(np.delete(ev["collapse"], truth), 0.99)


def test_outlier_inside_one_of_two_separate_equal_classes_ranks_first() -> None:
    # The LAD weakness: the walk covers the whole first class before the outlier in the second.
    rng = np.random.default_rng(32)
    a, _ = clustered_vectors(200, 32, n_clusters=1, spread=0.2, seed=6)
    b, _ = clustered_vectors(200, 32, n_clusters=1, spread=0.2, seed=7)
    x = np.vstack([a, b])
    x[150] = normalise(x[150] + 1.5 * normalise(rng.standard_normal((1, 32))))[0]
    graph, _, pixel_graph, p = _two_view(x, _pixel_view(x, 8))
    assert _rank_of(off_topic_scores(graph, x, pixel_graph, p), 150) == 1
    assert _rank_of(lad_scores(graph, x), 150) > 150  # documents the weakness the new score fixes


def test_far_batch_and_single_far_outlier_are_still_found() -> None:
    xs, truth = _with_offtopic_batch()
    p = _pixel_view(xs, 9)
    for k in (10, 40):
        graph, _, pixel_graph, _ = _two_view(xs, p, k)
        assert _precision(off_topic_scores(graph, xs, pixel_graph, p), truth) >= 0.95
    y, _ = clustered_vectors(600, 16, n_clusters=4, spread=0.5, seed=22)
    y[123] = normalise(-y.mean(axis=0, keepdims=True))[0]
    graph, _, pixel_graph, p = _two_view(y, _pixel_view(y, 10))
    assert _rank_of(off_topic_scores(graph, y, pixel_graph, p), 123) == 1


def test_in_domain_data_gets_typical_scores_and_no_extremes() -> None:
    # Nothing planted: the scores sit around 0.5 (typical) and none is an extreme.
    x, _ = clustered_vectors(800, 16, n_clusters=4, spread=0.5, seed=33)
    graph, _, pixel_graph, p = _two_view(x, _pixel_view(x, 11))
    s = off_topic_scores(graph, x, pixel_graph, p)
    assert np.all((s > 0) & (s < 1))
    assert 0.35 < np.median(s) < 0.65
    assert s.min() > 0.1


def test_without_a_pixel_view_the_score_is_lad() -> None:
    x, _ = clustered_vectors(300, 16, n_clusters=3, spread=0.5, seed=34)
    graph = build_knn_graph(x, 8)
    np.testing.assert_array_equal(off_topic_scores(graph, x), lad_scores(graph, x))


def test_exact_duplicates_in_both_views_are_not_collapse() -> None:
    # Copies are close in both views: the floor keeps them near "typical", never at the top.
    x, _ = clustered_vectors(500, 16, n_clusters=3, spread=0.5, seed=35)
    x[:12] = x[0]
    p = _pixel_view(x, 12)
    p[:12] = p[0]
    graph, _, pixel_graph, _ = _two_view(x, p)
    ev = off_topic_evidence(graph, x, pixel_graph, p)
    assert np.all(np.isfinite(ev["evidence"]))
    assert np.abs(ev["collapse"][:12]).max() < 1.0
    s = off_topic_scores(graph, x, pixel_graph, p)
    assert not set(np.argsort(s)[:12].tolist()) & set(range(12))


def test_bad_pixel_view_input_is_rejected() -> None:
    x, _ = clustered_vectors(200, 16, n_clusters=2, spread=0.5, seed=36)
    graph = build_knn_graph(x, 8)
    p = _pixel_view(x, 13)
    pixel_graph = build_knn_graph(p, 8)
    with pytest.raises(ValueError, match="together"):
        off_topic_scores(graph, x, pixel_graph=pixel_graph)
    with pytest.raises(ValueError, match="200 samples"):
        off_topic_scores(graph, x, pixel_graph, p[:150])
    bad = p.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        off_topic_scores(graph, x, pixel_graph, bad)
    with pytest.raises(ValueError, match="group_size"):
        off_topic_scores(graph, x, pixel_graph, p, group_size=1)


def test_robust_z_counts_spreads_above_the_bulk_and_survives_ties_and_nan() -> None:
    x = np.concatenate([np.random.default_rng(0).normal(5.0, 2.0, 10_000), [25.0]])
    z = robust_z(x)
    assert abs(float(np.median(z))) < 1e-9 and 9.0 < z[-1] < 11.0  # (25 - 5) / 2
    # Nearly all tied: the MAD is 0 and 5% of the standard deviation is the spread, not 0.
    tied = np.array([0.0] * 99 + [3.0])
    np.testing.assert_allclose(robust_z(tied), tied / (0.05 * tied.std()))
    assert robust_z(np.array([np.nan, 1.0, 2.0, 3.0]))[0] == 0.0  # NaN reads as the median
    assert not robust_z(np.full(5, 7.0)).any() and not robust_z(np.full(3, np.nan)).any()
