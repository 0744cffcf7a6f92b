"""Tests for quality_assets.knn: exactness, the approximate path's recall, edge cases."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quality_assets.knn import (
    KnnGraph,
    build_knn_graph,
    exact_knn,
    fill_short_rows,
    search_rows,
    sort_rows,
    update_knn_graph,
)

try:  # quality_tests is a rootdir, not a package, under pytest's default import mode
    from scores.dense_reference import clustered_vectors, dense_distances, dense_knn, normalise
except ImportError:  # pragma: no cover - when quality_tests is importable as a package
    from quality_tests.scores.dense_reference import (
        clustered_vectors,
        dense_distances,
        dense_knn,
        normalise,
    )


def test_exact_graph_equals_brute_force() -> None:
    x, _ = clustered_vectors(600, 16, n_clusters=6, spread=0.4, seed=3)
    graph = build_knn_graph(x, 10)
    nb, dist = dense_knn(x, 10)
    assert graph.index_kind == "flat" and graph.recall_at_k is None
    assert graph.neighbors.dtype == np.int64 and graph.distances.dtype == np.float32
    np.testing.assert_array_equal(graph.neighbors, nb)
    np.testing.assert_allclose(graph.distances, dist, atol=2e-6)


def test_rows_exclude_self_and_ascend() -> None:
    x, _ = clustered_vectors(300, 8, seed=1)
    graph = build_knn_graph(x, 7).validate()
    assert not np.any(graph.neighbors == np.arange(300)[:, None])
    assert np.all(np.diff(graph.distances, axis=1) >= 0)


def test_exact_duplicates_are_distance_zero_and_self_dropped_by_id() -> None:
    x, _ = clustered_vectors(200, 8, seed=2)
    x[10] = x[20] = x[30] = x[5]  # four identical vectors
    graph = build_knn_graph(x, 5)
    for i in (5, 10, 20, 30):
        others = {5, 10, 20, 30} - {i}
        assert set(graph.neighbors[i, :3].tolist()) == others
        np.testing.assert_allclose(graph.distances[i, :3], 0.0, atol=1e-6)
        assert i not in graph.neighbors[i]
    # Ties at distance 0 are ordered by neighbour position.
    assert graph.neighbors[5, :3].tolist() == [10, 20, 30]


def test_more_identical_vectors_than_k() -> None:
    x, _ = clustered_vectors(60, 8, seed=4)
    x[:20] = x[0]
    for method in ("flat", "hnsw", "ivf"):
        graph = build_knn_graph(x, 5, method=method, recall_sample=20)
        assert not np.any(graph.neighbors == np.arange(60)[:, None])
        assert np.all(graph.distances[:20] <= 1e-6)
        assert np.all(graph.neighbors[:20] < 20)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((10, 4), np.nan, dtype=np.float32), "NaN"),
        (np.ones((10, 4), dtype=np.float32), "L2-normalised"),
        (np.zeros((10, 4), dtype=np.float32), "L2-normalised"),
        (normalise(np.eye(4)), "more samples than k"),
        (np.ones(8, dtype=np.float32), "2-d"),
        (np.ones((10, 4), dtype=np.int64), "floating"),
    ],
)
def test_invalid_inputs_raise_clear_errors(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_knn_graph(bad, 4)


def test_invalid_k_and_method() -> None:
    x, _ = clustered_vectors(50, 4, seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        build_knn_graph(x, 0)
    with pytest.raises(ValueError, match="method"):
        build_knn_graph(x, 3, method="lsh")


def test_float64_input_is_accepted() -> None:
    x, _ = clustered_vectors(80, 6, seed=5)
    g64 = build_knn_graph(x.astype(np.float64), 4)
    g32 = build_knn_graph(x, 4)
    np.testing.assert_array_equal(g64.neighbors, g32.neighbors)


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_recall_is_measured_and_above_bound(method: str) -> None:
    x, _ = clustered_vectors(6000, 32, n_clusters=30, spread=0.3, seed=7)
    graph = build_knn_graph(x, 10, method=method, recall_sample=500, seed=1)
    assert graph.index_kind == method
    # Stated bound: the search parameter is tuned to 0.95 on 500 queries; the reported recall
    # on a disjoint sample must be close, and true recall over all rows must match it.
    assert graph.recall_at_k is not None and graph.recall_at_k >= 0.93
    _, exact_d = exact_knn(x, np.arange(6000), 10)
    true_recall = float((graph.distances <= exact_d[:, -1:] + 1e-6).mean())
    assert true_recall >= 0.93
    assert abs(true_recall - graph.recall_at_k) < 0.03
    assert not np.any(graph.neighbors == np.arange(6000)[:, None])
    assert np.all(np.diff(graph.distances, axis=1) >= 0)
    assert graph.params["recall_sample"] == 500 and graph.params["tuning"]


def test_auto_switches_to_ivf_above_exact_limit() -> None:
    x, _ = clustered_vectors(1500, 16, seed=8)
    assert build_knn_graph(x, 5, exact_limit=2000).index_kind == "flat"
    g = build_knn_graph(x, 5, exact_limit=1000, recall_sample=200)
    assert g.index_kind == "ivf" and g.recall_at_k is not None
    assert g.params["nprobe"] >= 4 and g.params["nlist"] >= 16


def test_threads_are_restored_and_progress_reported() -> None:
    x, _ = clustered_vectors(400, 8, seed=9)
    before = faiss.omp_get_max_threads()
    calls: list[tuple[str, int, int]] = []
    build_knn_graph(x, 5, threads=1, progress=lambda s, d, t: calls.append((s, d, t)))
    assert faiss.omp_get_max_threads() == before
    assert ("search", 400, 400) in calls


def test_search_rows_on_chunk_aligned_ranges_equal_one_search_of_every_row() -> None:
    # What a sharded search relies on: a range that starts on a chunk boundary makes the whole
    # search's faiss calls for its rows, so its rows (the short ones too) are the same bytes.
    x, _ = clustered_vectors(3000, 16, n_clusters=15, spread=0.3, seed=2)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 128, faiss.METRIC_L2)
    index.cp.seed = 0
    index.train(x)
    index.add(x)
    index.nprobe = 1  # small lists probed alone: some rows get fewer than k + 1 results
    nb, dist, short = search_rows(index, x, 0, 3000, 10, "l2", chunk_rows=256)
    assert short.size > 0
    parts = [search_rows(index, x, a, b, 10, "l2", chunk_rows=256) for a, b in [(0, 512), (512, 2304), (2304, 3000)]]
    np.testing.assert_array_equal(np.vstack([p[0] for p in parts]), nb)
    np.testing.assert_array_equal(np.vstack([p[1] for p in parts]), dist)
    np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), short)

    filled_nb, filled_d = nb.copy(), dist.copy()
    fill_short_rows(x, filled_nb, filled_d, short, 10)
    exact_nb, exact_d = exact_knn(x, short, 10)
    np.testing.assert_array_equal(filled_nb[short], exact_nb)
    np.testing.assert_array_equal(filled_d[short], exact_d)
    kept = np.setdiff1d(np.arange(3000), short)
    np.testing.assert_array_equal(filled_nb[kept], nb[kept])
    assert filled_nb.min() >= 0 and not np.any(filled_nb == np.arange(3000)[:, None])


def test_exact_knn_of_some_rows_equals_those_rows_of_the_flat_graph_byte_for_byte() -> None:
    # A shard of the exact graph is searched with exact_knn, not with the graph's flat index.
    x, _ = clustered_vectors(2500, 16, n_clusters=10, spread=0.4, seed=6)
    x[600] = x[700] = x[650]  # ties at distance 0, ordered by position in both
    graph = build_knn_graph(x, 8, chunk_rows=256)
    nb, dist = sort_rows(*exact_knn(x, np.arange(512, 1280), 8, chunk_rows=256))
    np.testing.assert_array_equal(nb, graph.neighbors[512:1280])
    np.testing.assert_array_equal(dist, graph.distances[512:1280])
    assert nb[650 - 512, :2].tolist() == [600, 700]


@pytest.mark.parametrize("method", ["flat", "ivf"])
def test_searching_only_the_first_rows_gives_those_rows_of_the_whole_search(method: str) -> None:
    # The copy searches ask for their images' rows only; the mirrored and cropped entries after
    # them are index entries. Same index, same search parameter, same faiss query blocks: same rows.
    x, _ = clustered_vectors(3000, 16, n_clusters=15, spread=0.3, seed=4)
    whole = build_knn_graph(x, 10, method=method, chunk_rows=256, recall_sample=200)
    first = build_knn_graph(x, 10, method=method, chunk_rows=256, recall_sample=200, queries=700)
    assert first.neighbors.shape == (700, 10)
    np.testing.assert_array_equal(first.neighbors, whole.neighbors[:700])
    np.testing.assert_array_equal(first.distances, whole.distances[:700])
    assert first.neighbors.max() >= 700  # neighbours among every row, not only the searched ones
    if method == "ivf":
        assert first.params["nprobe"] == whole.params["nprobe"] and first.recall_at_k > 0.9
    for bad in (0, 3001):
        with pytest.raises(ValueError, match="queries must be"):
            build_knn_graph(x, 10, method=method, queries=bad)


def test_edges_roundtrip_and_csr() -> None:
    x, _ = clustered_vectors(120, 8, seed=10)
    g = build_knn_graph(x, 6)
    src, dst, rank, dist = g.edges()
    perm = np.random.default_rng(0).permutation(src.size)  # a table comes back unordered
    back = KnnGraph.from_edges(src[perm], dst[perm], rank[perm], dist[perm], 120)
    np.testing.assert_array_equal(back.neighbors, g.neighbors)
    np.testing.assert_array_equal(back.distances, g.distances)
    sym = g.to_csr(symmetric=True, offset=1e-9)
    assert (sym != sym.T).nnz == 0
    assert sym.nnz >= 120 * 6
    with pytest.raises(ValueError):
        KnnGraph.from_edges(src[:-1], dst[:-1], rank[:-1], dist[:-1], 120)


def test_validate_rejects_broken_graphs() -> None:
    nb = np.array([[1], [0], [0]], dtype=np.int64)
    ok = KnnGraph(nb, np.zeros((3, 1), np.float32), "flat", None).validate()
    assert ok.n == 3 and ok.k == 1
    with pytest.raises(ValueError, match="own sample"):
        KnnGraph(np.array([[0], [0], [0]]), np.zeros((3, 1), np.float32), "flat", None).validate()
    with pytest.raises(ValueError, match="ascend"):
        KnnGraph(
            np.array([[1, 2], [0, 2], [0, 1]]),
            np.array([[0.2, 0.1]] * 3, np.float32),
            "flat",
            None,
        ).validate()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=6, max_value=40),
    d=st.integers(min_value=2, max_value=8),
    k=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=10_000),
    dup=st.booleans(),
)
def test_property_exact_graph_is_a_knn_graph(n: int, d: int, k: int, seed: int, dup: bool) -> None:
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, d)))
    if dup:
        x[1] = x[0]
    graph = build_knn_graph(x, k).validate()
    full = dense_distances(x)
    np.fill_diagonal(full, np.inf)
    rows = np.arange(n)[:, None]
    np.testing.assert_allclose(graph.distances, full[rows, graph.neighbors], atol=2e-6)
    # No sample outside a row is closer than the row's farthest member.
    outside = full.copy()
    outside[rows, graph.neighbors] = np.inf
    assert np.all(outside.min(axis=1) >= graph.distances[:, -1] - 2e-6)


def _same_up_to_ties(a: KnnGraph, b: KnnGraph, atol: float = 1e-5) -> None:
    """Equal rows, except that neighbours tied with the k-th distance may be swapped."""
    np.testing.assert_allclose(a.distances, b.distances, atol=atol)
    for row in np.flatnonzero((a.neighbors != b.neighbors).any(axis=1)):
        kth = max(a.distances[row, -1], b.distances[row, -1])
        inside_a = set(a.neighbors[row][a.distances[row] < kth - atol].tolist())
        inside_b = set(b.neighbors[row][b.distances[row] < kth - atol].tolist())
        assert inside_a == inside_b, row


def _subset_graph(x: np.ndarray, keep: np.ndarray, k: int, **kwargs) -> tuple[KnnGraph, np.ndarray]:
    """The graph of x[keep] and each of its nodes' row in x."""
    rows = np.flatnonzero(keep)
    return build_knn_graph(x[rows], k, **kwargs), rows


def test_an_updated_exact_graph_equals_a_rebuild_after_additions() -> None:
    x, _ = clustered_vectors(3000, 16, n_clusters=8, spread=0.4, seed=11)
    x[2990] = x[17]  # a new exact duplicate of an old sample: a tie at distance 0
    rng = np.random.default_rng(0)
    old_keep = rng.random(3000) > 0.03
    old_keep[17], old_keep[2990] = True, False
    old, rows = _subset_graph(x, old_keep, 10)
    updated = update_knn_graph(old, rows, x)
    rebuilt = build_knn_graph(x, 10)
    assert updated.index_kind == "flat" and updated.recall_at_k is None
    assert updated.params["incremental"]["added"] == int((~old_keep).sum())
    assert updated.params["incremental"]["searched"] == int((~old_keep).sum())
    _same_up_to_ties(updated, rebuilt)
    # Old rows gained the new vectors where they are nearer than the old k-th neighbour.
    assert 2990 in updated.neighbors[17].tolist()


def test_an_updated_exact_graph_equals_a_rebuild_after_removals_and_additions() -> None:
    x, _ = clustered_vectors(2000, 12, n_clusters=5, spread=0.5, seed=12)
    rng = np.random.default_rng(1)
    before = rng.random(2000) > 0.02          # old set: rows of x that existed
    removed = before & (rng.random(2000) < 0.02)
    after = ~removed                            # new set: old minus removed, plus the rest
    old, old_rows = _subset_graph(x, before, 8)
    new_rows = np.flatnonzero(after)
    position = np.full(2000, -1)
    position[new_rows] = np.arange(new_rows.size)
    updated = update_knn_graph(old, position[old_rows], x[new_rows])
    rebuilt = build_knn_graph(x[new_rows], 8)
    inc = updated.params["incremental"]
    assert inc["removed"] == int(removed.sum()) and inc["added"] == int((after & ~before).sum())
    assert inc["searched"] > inc["added"]  # old rows that lost a neighbour were searched again
    _same_up_to_ties(updated, rebuilt)


def test_an_updated_ivf_graph_keeps_its_recall_and_measures_it_again() -> None:
    x, _ = clustered_vectors(8000, 16, n_clusters=20, spread=0.3, seed=13)
    keep = np.random.default_rng(2).random(8000) > 0.01
    old, rows = _subset_graph(x, keep, 10, method="ivf", recall_sample=500)
    updated = update_knn_graph(old, rows, x, recall_sample=2000)
    assert updated.index_kind == "ivf" and updated.params["recall_sample"] == 2000
    exact_nb, exact_d = exact_knn(x, np.arange(8000), 10)
    true_recall = float((updated.distances <= exact_d[:, -1:] + 1e-6).mean())
    # The recorded recall is a measurement of this graph, and no worse than the old graph's.
    assert abs(updated.recall_at_k - true_recall) < 0.02
    assert true_recall >= old.recall_at_k - 0.02
    # The new rows were searched exactly.
    new = np.flatnonzero(~keep)
    np.testing.assert_allclose(updated.distances[new], exact_d[new], atol=1e-5)


def test_update_rejects_a_mapping_that_does_not_fit() -> None:
    x, _ = clustered_vectors(100, 8, seed=14)
    old = build_knn_graph(x[:90], 5)
    with pytest.raises(ValueError, match="one entry per old node"):
        update_knn_graph(old, np.arange(80), x)
    with pytest.raises(ValueError, match="distinct rows"):
        update_knn_graph(old, np.zeros(90, dtype=np.int64), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_dot_is_the_gathered_rows_dot_product_across_chunk_boundaries(dtype):
    from quality_assets.knn import pair_dot

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 24)).astype(dtype)
    a, b = rng.integers(0, 50, 23), rng.integers(0, 50, 23)
    expected = np.einsum("ij,ij->i", vectors[a], vectors[b])
    got = pair_dot(vectors, a, b, chunk=7)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert pair_dot(vectors, a[:0], b[:0]).shape == (0,)


def test_the_torch_search_returns_the_faiss_flat_graph(monkeypatch):
    """The GPU path's search (a torch matmul and top-k) run on the CPU: the very graph faiss gives."""
    from quality_assets.knn import KNN_DEVICE_ENV, TorchFlatIP, build_knn_graph

    rng = np.random.default_rng(3)
    x = rng.normal(size=(700, 24)).astype(np.float32)
    x[5] = x[9]  # an exact duplicate: a tie at distance 0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    monkeypatch.setenv(KNN_DEVICE_ENV, "cpu")
    on_faiss = build_knn_graph(x, 10, method="flat")
    assert on_faiss.params["device"] == "cpu"
    monkeypatch.setattr("quality_assets.knn._flat_index", lambda v, device: TorchFlatIP(v, "cpu"))
    monkeypatch.setattr("quality_assets.knn._TORCH_BLOCK_ELEMENTS", 700 * 64)  # several query blocks
    on_torch = build_knn_graph(x, 10, method="flat")
    np.testing.assert_array_equal(on_torch.neighbors, on_faiss.neighbors)
    np.testing.assert_allclose(on_torch.distances, on_faiss.distances, atol=1e-6)
    assert on_faiss.neighbors[5, 0] == 9 and on_faiss.neighbors[9, 0] == 5


def test_the_knn_device_setting_is_checked(monkeypatch):
    from quality_assets.knn import KNN_DEVICE_ENV, knn_device

    monkeypatch.setenv(KNN_DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match=KNN_DEVICE_ENV):
        knn_device()
    monkeypatch.setenv(KNN_DEVICE_ENV, "cuda:1")
    assert knn_device() == "cuda:1"
    monkeypatch.delenv(KNN_DEVICE_ENV)
    assert knn_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)")
def test_on_a_gpu_the_exact_graph_is_the_cpu_graph(monkeypatch):
    from quality_assets.knn import KNN_DEVICE_ENV, build_knn_graph

    rng = np.random.default_rng(4)
    x = rng.normal(size=(5000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    monkeypatch.setenv(KNN_DEVICE_ENV, "cpu")
    on_cpu = build_knn_graph(x, 16, method="flat")
    monkeypatch.setenv(KNN_DEVICE_ENV, "cuda")
    on_gpu = build_knn_graph(x, 16, method="flat")
    assert on_gpu.params["device"] == "cuda"
    assert (on_gpu.neighbors == on_cpu.neighbors).mean() > 0.999  # float sums differ in the last bit
    np.testing.assert_allclose(on_gpu.distances, on_cpu.distances, atol=1e-5)
