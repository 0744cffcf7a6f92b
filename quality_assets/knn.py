"""The shared k-nearest-neighbour graph every score is computed on.

`build_knn_graph` turns L2-normalised float32 vectors into a `KnnGraph`: for each sample the k
nearest *other* samples in ascending cosine distance d = (1 - cos) / 2 (clipped to [0, 1]).

Index choice (``method="auto"``):

* ``flat`` (exact, ``faiss.IndexFlatIP``) up to ``exact_limit`` samples (50k). Its cost is
  N^2 d: ~1 CPU-s at 10k, ~68 CPU-s at 100k, ~1.8 CPU-hours at 1M (128-d).
* ``ivf`` (``faiss.IndexIVFFlat``, L2 on the unit sphere, which orders exactly like cosine)
  beyond: nlist = 4 sqrt(N) rounded to a power of two, k-means on 39 x nlist samples. The
  benchmark in docs/benchmarks/knn_scores.md measured it against HNSW (M=32,
  efConstruction=64) on two cores and clustered 128-d data: at 1M vectors IVF reached
  recall@10 0.987 in 159 CPU-s (83 s wall), HNSW 0.960 in 513 CPU-s (it needed efSearch 136).
  Embeddings of images are clustered, which is what IVF's coarse quantiser exploits; on less
  clustered data the recall-driven tuning below raises nprobe by itself.
  ``method="hnsw"`` stays available.

The approximate search parameter (``efSearch`` for HNSW, ``nprobe`` for IVF) is not guessed: it
is tuned on 500 random queries against exact search until ``recall_target`` + 0.01 is met,
and the recall of the finished graph is then *measured* on a second, disjoint random sample of
``recall_sample`` queries and stored in ``KnnGraph.recall_at_k``. Recall counts a returned
neighbour as correct when its distance is within the exact k-th distance (ties, e.g. exact
duplicate vectors, do not count as misses).

Memory stays O(N k) on top of the index: queries are searched in chunks, and every result row
is reduced to k columns before the next chunk.

The exact search runs on a GPU when this machine has one (``QUALITY_KNN_DEVICE``: ``auto``, the
default, ``cpu``, ``cuda``, ``cuda:N``): faiss-cpu has no GPU index, so the same inner products are a
torch matmul and top-k there (`TorchFlatIP`), rows sorted by (distance, id) as on the CPU.

The search of every row, once the index is built and tuned, can run elsewhere (``search``):
`quality_assets.distributed.knn` shards the rows over a Ray cluster on the same index and returns
the same rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import faiss
import numpy as np
import scipy.sparse as sp
import torch

from quality_assets.ssl.config import device_setting

__all__ = [
    "DEFAULT_EXACT_LIMIT",
    "KnnGraph",
    "ProgressFn",
    "SearchFn",
    "build_knn_graph",
    "exact_knn",
    "fill_short_rows",
    "search_rows",
    "sort_rows",
    "update_knn_graph",
    "update_knn_rows",
]

# Measured in docs/benchmarks/knn_scores.md: exact search grows with N^2 (68 CPU-s at 100k x 128,
# ~17 at 50k); IVF at 100k takes 6 CPU-s with recall 0.988. Below this exact is cheap enough
# that an approximate graph is not worth its recall loss.
DEFAULT_EXACT_LIMIT = 50_000
KNN_DEVICE_ENV = "QUALITY_KNN_DEVICE"
# Similarities held at once by the torch search: a block of queries against every row.
_TORCH_BLOCK_ELEMENTS = 1 << 28
DEFAULT_RECALL_TARGET = 0.95
_NORM_TOLERANCE = 1e-3
_CHUNK_ROWS = 16_384
_TUNE_QUERIES = 500
# Tuning aims this far above the target: 500 queries estimate recall to about +-0.005, and the
# reported figure comes from a different sample.
_TUNE_MARGIN = 0.01

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called as work advances; stages are 'index', 'search', 'recall'."""

SearchFn = Callable[
    [Optional[faiss.Index], np.ndarray, int, int, Optional[ProgressFn]],
    tuple[np.ndarray, np.ndarray, dict[str, Any]],
]
"""search(index, x, k, chunk_rows, progress) -> (neighbors, distances, record): every row of x
searched for its k nearest other rows, tie-ordered by `sort_rows`, as the in-process search gives
them. index is None for the exact graph (search against x itself), else the trained, filled index
with its search parameter set. `record` is stored as the graph's params["search"]."""


@dataclass
class KnnGraph:
    """k nearest other samples per sample, position i = sample i.

    neighbors: int64 [N, k]; row i lists the k nearest samples other than i, nearest first
        (ties in distance broken by neighbour position, so the graph is deterministic).
    distances: float32 [N, k]; cosine distance (1 - cos) / 2 in [0, 1], ascending per row.
    index_kind: "flat" (exact) | "hnsw" | "ivf".
    recall_at_k: measured recall of the rows against exact search (None for flat = exact).
    params: how it was built (index parameters, timings, recall sample size).
    """

    neighbors: np.ndarray
    distances: np.ndarray
    index_kind: str
    recall_at_k: float | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.neighbors.shape[0])

    @property
    def k(self) -> int:
        return int(self.neighbors.shape[1])

    def validate(self) -> "KnnGraph":
        """Raise ValueError when the arrays break the contract; returns self for chaining."""
        nb, dist = self.neighbors, self.distances
        if nb.ndim != 2 or dist.shape != nb.shape:
            raise ValueError(
                f"neighbors {nb.shape} and distances {dist.shape} must both be [N, k]"
            )
        n, k = nb.shape
        if k < 1 or n <= k:
            raise ValueError(f"graph needs N > k >= 1, got N={n}, k={k}")
        if nb.min(initial=0) < 0 or nb.max(initial=0) >= n:
            raise ValueError("neighbor ids must be positions in [0, N)")
        if np.any(nb == np.arange(n)[:, None]):
            raise ValueError("a row lists its own sample as a neighbour")
        if not np.all(np.isfinite(dist)) or dist.min(initial=0) < 0 or dist.max(initial=0) > 1:
            raise ValueError("distances must be finite and in [0, 1]")
        if k > 1 and np.any(np.diff(dist, axis=1) < 0):
            raise ValueError("distances must ascend along each row")
        return self

    def to_csr(self, *, symmetric: bool = False, offset: float = 0.0) -> sp.csr_matrix:
        """Sparse [N, N] distance matrix of the graph's edges (float64).

        `offset` is added to every distance: scipy.sparse.csgraph drops explicit zeros, so an
        exact-duplicate edge (distance 0) would vanish without a small positive offset.
        With ``symmetric=True`` each edge appears in both directions (where both directions
        exist the two values agree up to float rounding; the larger is kept).
        """
        n, k = self.neighbors.shape
        rows = np.repeat(np.arange(n, dtype=np.int64), k)
        cols = self.neighbors.ravel()
        vals = self.distances.ravel().astype(np.float64) + offset
        mat = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
        if symmetric:
            # Entries present in one direction only survive (the other side is an implicit 0).
            mat = mat.maximum(mat.T).tocsr()
        return mat

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat edge arrays (source, neighbour, rank 1 = nearest, distance) for storage."""
        n, k = self.neighbors.shape
        src = np.repeat(np.arange(n, dtype=np.int64), k)
        rank = np.tile(np.arange(1, k + 1, dtype=np.int32), n)
        return src, self.neighbors.ravel().copy(), rank, self.distances.ravel().copy()

    @classmethod
    def from_edges(
        cls,
        source: np.ndarray,
        neighbor: np.ndarray,
        rank: np.ndarray,
        distance: np.ndarray,
        n: int,
        *,
        index_kind: str = "flat",
        recall_at_k: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> "KnnGraph":
        """Rebuild a graph from an edge table (positions, not ids); every row needs k edges."""
        source = np.asarray(source, dtype=np.int64)
        if source.size == 0 or source.size % n:
            raise ValueError(f"{source.size} edges cannot be {n} rows of equal length")
        k = source.size // n
        order = np.lexsort((np.asarray(rank), source))
        src_sorted = source[order]
        if not np.array_equal(src_sorted, np.repeat(np.arange(n, dtype=np.int64), k)):
            raise ValueError("every sample needs exactly k outgoing edges")
        graph = cls(
            neighbors=np.asarray(neighbor, dtype=np.int64)[order].reshape(n, k),
            distances=np.asarray(distance, dtype=np.float32)[order].reshape(n, k),
            index_kind=index_kind,
            recall_at_k=recall_at_k,
            params=dict(params or {}),
        )
        return graph.validate()


def _check_vectors(vectors: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array [N, d], got shape {x.shape}")
    n, d = x.shape
    if d < 1:
        raise ValueError("vectors have zero dimensions")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n <= k:
        raise ValueError(f"need more samples than k: N={n}, k={k} (lower k or add samples)")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"vectors must be floating point, got {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    for start in range(0, n, 65_536):
        block = x[start : start + 65_536]
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise ValueError(f"vectors contain NaN or inf (first at row {bad})")
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        off = np.abs(norms - 1.0) > _NORM_TOLERANCE
        if off.any():
            bad = start + int(np.flatnonzero(off)[0])
            raise ValueError(
                f"vectors must be L2-normalised: row {bad} has norm {norms[off][0]:.6g} "
                f"(divide each row by its norm; zero rows cannot be normalised)"
            )
    return x


def _finish_rows(
    ids: np.ndarray, raw: np.ndarray, row_ids: np.ndarray, k: int, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop self (by id, wherever it sits) and missing (-1) results, keep k columns.

    Returns neighbours, cosine distances and a boolean mask of rows that had fewer than k
    usable results (those need a fallback search).
    """
    valid = (ids != row_ids[:, None]) & (ids >= 0)
    # Stable sort moves invalid entries to the end without reordering the valid ones.
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    nb = np.take_along_axis(ids, order, axis=1)
    vals = np.take_along_axis(raw, order, axis=1).astype(np.float64)
    short = valid.sum(axis=1) < k
    if kind == "ip":
        dist = (1.0 - vals) / 2.0
    else:  # squared L2 between unit vectors = 2 - 2 cos = 4 d
        dist = vals / 4.0
    dist = np.clip(dist, 0.0, 1.0).astype(np.float32)
    return nb.astype(np.int64), dist, short


def pair_dot(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, *, chunk: int = 1 << 15) -> np.ndarray:
    """vectors[a[p]] . vectors[b[p]] for each pair p: the values of one einsum over the gathered
    rows, in chunks, without two [pairs, dim] copies in memory (GBs for 100k samples' 3M pairs,
    most of the time spent faulting their pages in)."""
    vectors = np.asarray(vectors)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = np.empty(a.size, dtype=vectors.dtype)
    for start in range(0, a.size, chunk):
        out[start:start + chunk] = np.einsum("ij,ij->i", vectors[a[start:start + chunk]], vectors[b[start:start + chunk]])
    return out


def sort_rows(nb: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by (distance, neighbour id): deterministic ties, e.g. exact duplicates."""
    by_id = np.argsort(nb, axis=1, kind="stable")
    nb = np.take_along_axis(nb, by_id, axis=1)
    dist = np.take_along_axis(dist, by_id, axis=1)
    by_dist = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(nb, by_dist, axis=1), np.take_along_axis(dist, by_dist, axis=1)


def exact_knn(
    vectors: np.ndarray, query_ids: np.ndarray, k: int, *, chunk_rows: int = _CHUNK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other samples of the given rows (brute force, no index copy)."""
    x = vectors
    query_ids = np.asarray(query_ids, dtype=np.int64)
    n = x.shape[0]
    nb_out = np.empty((query_ids.size, k), dtype=np.int64)
    d_out = np.empty((query_ids.size, k), dtype=np.float32)
    extra = 1
    for start in range(0, query_ids.size, chunk_rows):
        q = query_ids[start : start + chunk_rows]
        while True:
            kk = min(n, k + extra)
            sims, ids = faiss.knn(x[q], x, kk, metric=faiss.METRIC_INNER_PRODUCT)
            nb, dist, short = _finish_rows(ids, sims, q, k, "ip")
            if not short.any() or kk == n:
                break
            extra *= 4  # only when faiss returned -1s; cannot happen with N > k, kept for safety
        nb_out[start : start + q.size] = nb
        d_out[start : start + q.size] = dist
    return nb_out, d_out


def knn_device() -> str:
    """Where the exact search runs: $QUALITY_KNN_DEVICE (`auto`, `cpu`, `cuda`, `cuda:N`); `auto`, the
    default, is the GPU when torch sees one, else the CPU (faiss)."""
    return device_setting(KNN_DEVICE_ENV)


class TorchFlatIP:
    """Exact inner-product search in torch on `device`: what `faiss.IndexFlatIP.search` returns
    (similarities descending, their row ids), for a GPU that faiss-cpu cannot use."""

    def __init__(self, x: np.ndarray, device: str) -> None:
        self.device = torch.device(device)
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        self.ntotal = int(x.shape[0])

    def search(self, queries: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        m = queries.shape[0]
        sims_out = np.empty((m, kk), dtype=np.float32)
        ids_out = np.empty((m, kk), dtype=np.int64)
        block = max(1, _TORCH_BLOCK_ELEMENTS // max(1, self.ntotal))
        with torch.no_grad():
            for lo in range(0, m, block):
                q = torch.from_numpy(np.ascontiguousarray(queries[lo:lo + block], dtype=np.float32)).to(self.device)
                top = torch.topk(q @ self.x.T, kk, dim=1)
                sims_out[lo:lo + block] = top.values.cpu().numpy()
                ids_out[lo:lo + block] = top.indices.cpu().numpy()
        return sims_out, ids_out


def _flat_index(x: np.ndarray, device: str):
    """The exact index for `x`: faiss on the CPU, torch on a GPU."""
    if device == "cpu":
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return index
    return TorchFlatIP(x, device)


def _recall(
    approx_nb: np.ndarray, approx_d: np.ndarray, exact_d: np.ndarray
) -> float:
    """Tie-aware recall@k: a result is a hit when it is no farther than the exact k-th."""
    kth = exact_d[:, -1:].astype(np.float64)
    hits = approx_d.astype(np.float64) <= kth + 1e-6
    return float(hits.mean())


def search_rows(
    index: faiss.Index,
    x: np.ndarray,
    start: int,
    stop: int,
    k: int,
    kind: str,
    *,
    chunk_rows: int = _CHUNK_ROWS,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows start..stop of `x` searched on `index` (which holds every row of x, id = position).

    Returns neighbours and distances [stop - start, k] as `_finish_rows` leaves them (not yet
    tie-ordered), and the positions in x of rows that got fewer than k usable results, which
    `fill_short_rows` completes. Queries go to faiss in blocks of `chunk_rows` from `start`, so
    a range that starts on a block boundary of the whole search makes the very same faiss calls
    for its rows (faiss's distance kernels depend on the block, e.g. BLAS only from 20 queries).
    """
    n = x.shape[0]
    nb_out = np.empty((stop - start, k), dtype=np.int64)
    d_out = np.empty((stop - start, k), dtype=np.float32)
    short_rows: list[np.ndarray] = []
    for lo in range(start, stop, chunk_rows):
        hi = min(stop, lo + chunk_rows)
        raw, ids = index.search(x[lo:hi], k + 1)
        nb, dist, short = _finish_rows(ids, raw, np.arange(lo, hi, dtype=np.int64), k, kind)
        nb_out[lo - start : hi - start] = nb
        d_out[lo - start : hi - start] = dist
        if short.any():
            short_rows.append(np.flatnonzero(short) + lo)
        if progress is not None:
            progress("search", hi, n)
    short_at = np.concatenate(short_rows) if short_rows else np.empty(0, dtype=np.int64)
    return nb_out, d_out, short_at


def fill_short_rows(
    x: np.ndarray, nb: np.ndarray, dist: np.ndarray, rows: np.ndarray, k: int
) -> None:
    """Exact search, in place, for the rows of a whole-set result that `search_rows` left short."""
    if rows.size:
        # An approximate index can return fewer than k+1 results (IVF probing tiny lists);
        # those rows get an exact search so the [N, k] contract always holds.
        nb[rows], dist[rows] = exact_knn(x, rows, k)


def _search_chunks(
    index: faiss.Index,
    x: np.ndarray,
    k: int,
    kind: str,
    progress: ProgressFn | None,
    chunk_rows: int,
    queries: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    nb_out, d_out, short = search_rows(
        index, x, 0, x.shape[0] if queries is None else queries, k, kind, chunk_rows=chunk_rows, progress=progress
    )
    fill_short_rows(x, nb_out, d_out, short, k)
    return nb_out, d_out


def _hnsw_params(n: int, d: int) -> dict[str, int]:
    # M=32 is the usual sweet spot for 64-256-d embeddings; efConstruction 64 buys recall at
    # 1M without doubling build time (see the benchmark).
    return {"M": 32, "efConstruction": 64}


def _ivf_params(n: int) -> dict[str, int]:
    nlist = int(2 ** round(math.log2(max(16.0, 4.0 * math.sqrt(n)))))
    # 39 points per centroid is faiss's own lower bound for a stable k-means; more only costs.
    nlist = max(1, min(nlist, n // 39))
    return {"nlist": nlist, "train_size": int(min(n, max(nlist * 39, 50_000)))}


def _build_index(
    x: np.ndarray, method: str, seed: int, progress: ProgressFn | None, chunk_rows: int
) -> tuple[faiss.Index, dict[str, Any]]:
    n, d = x.shape
    if method == "hnsw":
        p = _hnsw_params(n, d)
        index = faiss.IndexHNSWFlat(d, p["M"], faiss.METRIC_L2)
        index.hnsw.efConstruction = p["efConstruction"]
        params: dict[str, Any] = dict(p)
    else:
        p = _ivf_params(n)
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, p["nlist"], faiss.METRIC_L2)
        rng = np.random.default_rng(seed)
        train_ids = np.sort(rng.choice(n, size=p["train_size"], replace=False))
        index.cp.seed = seed
        index.train(x[train_ids])
        params = dict(p)
    add_chunk = max(chunk_rows, 65_536)
    for start in range(0, n, add_chunk):
        index.add(x[start : start + add_chunk])
        if progress is not None:
            progress("index", min(n, start + add_chunk), n)
    return index, params


def _set_search_param(index: faiss.Index, method: str, value: int) -> None:
    if method == "hnsw":
        index.hnsw.efSearch = int(value)
    else:
        index.nprobe = int(value)


def _tune(
    index: faiss.Index,
    x: np.ndarray,
    k: int,
    method: str,
    tune_ids: np.ndarray,
    target: float,
) -> tuple[int, list[tuple[int, float]]]:
    """Smallest search parameter on a x1.5 ladder whose sample recall meets the target.

    Search time grows about linearly in efSearch / nprobe, so a finer ladder than doubling
    saves up to a third of the search on the full set.
    """
    exact_nb, exact_d = exact_knn(x, tune_ids, k)
    del exact_nb
    if method == "hnsw":
        value, limit = k + 1, 4096
    else:
        limit = int(index.nlist)
        value = min(4, limit)
    trace: list[tuple[int, float]] = []
    while True:
        _set_search_param(index, method, value)
        raw, ids = index.search(x[tune_ids], k + 1)
        nb, dist, short = _finish_rows(ids, raw, tune_ids, k, "l2")
        rec = _recall(nb, np.where(short[:, None], np.float32(2.0), dist), exact_d)
        trace.append((value, rec))
        if rec >= min(1.0, target + _TUNE_MARGIN) or value >= limit:
            return value, trace
        value = min(limit, max(value + 1, int(round(value * 1.5))))


def build_knn_graph(
    vectors: np.ndarray,
    k: int = 16,
    *,
    method: str = "auto",
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    seed: int = 0,
    recall_sample: int = 1000,
    recall_target: float = DEFAULT_RECALL_TARGET,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    chunk_rows: int = _CHUNK_ROWS,
    search: SearchFn | None = None,
    queries: int | None = None,
) -> KnnGraph:
    """k nearest other samples for every row of `vectors` (float32 [N, d], L2-normalised).

    method: "auto" (flat up to `exact_limit` samples, ivf beyond), "flat", "ivf" or "hnsw".
    recall_sample: random queries used to measure the recall of an approximate graph
        (0 skips the measurement; recall_at_k is then None).
    recall_target: recall the search parameter is tuned to reach on a separate sample.
    threads: faiss OpenMP threads for this call (restored afterwards); None = faiss default.
    progress: optional callback progress(stage, done, total).
    search: where the search of every row runs once the index is built and tuned; None (the
        default) searches here. `distributed.knn` passes one that shards the rows over a Ray
        cluster; it must return what the in-process search returns.
    queries: search only the first `queries` rows; the others are index entries only (an
        image's mirrored or cropped stand-ins). The result then has `queries` rows whose
        neighbour ids are positions among all N rows, the very rows the whole search gives them
        (same index, same search parameter, same faiss query blocks), so it is no KnnGraph to
        validate but the rows a copy search reads.
    """
    x = _check_vectors(vectors, k)
    n, d = x.shape
    k = int(k)
    q = n if queries is None else int(queries)
    if not 0 < q <= n:
        raise ValueError(f"queries must be in [1, {n}], got {queries}")
    if method == "auto":
        method = "flat" if n <= exact_limit else "ivf"
    if method not in ("flat", "hnsw", "ivf"):
        raise ValueError(f"method must be auto, flat, hnsw or ivf, got {method!r}")
    previous_threads = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    t0 = time.perf_counter()
    try:
        params: dict[str, Any] = {"method": method, "k": k, "n": n, "dim": d, "seed": seed}
        if method == "flat":
            if search is None:
                params["device"] = device = knn_device()
                index = _flat_index(x, device)
                if progress is not None:
                    progress("index", n, n)
                nb, dist = _search_chunks(index, x, k, "ip", progress, chunk_rows, q)
                del index
                nb, dist = sort_rows(nb, dist)
            else:
                params["device"] = "cpu"  # the shards' exact search is faiss's, wherever it runs
                if progress is not None:
                    progress("index", n, n)
                nb, dist, params["search"] = search(None, x, k, chunk_rows, progress)
                nb, dist = nb[:q], dist[:q]
            params["seconds"] = round(time.perf_counter() - t0, 3)
            return KnnGraph(nb, dist, "flat", None, params)

        rng = np.random.default_rng(seed)
        n_tune = min(n, _TUNE_QUERIES)
        n_eval = min(q, max(0, int(recall_sample)))
        picked = rng.permutation(n)
        tune_ids = np.sort(picked[:n_tune])
        # Disjoint from the tuning queries where N allows, so the reported recall is not the
        # number the parameter was chosen on.
        in_rows = picked[picked < q]
        untuned = in_rows[~np.isin(in_rows, tune_ids)]
        eval_pool = untuned if untuned.size >= n_eval else in_rows
        eval_ids = np.sort(eval_pool[:n_eval])

        index, index_params = _build_index(x, method, seed, progress, chunk_rows)
        params.update(index_params)
        params["build_seconds"] = round(time.perf_counter() - t0, 3)
        value, trace = _tune(index, x, k, method, tune_ids, recall_target)
        _set_search_param(index, method, value)
        params["efSearch" if method == "hnsw" else "nprobe"] = value
        params["tuning"] = [{"value": v, "recall": round(r, 4)} for v, r in trace]
        t_search = time.perf_counter()
        if search is None:
            nb, dist = _search_chunks(index, x, k, "l2", progress, chunk_rows, q)
            params["search_seconds"] = round(time.perf_counter() - t_search, 3)
            del index
            nb, dist = sort_rows(nb, dist)
        else:
            nb, dist, params["search"] = search(index, x, k, chunk_rows, progress)
            nb, dist = nb[:q], dist[:q]
            params["search_seconds"] = round(time.perf_counter() - t_search, 3)
            del index

        recall: float | None = None
        if n_eval > 0:
            _, exact_d = exact_knn(x, eval_ids, k)
            recall = _recall(nb[eval_ids], dist[eval_ids], exact_d)
            if progress is not None:
                progress("recall", n_eval, n_eval)
        params["recall_sample"] = int(n_eval)
        params["recall_target"] = recall_target
        params["seconds"] = round(time.perf_counter() - t0, 3)
        return KnnGraph(nb, dist, method, recall, params)
    finally:
        if threads is not None:
            faiss.omp_set_num_threads(previous_threads)


def update_knn_rows(
    old_neighbors: np.ndarray,
    old_distances: np.ndarray,
    old_query_positions: np.ndarray,
    old_base_positions: np.ndarray,
    vectors: np.ndarray,
    query_positions: np.ndarray,
    *,
    chunk_rows: int = _CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """k nearest other rows of `vectors` for the rows `query_positions`, from an earlier result.

    The earlier result listed, for each old query, its k nearest entries of an old base set:
    old_neighbors / old_distances [n_old, k] in old base positions. old_query_positions[i] is old
    query i's row in `vectors` (-1: gone), old_base_positions[j] the row of old base entry j (-1:
    gone). Rows of `vectors` no old base entry maps to are new. New queries, and old ones that lost
    a neighbour, are searched exactly against every vector; every other old query keeps its list,
    merged with its nearest new vectors. Returns neighbours and distances [len(query_positions), k]
    in query order (ties ordered by position, as `build_knn_graph` orders them) and counts.
    """
    x = vectors
    n, k = x.shape[0], old_neighbors.shape[1]
    query_positions = np.asarray(query_positions, dtype=np.int64)
    old_query_positions = np.asarray(old_query_positions, dtype=np.int64)
    old_base_positions = np.asarray(old_base_positions, dtype=np.int64)
    if old_query_positions.shape != (old_neighbors.shape[0],):
        raise ValueError(f"old_positions needs one entry per old node ({old_neighbors.shape[0]}), "
                         f"got {old_query_positions.shape}")
    for positions in (old_query_positions, old_base_positions):
        present = positions[positions >= 0]
        if present.size and (present.max() >= n or np.unique(present).size != present.size):
            raise ValueError("old_positions must map old nodes to distinct rows of vectors")
    output = np.full(n, -1, dtype=np.int64)
    output[query_positions] = np.arange(query_positions.size)
    is_old = np.zeros(n, dtype=bool)
    is_old[old_base_positions[old_base_positions >= 0]] = True
    added = np.flatnonzero(~is_old)

    nb = np.empty((query_positions.size, k), dtype=np.int64)
    dist = np.empty((query_positions.size, k), dtype=np.float32)
    kept = (old_query_positions >= 0) & (output[np.maximum(old_query_positions, 0)] >= 0)
    rows = old_query_positions[kept]
    mapped = old_base_positions[old_neighbors[kept]]
    lost = (mapped < 0).any(axis=1)
    clean_rows, clean_nb, clean_d = rows[~lost], mapped[~lost], old_distances[kept][~lost]
    for start in range(0, clean_rows.size, chunk_rows):
        stop = min(clean_rows.size, start + chunk_rows)
        merged_nb, merged_d = clean_nb[start:stop], clean_d[start:stop]
        if added.size:
            sims, ids = faiss.knn(x[clean_rows[start:stop]], x[added], min(k, int(added.size)),
                                  metric=faiss.METRIC_INNER_PRODUCT)
            new_d = np.clip((1.0 - sims.astype(np.float64)) / 2.0, 0.0, 1.0).astype(np.float32)
            merged_nb, merged_d = np.hstack([merged_nb, added[ids]]), np.hstack([merged_d, new_d])
        merged_nb, merged_d = sort_rows(merged_nb, merged_d)
        nb[output[clean_rows[start:stop]]], dist[output[clean_rows[start:stop]]] = merged_nb[:, :k], merged_d[:, :k]
    done = np.zeros(query_positions.size, dtype=bool)
    done[output[clean_rows]] = True
    searched = query_positions[~done]
    if searched.size:
        nb[~done], dist[~done] = sort_rows(*exact_knn(x, searched, k, chunk_rows=chunk_rows))
    counts = {"added": int(added.size), "removed": int((old_base_positions < 0).sum()),
              "searched": int(searched.size), "merged": int(clean_rows.size)}
    return nb, dist, counts


def update_knn_graph(
    old: KnnGraph,
    old_positions: np.ndarray,
    vectors: np.ndarray,
    *,
    seed: int = 0,
    recall_sample: int = 1000,
    chunk_rows: int = _CHUNK_ROWS,
) -> KnnGraph:
    """The graph of `vectors` from `old`, the graph of an earlier set that shares most rows.

    old_positions[i]: row of old node i in `vectors`, or -1 when that node left. Rows of
    `vectors` no old node maps to are new. New rows, and old rows that lost a neighbour, are
    searched exactly against every vector; every other old row keeps its list, merged with its
    nearest new vectors (an exact search of those rows against the new ones only). Cost
    O((n_new + n_lost) N d + N n_new d) instead of a rebuild's.

    For a flat (exact) `old` the result equals a fresh exact build up to ties. For an approximate
    one the searched rows are exact and the kept rows keep their approximate lists; the recall is
    measured again on `recall_sample` random rows, as a fresh build measures it.
    """
    x = _check_vectors(vectors, old.k)
    n, k = x.shape[0], old.k
    t0 = time.perf_counter()
    nb, dist, counts = update_knn_rows(old.neighbors, old.distances, old_positions, old_positions, x,
                                       np.arange(n), chunk_rows=chunk_rows)
    params: dict[str, Any] = {**old.params, "n": n,
                              "incremental": {**counts, "seconds": round(time.perf_counter() - t0, 3)}}
    recall: float | None = None
    if old.index_kind != "flat" and recall_sample > 0:
        eval_ids = np.sort(np.random.default_rng(seed).permutation(n)[: min(n, int(recall_sample))])
        _, exact_d = exact_knn(x, eval_ids, k)
        recall = _recall(nb[eval_ids], dist[eval_ids], exact_d)
        params["recall_sample"] = int(eval_ids.size)
    params["seconds"] = round(time.perf_counter() - t0, 3)
    return KnnGraph(nb, dist, old.index_kind, recall, params).validate()
