"""Copy candidates and their scores from dihedral copy descriptors.

Invariance by construction: every image is described in its 8 dihedral transforms (quarter turns
and mirrors, :func:`quality_assets.copy_detection.descriptor.embed_copies`). A copy rotated by
any angle is within 45 degrees of one of them, where the descriptor (trained on rotations of any
angle) is at its most reliable, and a mirrored copy meets its source exactly. Candidates are the
k nearest neighbours of all 8N transformed descriptors among the N plain ones (faiss, exact up to
``exact_limit`` images, HNSW beyond); the pair similarity is the maximum over transforms and both
directions.

Scores normalised against each image's background (SSCD's score normalisation, with the dataset
itself as the background set): in a dataset packed with natural twins a copy's raw similarity to
its source is not much above a twin's, but a copy stands out *relative to the rest of its own
neighbourhood*. With s_ab the pair similarity and, for image a,
    next_a(b) = the best similarity of a to any image other than b (the "second best"),
    bg_a      = the similarity of a to its ``background_rank``-th neighbour (local density),
the normalised similarity is

    z_ab = s_ab - (max(next_a(b), next_b(a)) + (bg_a + bg_b) / 2) / 2

i.e. how far the pair stands above both endpoints' next-best match (a ratio test: a source and
its copy are each other's unique best match, a twin has further twins) and above the local density
(SSCD's background term). Pair score = (1 - z) / 2 clipped to [0, 1], lower = more likely a copy;
pixel- or file-identical pairs score 0 (hashes are the free first line).

Cost: one kNN search of 8N queries (N log N with an index), O(N k) pair work.
"""

from __future__ import annotations

from typing import Any, Sequence

import faiss
import numpy as np
import pandas as pd

EVIDENCE_FLAGS: dict[str, int] = {
    "file_sha256": 1,
    "pixel_sha256": 2,
    "mutual_nn": 8,     # each is the other's first neighbour under the dihedral similarity
    "copy_knn": 64,     # a kNN edge of the dihedral copy-descriptor search
    "flipped": 128,     # the best match is under a mirror transform
    "rotated": 256,     # the best match is under a quarter turn
}
DEFAULT_K = 10
DEFAULT_BACKGROUND_RANK = 5
EXACT_LIMIT = 200_000


def _search(queries: np.ndarray, base: np.ndarray, k: int, exact_limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, ids) of the k best inner products of each query in ``base``."""
    k = min(k, base.shape[0])
    if base.shape[0] <= exact_limit:
        sims, ids = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
        return sims, ids
    index = faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(base)
    index.hnsw.efSearch = max(64, 2 * k)
    return index.search(queries, k)


def pair_similarity(desc: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max similarity over the dihedral transforms and both directions, best transform index).

    ``desc``: float32 [N, T, d] with transform 0 the plain image. The transform index is of the
    side that was transformed (0-7, as :func:`descriptor.dihedral`).
    """
    da, db = desc[a], desc[b]
    ab = np.einsum("ntd,nd->nt", da, db[:, 0])
    ba = np.einsum("ntd,nd->nt", db, da[:, 0])
    both = np.concatenate([ab, ba], axis=1)
    best = both.argmax(axis=1)
    return both.max(axis=1).astype(np.float64), (best % desc.shape[1]).astype(np.int64)


def copy_candidates(desc: np.ndarray, k: int = DEFAULT_K, *, exact_limit: int = EXACT_LIMIT
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each image's k nearest other images under the dihedral similarity: (neighbors int64
    [N, k], similarities float64 [N, k]) sorted by descending similarity."""
    desc = np.ascontiguousarray(desc, dtype=np.float32)
    n, t, d = desc.shape
    kk = min(n, k + 1)
    base = np.ascontiguousarray(desc[:, 0])
    sims, ids = _search(np.ascontiguousarray(desc.reshape(n * t, d)), base, kk, exact_limit)
    # image a's hits from all its transforms: keep the best similarity per neighbour
    rows = np.repeat(np.arange(n), t * kk)
    ids = ids.reshape(n, t * kk).ravel()
    sims = sims.reshape(n, t * kk).ravel().astype(np.float64)
    keep = (ids >= 0) & (ids != rows)
    rows, ids, sims = rows[keep], ids[keep], sims[keep]
    order = np.lexsort((-sims, ids, rows))
    rows, ids, sims = rows[order], ids[order], sims[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (ids[1:] != ids[:-1])]
    rows, ids, sims = rows[first], ids[first], sims[first]
    order = np.lexsort((-sims, rows))
    rows, ids, sims = rows[order], ids[order], sims[order]
    starts = np.searchsorted(rows, np.arange(n))
    pos = np.arange(rows.size) - starts[rows]
    sel = pos < k
    nb = np.full((n, k), -1, dtype=np.int64)
    sm = np.full((n, k), -1.0, dtype=np.float64)
    nb[rows[sel], pos[sel]] = ids[sel]
    sm[rows[sel], pos[sel]] = sims[sel]
    return nb, sm


def _hash_keys(values: Any, n: int) -> np.ndarray:
    """Keys a*n+b (a<b) of the pairs sharing a non-empty hash; groups become stars."""
    s = pd.Series(values, dtype=object)
    s = s.where(s != "", None)
    codes, _ = pd.factorize(s, use_na_sentinel=True)
    if len(codes) != n:
        raise ValueError(f"hash column has {len(codes)} entries for {n} samples")
    known = np.flatnonzero(codes >= 0)
    order = known[np.argsort(codes[known], kind="stable")]
    c = codes[order]
    same = np.flatnonzero(c[1:] == c[:-1])
    if same.size == 0:
        return np.empty(0, np.int64)
    starts = np.r_[0, np.flatnonzero(c[1:] != c[:-1]) + 1]
    head = order[starts[np.searchsorted(starts, same + 1, side="right") - 1]]
    a, b = head, order[same + 1]
    return np.unique(np.minimum(a, b) * n + np.maximum(a, b))


def copy_pairs(
    desc: np.ndarray,
    *,
    k: int = DEFAULT_K,
    background_rank: int = DEFAULT_BACKGROUND_RANK,
    file_sha256: Sequence[Any] | None = None,
    pixel_sha256: Sequence[Any] | None = None,
    exact_limit: int = EXACT_LIMIT,
) -> pd.DataFrame:
    """Candidate copy pairs, most likely copy first (the shape of ``near_duplicate_pairs``).

    Columns: i, j (i < j), distance (cosine distance (1 - s) / 2 of the dihedral similarity s),
    similarity (s), normalised (z, see the module docstring), score ((1 - z) / 2 in [0, 1], 0
    for hash-identical pairs; lower = more likely a copy), evidence, rank (1 = first),
    rank_i / rank_j (position of j in i's row and vice versa, 1 = nearest, 0 = absent),
    transform (dihedral transform of the best match).
    """
    desc = np.asarray(desc, dtype=np.float32)
    if desc.ndim == 2:
        desc = desc[:, None, :]
    n = desc.shape[0]
    k = max(1, min(k, n - 1))
    nb, sm = copy_candidates(desc, k, exact_limit=exact_limit)
    bg_rank = max(1, min(background_rank, k))
    bg = sm[:, bg_rank - 1]

    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = nb.ravel()
    col = np.tile(np.arange(1, k + 1, dtype=np.int16), n)
    ok = dst >= 0
    src, dst, col = src[ok], dst[ok], col[ok]
    key = np.minimum(src, dst) * n + np.maximum(src, dst)
    keys, inv = np.unique(key, return_inverse=True)
    rank_i = np.zeros(keys.size, np.int16)
    rank_j = np.zeros(keys.size, np.int16)
    fwd = src < dst
    rank_i[inv[fwd]] = col[fwd]
    rank_j[inv[~fwd]] = col[~fwd]
    flags = np.full(keys.size, EVIDENCE_FLAGS["copy_knn"], np.int64)

    hash_bits = 0
    for values, name in ((file_sha256, "file_sha256"), (pixel_sha256, "pixel_sha256")):
        if values is None:
            continue
        hk = _hash_keys(values, n)
        if hk.size == 0:
            continue
        hash_bits |= EVIDENCE_FLAGS[name]
        pos = np.searchsorted(keys, hk)
        found = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == hk)
        flags[pos[found]] |= EVIDENCE_FLAGS[name]
        new = hk[~found]
        keys = np.concatenate([keys, new])
        rank_i = np.concatenate([rank_i, np.zeros(new.size, np.int16)])
        rank_j = np.concatenate([rank_j, np.zeros(new.size, np.int16)])
        flags = np.concatenate([flags, np.full(new.size, EVIDENCE_FLAGS[name] | 0, np.int64)])
        order = np.argsort(keys, kind="stable")
        keys, rank_i, rank_j, flags = keys[order], rank_i[order], rank_j[order], flags[order]

    pi, pj = keys // n, keys % n
    s, transform = pair_similarity(desc, pi, pj)
    # The best match of i other than j (and of j other than i): first or second entry of the row.
    next_i = np.where(nb[pi, 0] == pj, sm[pi, 1] if k > 1 else -1.0, sm[pi, 0])
    next_j = np.where(nb[pj, 0] == pi, sm[pj, 1] if k > 1 else -1.0, sm[pj, 0])
    next_best = np.maximum(next_i, next_j)
    background = 0.5 * (bg[pi] + bg[pj])
    z = s - 0.5 * (next_best + background)
    score = np.clip((1.0 - z) / 2.0, 0.0, 1.0)
    exact = (flags & (EVIDENCE_FLAGS["file_sha256"] | EVIDENCE_FLAGS["pixel_sha256"])) != 0
    score[exact] = 0.0
    mutual = (rank_i == 1) & (rank_j == 1)
    flags[mutual] |= EVIDENCE_FLAGS["mutual_nn"]
    flags[transform >= 4] |= EVIDENCE_FLAGS["flipped"]
    flags[transform % 4 != 0] |= EVIDENCE_FLAGS["rotated"]

    order = np.lexsort((pj, pi, -s, score))
    uniq, inv_f = np.unique(flags[order], return_inverse=True)
    names = ["+".join(nm for nm, bit in EVIDENCE_FLAGS.items() if f & bit) or "none" for f in uniq]
    return pd.DataFrame({
        "i": pi[order],
        "j": pj[order],
        "distance": np.clip((1.0 - s[order]) / 2.0, 0.0, 1.0),
        "similarity": s[order],
        "normalised": z[order],
        "next_best": next_best[order],
        "background": background[order],
        "score": score[order],
        "evidence": pd.Categorical.from_codes(inv_f.astype(np.int32).ravel(), categories=names),
        "rank": np.arange(1, order.size + 1, dtype=np.int64),
        "rank_i": rank_i[order],
        "rank_j": rank_j[order],
        "transform": transform[order],
    })
