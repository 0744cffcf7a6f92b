"""Dense all-pairs versions of the score formulas, and synthetic data, for tests only.

Everything here allocates N x N on purpose: it is the ground truth the graph versions in
quality_assets.scores are checked against on N <= 2,000.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.cluster.hierarchy import linkage, to_tree
from scipy.spatial.distance import squareform


# The synthetic data generators are the lab's (benchmarks use the same ones and must not import tests).
from quality_lab.synthetic_vectors import clustered_vectors, normalise  # noqa: E402,F401


def dense_distances(x: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cos) / 2, float64 [N, N], diagonal 0."""
    x = np.asarray(x, dtype=np.float64)
    d = np.clip((1.0 - x @ x.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(d, 0.0)
    return d


def dense_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k nearest other rows (ties by index), distances as float64."""
    d = dense_distances(x)
    np.fill_diagonal(d, np.inf)
    idx = np.lexsort((np.broadcast_to(np.arange(d.shape[0]), d.shape), d), axis=1)[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


def dense_pairs(d: np.ndarray) -> np.ndarray:
    """All pairs i < j as an array [M, 3] (i, j, distance), closest first, ties by (i, j)."""
    i, j = np.triu_indices(d.shape[0], k=1)
    dist = d[i, j]
    order = np.lexsort((j, i, dist))
    return np.column_stack([i[order], j[order], dist[order]])


def dense_lad(d: np.ndarray) -> np.ndarray:
    """LAD from scipy's (dense) single linkage, walked explicitly as the paper describes."""
    n = d.shape[0]
    z = linkage(squareform(d, checks=False), method="single")
    root = to_tree(z)
    h_root = root.dist
    scores = np.zeros(n)
    total = 0.0
    stack: list[tuple[Any, float, float, float]] = [(root, 0.0, 1.0, h_root)]
    while stack:
        node, start, end, h_parent = stack.pop()
        total += (end - start) * (h_parent - node.dist)
        if node.is_leaf():
            scores[node.id] = total
            continue
        a, b = node.get_left(), node.get_right()
        if (a.count, a.id) > (b.count, b.id):
            a, b = b, a
        split = start + (end - start) * a.count / node.count
        # Pushed in reverse: the smaller child is walked first.
        stack.append((b, split, end, node.dist))
        stack.append((a, start, split, node.dist))
    if h_root <= 0:
        return np.ones(n)
    return scores / h_root


def dense_mean_knn(d: np.ndarray, k: int) -> np.ndarray:
    dd = d.copy()
    np.fill_diagonal(dd, np.inf)
    m = np.sort(dd, axis=1)[:, :k].mean(axis=1)
    return 1.0 - m / m.max()


def dense_label_error(d: np.ndarray, labels: Sequence[Any]) -> np.ndarray:
    """SelfClean's intra/extra ratio over all pairs (a class of one: d_same = max other-label)."""
    lab = np.asarray(labels, dtype=object)
    same = lab[:, None] == lab[None, :]
    dd = d.copy()
    np.fill_diagonal(dd, np.inf)
    s = np.where(same, dd, np.inf).min(axis=1)
    o = np.where(~same, dd, np.inf).min(axis=1)
    lonely = ~np.isfinite(s)
    s[lonely] = np.where(~same, dd, -np.inf)[lonely].max(axis=1)
    denom = s**2 + o**2
    return np.where(denom > 0, o**2 / np.where(denom > 0, denom, 1.0), 0.5)


def dense_knn_shapley(
    d: np.ndarray,
    labels: Sequence[Any],
    train: np.ndarray,
    evals: np.ndarray,
    knn_k: int,
) -> np.ndarray:
    """Exact KNN-Shapley (Jia et al. 2019) over every train sample; NaN outside train."""
    lab = np.asarray(labels, dtype=object)
    train = np.asarray(train)
    values = np.zeros(d.shape[0])
    for e in evals:
        cand = train[train != e]
        order = cand[np.lexsort((cand, d[e, cand]))]
        m = order.size
        c = (lab[order] == lab[e]).astype(float)
        s = np.zeros(m)
        s[m - 1] = c[m - 1] / m
        for i in range(m - 2, -1, -1):
            t = i + 1
            s[i] = s[i + 1] + (c[i] - c[i + 1]) / knn_k * min(knn_k, t) / t
        values[order] += s
    values /= len(evals)
    out = np.full(d.shape[0], np.nan)
    out[train] = values[train]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# --- contaminated synthetic sets with known copies ------------------------------------------


def simhash64(p: np.ndarray, seed: int = 0) -> np.ndarray:
    """64-bit sign-of-random-projection hash as int64: a stand-in for a perceptual hash."""
    planes = np.random.default_rng(seed).standard_normal((64, p.shape[1]))
    bits = (p @ planes.T) > 0
    words = (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    return words.view(np.int64)


def _displace(rng: np.random.Generator, base: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Unit vectors at cosine distance ~`dist` from `base` in a random tangent direction."""
    v = rng.standard_normal(base.shape)
    v -= (v * base).sum(axis=1, keepdims=True) * base
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    # (1 - cos) / 2 = d  <=>  chord length 2 sqrt(d); a tangent step of that length is close.
    return normalise(base + v * 2.0 * np.sqrt(np.asarray(dist))[..., None])


def twin_copies(
    seed: int = 0, n: int = 2000, n_copies: int = 40, copy_factor: float = 1.5
) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """A set packed with natural near-twins and copies the embedding is not invariant to.

    Copies sit at `copy_factor` x the median first-neighbour distance from their source, i.e.
    farther than a typical natural twin, but their "pixels" are nearly identical, so their
    perceptual hash (SimHash of pixel vectors) is within a bit or two; natural twins share the
    embedding but differ in pixels (Hamming ~12+). Returns vectors, hashes, the copy pairs.
    """
    rng = np.random.default_rng(seed)
    emb, _ = clustered_vectors(n, 32, n_clusters=10, spread=0.25, rank=6, seed=seed)
    g = dense_knn(emb, 1)[1][:, 0]
    m1 = float(np.median(g))
    src = rng.choice(n, n_copies, replace=False)
    copies = _displace(rng, emb[src].astype(np.float64), np.full(n_copies, copy_factor * m1))
    pix = np.hstack([emb, rng.standard_normal((n, 32)) / np.sqrt(32)])
    pix = np.vstack([pix, pix[src] + 0.001 * rng.standard_normal((n_copies, 64))])
    cp = np.arange(n, n + n_copies)
    pairs = set(zip(np.minimum(src, cp).tolist(), np.maximum(src, cp).tolist()))
    return np.vstack([emb, copies]), simhash64(pix, seed), pairs


def density_copies(
    seed: int = 0, n: int = 2000, n_copies: int = 40, frac: float = 0.4
) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Clusters whose density varies 20-fold, with copies at `frac` x their source's own
    first-neighbour distance: absolute distance ranks tight-cluster natural pairs first."""
    rng = np.random.default_rng(seed)
    parts = []
    for c, spread in enumerate(np.geomspace(0.03, 0.6, 10)):
        x, _ = clustered_vectors(n // 10, 32, n_clusters=1, spread=spread, rank=6, seed=seed * 100 + c)
        parts.append(x)
    emb = np.vstack(parts)
    first = dense_knn(emb, 1)[1][:, 0]
    src = rng.choice(emb.shape[0], n_copies, replace=False)
    copies = _displace(rng, emb[src].astype(np.float64), frac * first[src])
    cp = np.arange(emb.shape[0], emb.shape[0] + n_copies)
    pairs = set(zip(np.minimum(src, cp).tolist(), np.maximum(src, cp).tolist()))
    return np.vstack([emb, copies]), pairs


def precision_at_n(pair_i: np.ndarray, pair_j: np.ndarray, truth: set[tuple[int, int]]) -> float:
    """Share of the first len(truth) pairs (in the given order) that are true copies."""
    n = len(truth)
    hits = [(int(a), int(b)) in truth for a, b in zip(pair_i[:n], pair_j[:n])]
    return float(np.mean(hits))
