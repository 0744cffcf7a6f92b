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
# The lab's generators (the benchmark scripts use the same ones and must not import tests).
from quality_lab.synthetic_vectors import (  # noqa: E402,F401
    density_copies, precision_at_n, simhash64, twin_copies,
)
