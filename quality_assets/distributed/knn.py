"""The kNN graph's search sharded over a Ray cluster (pure Ray code; never imports Dagster).

The driver does what `knn.build_knn_graph` always does up to the search: it checks the vectors,
trains the IVF index on a sample, adds every vector and tunes nprobe on held-out queries. Then,
instead of searching every row itself, it serializes the filled index once
(`faiss.serialize_index`), puts it and the vectors in the object store, and splits the rows into
shards, one Ray task each. A task deserializes the index once per worker process (cached by the
index's object ref), searches its rows with `knn.search_rows` and orders them with `knn.sort_rows`;
the driver writes each shard's rows into place, gives the rows the index left short their exact
search (`knn.fill_short_rows`) and measures the recall as in process. The exact (flat) graph shards
the same way without an index: each task runs `knn.exact_knn` for its rows against every vector.

Shards start on the in-process search's chunk boundaries (whole multiples of `chunk_rows`), so every
faiss call a task makes is one the in-process search makes for the same rows: the graph is the same,
byte for byte (faiss's kernels are not: a block of fewer than 20 queries skips BLAS and rounds
differently, so arbitrary shard boundaries could move a distance by an ulp and reorder a tie).

Memory: each worker process holds one deserialized index (the size of the driver's) plus the
node's shared copy of the vectors; the driver holds the vectors, the index and the graph. A worker
keeps the last index it searched until it searches another graph's or exits.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Any, Iterable, Iterator

import faiss
import numpy as np

from quality_assets.distributed.engine import connect, knn_shard_rows
from quality_assets.knn import (
    KnnGraph,
    ProgressFn,
    build_knn_graph,
    exact_knn,
    fill_short_rows,
    search_rows,
    sort_rows,
)

# Below this many rows the whole graph takes seconds in process (docs/benchmarks/knn_scores.md:
# ~6 CPU-s for IVF at 100k x 128, ~17 CPU-s exact at 50k): little to win, while the index and the
# vectors would still have to reach every node.
RAY_KNN_MIN_ROWS = 100_000
# Two shards per task slot by default: a slow node ends up with one shard less instead of holding
# everyone up, and shards stay large enough that per-task overhead is noise.
_SHARDS_PER_SLOT = 2

# Per worker process: the index of the graph being searched, by its object ref. One entry only, so
# a worker never holds the index of an earlier graph beside the current one.
_INDEX_CACHE: dict[str, Any] = {}


def _check_shard_rows(shard_rows: int | None) -> None:
    if shard_rows is not None and (not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1):
        raise ValueError(f"shard_rows must be a positive integer (rows per Ray task), got {shard_rows!r}")


def shard_ranges(n: int, chunk_rows: int, slots: int, shard_rows: int | None = None) -> list[tuple[int, int]]:
    """(start, stop) row ranges covering [0, n), each a whole number of `chunk_rows` search chunks
    (the last one may end short). shard_rows None: about two shards per task slot; otherwise rows
    per shard, rounded up to whole chunks so that the shards make the in-process faiss calls."""
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    _check_shard_rows(shard_rows)
    n_chunks = math.ceil(n / chunk_rows)
    if shard_rows is None:
        chunks_per_shard = math.ceil(n_chunks / (_SHARDS_PER_SLOT * max(1, int(slots))))
    else:
        chunks_per_shard = math.ceil(shard_rows / chunk_rows)
    step = max(1, chunks_per_shard) * chunk_rows
    return [(start, min(n, start + step)) for start in range(0, n, step)]


def search_shard(index, x: np.ndarray, start: int, stop: int, k: int,
                 chunk_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows start..stop of the graph, tie-ordered, and the rows `index` left short (positions in x).

    index None: the exact graph (`exact_knn` against every vector, as the flat index searches).
    """
    if index is None:
        nb, dist = exact_knn(x, np.arange(start, stop, dtype=np.int64), k, chunk_rows=chunk_rows)
        short = np.empty(0, dtype=np.int64)
    else:
        kind = "ip" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"
        nb, dist, short = search_rows(index, x, start, stop, k, kind, chunk_rows=chunk_rows)
    nb, dist = sort_rows(nb, dist)
    return nb, dist, short


def assemble_shards(x: np.ndarray, k: int, ranges: list[tuple[int, int]],
                    parts: Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
    """The whole graph's rows from `search_shard` results (start, neighbours, distances, short rows),
    arriving in any order; returns neighbours, distances and how many rows needed the exact fill."""
    n = x.shape[0]
    nb = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    short_by_start: dict[int, np.ndarray] = {}
    for start, part_nb, part_dist, short in parts:
        stop = start + part_nb.shape[0]
        nb[start:stop], dist[start:stop] = part_nb, part_dist
        short_by_start[start] = short
    missing = [start for start, _ in ranges if start not in short_by_start]
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(ranges)} kNN shards returned no rows (first at row {missing[0]})")
    # The rows the index left short are searched here, all in one call in row order as in process:
    # the same faiss call, hence the same distances (rare: IVF probing lists that hold too few).
    short = np.concatenate([short_by_start[start] for start, _ in ranges])
    fill_short_rows(x, nb, dist, short, k)
    if short.size:
        nb[short], dist[short] = sort_rows(nb[short], dist[short])
    return nb, dist, int(short.size)


def _index_of(holder: list) -> tuple[Any, bool]:
    """The index behind holder[0] (an object ref: inside a list, Ray hands the task the ref rather
    than the bytes), deserialized only when this process has not already; and whether it was."""
    import ray

    key = holder[0].hex()
    index = _INDEX_CACHE.get(key)
    if index is not None:
        return index, False
    _INDEX_CACHE.clear()
    index = faiss.deserialize_index(ray.get(holder[0]))
    _INDEX_CACHE[key] = index
    return index, True


def _shard_task(holder: list, x: np.ndarray, start: int, stop: int, k: int, chunk_rows: int,
                threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    faiss.omp_set_num_threads(int(threads))  # the task's CPUs, whatever the worker inherited
    index, loaded = _index_of(holder) if holder else (None, False)
    nb, dist, short = search_shard(index, x, start, stop, k, chunk_rows)
    return nb, dist, short, os.getpid(), loaded


def search_on_ray(index, x: np.ndarray, k: int, chunk_rows: int, progress: ProgressFn | None, *,
                  address: str, shard_rows: int | None = None,
                  cpus_per_task: int = 1) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A `knn.SearchFn`: every row of x searched in shards on the Ray cluster at `address`."""
    ray = connect(address)
    n = x.shape[0]
    cluster_cpus = int(ray.cluster_resources().get("CPU", 0))
    slots = max(1, cluster_cpus // cpus_per_task)
    ranges = shard_ranges(n, chunk_rows, slots, shard_rows)
    x_ref = ray.put(x)
    holder: list = []
    index_bytes = 0
    if index is not None:
        blob = faiss.serialize_index(index)
        index_bytes = int(blob.nbytes)
        holder = [ray.put(blob)]
        del blob
    remote = ray.remote(num_cpus=cpus_per_task, max_retries=2)(_shard_task)

    pids: set[int] = set()
    loads = 0

    def finished_shards() -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        nonlocal loads
        # A bounded window of tasks in flight: finished shards wait in the object store only until
        # the driver copies them out, whatever the number of shards.
        window = max(2, _SHARDS_PER_SLOT * slots)
        queue = iter(ranges)
        pending: dict[Any, tuple[int, int]] = {}
        done = 0
        try:
            while True:
                for start, stop in queue:
                    pending[remote.remote(holder, x_ref, start, stop, k, chunk_rows, cpus_per_task)] = (start, stop)
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    start, stop = pending.pop(ref)
                    part_nb, part_dist, short, pid, loaded = ray.get(ref)
                    pids.add(pid)
                    loads += int(loaded)
                    yield start, part_nb, part_dist, short
                    done += stop - start
                    if progress is not None:
                        progress("search", done, n)
        finally:
            for ref in pending:  # a failed shard fails the graph: the others would only burn CPUs
                ray.cancel(ref)

    nb, dist, n_short = assemble_shards(x, k, ranges, finished_shards())
    record = {"engine": "ray", "shards": len(ranges), "shard_rows": max(stop - start for start, stop in ranges),
              "cluster_cpus": cluster_cpus, "cpus_per_task": cpus_per_task, "index_bytes": index_bytes,
              "index_loads": loads, "worker_processes": len(pids), "short_rows": n_short}
    return nb, dist, record


def build_knn_graph_on_ray(address: str, vectors: np.ndarray, k: int = 16, *, shard_rows: int | None = None,
                           cpus_per_task: int = 1, **kwargs: Any) -> KnnGraph:
    """`knn.build_knn_graph` with the search of every row sharded over the Ray cluster at `address`.

    Training, adding and tuning stay on the driver, so the graph equals the in-process one for the
    same arguments; its params["search"] records the engine and the shards. shard_rows: rows per
    task (None: QUALITY_RAY_KNN_SHARD_ROWS, else about two shards per task slot); cpus_per_task:
    CPUs (faiss threads) per task, hence worker processes (each holding the index) per node.
    """
    if not isinstance(cpus_per_task, (int, np.integer)) or cpus_per_task < 1:
        raise ValueError(f"cpus_per_task must be a positive integer, got {cpus_per_task!r}")
    # Checked before the index is trained: a bad setting fails in a second, not after the training.
    _check_shard_rows(shard_rows)
    if shard_rows is None:
        shard_rows = knn_shard_rows()
    search = partial(search_on_ray, address=address, shard_rows=shard_rows, cpus_per_task=int(cpus_per_task))
    return build_knn_graph(vectors, k, search=search, **kwargs)


def build_knn_graph_on_engine(vectors: np.ndarray, k: int = 16, *, address: str | None,
                              min_rows: int = RAY_KNN_MIN_ROWS, **kwargs: Any) -> KnnGraph:
    """The graph on the Ray cluster at `address` when one is given and there are at least `min_rows`
    vectors, else `knn.build_knn_graph` in process (unchanged: address None is the default engine)."""
    if address is None:
        return build_knn_graph(vectors, k, **kwargs)
    # Read even for a graph below the threshold: a bad value fails on the first graph, not on the first big one.
    knn_shard_rows()
    if len(vectors) < min_rows:
        return build_knn_graph(vectors, k, **kwargs)
    return build_knn_graph_on_ray(address, vectors, k, **kwargs)
