"""The sharded kNN search's pure parts, without a Ray cluster: the shard plan, one shard's search and
the assembly give the in-process graph; a bad shard setting is refused before any work."""

import faiss
import numpy as np
import pytest

from quality_assets.distributed.engine import RAY_KNN_SHARD_ROWS_ENV
from quality_assets.distributed.knn import (
    assemble_shards, build_knn_graph_on_engine, build_knn_graph_on_ray, search_shard, shard_ranges,
)
from quality_assets.knn import build_knn_graph, fill_short_rows, search_rows, sort_rows
from quality_lab.synthetic_vectors import clustered_vectors


@pytest.mark.parametrize("n, chunk_rows, slots, shard_rows, expected_step", [
    (4000, 256, 2, None, 1024),     # 16 chunks, two shards per slot: 4 shards of 4 chunks
    (4000, 256, 3, None, 768),      # 16 chunks over 6 shards: 3 chunks each, 6 shards
    (4000, 256, 64, None, 256),     # more slots than chunks: a chunk per shard
    (4000, 256, 2, 700, 768),       # a setting is rounded up to whole chunks
    (4000, 256, 2, 10_000, 4000),   # larger than the graph: one shard
    (100, 16_384, 8, None, 100),    # one chunk: one shard
])
def test_shards_cover_the_rows_and_start_on_chunk_boundaries(n, chunk_rows, slots, shard_rows, expected_step):
    ranges = shard_ranges(n, chunk_rows, slots, shard_rows)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(ranges, ranges[1:]))
    assert all(start % chunk_rows == 0 for start, _ in ranges)
    assert max(stop - start for start, stop in ranges) == expected_step


@pytest.mark.parametrize("bad", [0, -5, 2.5, "1000"])
def test_a_bad_shard_size_is_refused(bad):
    with pytest.raises(ValueError, match="shard_rows must be a positive integer"):
        shard_ranges(4000, 256, 2, bad)
    x, _ = clustered_vectors(200, 8, seed=0)
    # Refused before the index is trained or a cluster is joined (the address is never dialled).
    with pytest.raises(ValueError, match="shard_rows must be a positive integer"):
        build_knn_graph_on_ray("127.0.0.1:1", x, 5, shard_rows=bad)


def _one_by_one(index, x, k, chunk_rows, progress):
    """A `knn.SearchFn` that runs the Ray tasks' work here, shard by shard, last shard first."""
    ranges = shard_ranges(x.shape[0], chunk_rows, 3)
    parts = [(start, *search_shard(index, x, start, stop, k, chunk_rows)) for start, stop in reversed(ranges)]
    nb, dist, n_short = assemble_shards(x, k, ranges, parts)
    return nb, dist, {"shards": len(ranges), "short_rows": n_short}


@pytest.mark.parametrize("method", ["flat", "ivf", "hnsw"])
def test_shards_searched_one_by_one_give_the_in_process_graph(method):
    x, _ = clustered_vectors(3000, 16, n_clusters=15, spread=0.3, seed=1)
    x[100] = x[2000] = x[7]  # exact duplicates: ties at distance 0 across shards
    kwargs = {"method": method, "chunk_rows": 128, "recall_sample": 200, "seed": 3}
    in_process = build_knn_graph(x, 10, **kwargs)
    sharded = build_knn_graph(x, 10, search=_one_by_one, **kwargs)
    assert in_process.neighbors.dtype == sharded.neighbors.dtype == np.int64
    assert in_process.distances.dtype == sharded.distances.dtype == np.float32
    np.testing.assert_array_equal(sharded.neighbors, in_process.neighbors)
    np.testing.assert_array_equal(sharded.distances, in_process.distances)
    assert sharded.recall_at_k == in_process.recall_at_k
    assert sharded.params["search"]["shards"] == 6 and "search" not in in_process.params
    timings = ("seconds", "build_seconds", "search_seconds", "search")
    assert ({key: v for key, v in sharded.params.items() if key not in timings}
            == {key: v for key, v in in_process.params.items() if key not in timings})


def test_assembled_shards_fill_the_rows_the_index_left_short_as_the_whole_search_does():
    x, _ = clustered_vectors(3000, 16, n_clusters=15, spread=0.3, seed=2)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 128, faiss.METRIC_L2)
    index.cp.seed = 0
    index.train(x)
    index.add(x)
    index.nprobe = 1  # small lists probed alone leave rows short of k + 1 results
    whole_nb, whole_d, short = search_rows(index, x, 0, 3000, 10, "l2", chunk_rows=256)
    fill_short_rows(x, whole_nb, whole_d, short, 10)
    whole_nb, whole_d = sort_rows(whole_nb, whole_d)
    ranges = shard_ranges(3000, 256, 2)
    parts = [(start, *search_shard(index, x, start, stop, 10, 256)) for start, stop in reversed(ranges)]
    nb, dist, n_short = assemble_shards(x, 10, ranges, parts)
    assert n_short == short.size > 0
    np.testing.assert_array_equal(nb, whole_nb)
    np.testing.assert_array_equal(dist, whole_d)
    with pytest.raises(RuntimeError, match="1 of 4 kNN shards returned no rows"):
        assemble_shards(x, 10, ranges, parts[1:])


def test_without_an_address_the_graph_is_built_in_process_whatever_the_shard_setting(monkeypatch):
    x, _ = clustered_vectors(500, 8, seed=4)
    monkeypatch.setenv(RAY_KNN_SHARD_ROWS_ENV, "lots")
    graph = build_knn_graph_on_engine(x, 6, address=None, method="ivf", recall_sample=100)
    reference = build_knn_graph(x, 6, method="ivf", recall_sample=100)
    np.testing.assert_array_equal(graph.neighbors, reference.neighbors)
    np.testing.assert_array_equal(graph.distances, reference.distances)
    assert "search" not in graph.params
    # With an address, the malformed setting is refused by name before anything connects, even for
    # a graph too small to be sharded.
    with pytest.raises(ValueError, match=RAY_KNN_SHARD_ROWS_ENV):
        build_knn_graph_on_engine(x, 6, address="127.0.0.1:1")
