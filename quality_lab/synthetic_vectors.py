"""Synthetic embedding-like vectors with known copies, for the score benchmarks in ``benchmarks/``.

The tests keep their own dense references (``quality_tests/scores/dense_reference.py``); the
benchmark scripts draw their data from here so that nothing outside the tests imports the tests.
Same formulas and seeds as the test helpers, so the published figures stay reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clustered_vectors", "density_copies", "normalise", "precision_at_n", "simhash64", "twin_copies"]


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered_vectors(
    n: int,
    d: int = 32,
    *,
    n_clusters: int = 10,
    spread: float = 0.15,
    rank: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised [n, d] float32 vectors in low-rank Gaussian clusters, and cluster ids."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    cluster = rng.integers(0, n_clusters, size=n)
    x = np.empty((n, d))
    for c in range(n_clusters):
        idx = np.flatnonzero(cluster == c)
        basis = rng.standard_normal((rank, d)) / np.sqrt(d)
        x[idx] = centers[c] + spread * rng.standard_normal((idx.size, rank)) @ basis
        x[idx] += 0.01 * rng.standard_normal((idx.size, d))
    return normalise(x), cluster


def _first_neighbour_distance(x: np.ndarray) -> np.ndarray:
    """Cosine distance (1 - cos) / 2 to the nearest other row; dense, so only for small n."""
    x = np.asarray(x, dtype=np.float64)
    d = np.clip((1.0 - x @ x.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


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

    Copies sit at `copy_factor` x the median first-neighbour distance from their source; their
    "pixels" are nearly identical, so their SimHash is within a bit or two. Returns vectors,
    hashes, the copy pairs.
    """
    rng = np.random.default_rng(seed)
    emb, _ = clustered_vectors(n, 32, n_clusters=10, spread=0.25, rank=6, seed=seed)
    m1 = float(np.median(_first_neighbour_distance(emb)))
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
    first = _first_neighbour_distance(emb)
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
