"""Near-duplicate pairs, per-sample duplicate scores, duplicate groups and label conflicts.

Candidate pairs are the kNN graph's edges, made undirected and deduplicated (i < j), plus every
pair of samples whose file or decoded-pixel sha256 match (distance 0, whether or not the graph
holds the edge). A hash group larger than `hash_group_limit` contributes a star (every member
paired with its lowest position) instead of all m(m-1)/2 pairs, so a folder of 10,000 identical
blank images cannot produce 50M rows; the star has the same connected component.

Scores (lower = more likely a duplicate):

``score_kind="distance"`` - SelfClean's ranking: the pair's cosine distance d = (1 - cos) / 2.

``score_kind="combined"`` (default) - distance alone fails where a dataset is packed with
natural near-twins (digits, products): an augmented or re-encoded copy can sit farther from
its source than ordinary images sit from their nearest neighbour. The combined score is the
geometric mean of evidence terms, each in [0, 1] with 0 = certainly a copy:

    abs    = d / (d + m0)            m0 = median first-neighbour distance over the dataset;
                                     0.5 for a pair as close as a typical nearest pair
    rel    = d / (d + sqrt(s_i s_j)) s_i = median distance of i's k neighbours (local scale):
                                     a pair much closer than its surroundings is suspicious
                                     even where the whole region is sparse, and vice versa
    gap    = sqrt(g_i g_j)           g_i = d / (distance of i's next neighbour after j) when j
                                     is in i's row (Lowe's ratio test), else 1 (no evidence).
                                     A mutual first-neighbour pair that stands apart from
                                     the second neighbours on both sides scores low here
    phash  = min(1, (h + 1) / (H + 1))  h = Hamming distance of the 64-bit perceptual hashes,
                                     H = `phash_scale` (32 = unrelated images); only when
                                     both hashes are known

    score = exp( sum_t w_t log(term_t) / sum_t w_t )      a weighted geometric mean

with weights abs = rel = gap = 1 and phash = 2 (`DEFAULT_WEIGHTS`): the hash is evidence
independent of the embedding, the one that still works when the embedding is not invariant to
the transformation that made the copy. Each term is rescaled distance evidence, so an exact
duplicate vector (d = 0) scores 0, and the ranking does not change when a term is multiplied
by a constant. Exact file/pixel hash matches score 0 outright.

Measured on contaminated synthetic data (`benchmarks/bench_scores.py --contamination`, 5
seeds; docs/benchmarks/knn_scores.md): where 40 copies sit at 1.5x the median first-neighbour
distance among natural twins, precision at 40 is 0.00 for the distance ranking and 0.985 for
the combined score with perceptual hashes; where cluster density varies 20-fold and copies sit
at 0.4x their source's own neighbour distance, it rises from 0.31 (distance) to 0.67
(combined, no hashes), and dropping any one graph term lowers it (0.55-0.58).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import rankdata

from quality_assets.knn import KnnGraph
from quality_assets.scores import canonical_labels
from quality_assets.scores.cutoff import fraction_cut
from quality_assets.scores.pixel_copies import pixel_candidate_pairs, ratio_to_next_best, verify_pairs
from quality_assets.imaging import hamming_distances as hamming64

__all__ = [
    "DEFAULT_FUSION_WEIGHTS",
    "copy_flags",
    "DEFAULT_WEIGHTS",
    "EVIDENCE_FLAGS",
    "duplicate_groups",
    "group_label_conflicts",
    "hamming64",
    "near_duplicate_pairs",
    "sample_duplicate_scores",
]

# Bit flags behind the `evidence` column, in the order they are written.
EVIDENCE_FLAGS: dict[str, int] = {
    "file_sha256": 1,
    "pixel_sha256": 2,
    "phash": 4,  # perceptual-hash Hamming distance <= `phash_strong`
    "mutual_nn": 8,  # each is the other's first neighbour
    "knn": 16,  # the pair is an edge of the kNN graph
    "pixel_knn": 32,  # the pair is an edge of the thumbnail kNN graph (pixel_copies)
}
# Weights of the evidence terms in the combined score's geometric mean.
DEFAULT_WEIGHTS: dict[str, float] = {"abs": 1.0, "rel": 1.0, "gap": 1.0, "phash": 2.0}
# A pair flagged through the agreement verifier must also agree on at least half of its
# informative pixels.
AGREEMENT_FLAG_MAX = 0.5
# Weighted-Bonferroni weights of the p-values fused when thumbnails are given (sum to 1). The
# embedding keeps a small say: on copy-heavy benchmarks its p-values are the least reliable,
# but it is the only view that sees copies under strong photometric changes.
DEFAULT_FUSION_WEIGHTS: dict[str, float] = {"aligned": 0.45, "agreement": 0.45, "embedding": 0.1}
_HASH_EXACT = EVIDENCE_FLAGS["file_sha256"] | EVIDENCE_FLAGS["pixel_sha256"]


def _hash_values(phash: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, known mask) from an array of 64-bit hashes with None/NA for unknown."""
    s = pd.Series(phash)
    if len(s) != n:
        raise ValueError(f"phash has {len(s)} entries for {n} samples")
    if s.dtype.kind == "f":
        # A float64 column cannot hold 64-bit hashes exactly; the bits are already lost.
        if s.notna().any():
            raise ValueError("phash must be int64 (or pandas Int64 / objects), not float")
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    known = s.notna().to_numpy()
    values = np.zeros(n, dtype=np.int64)
    if known.any():
        if s.dtype == object:  # Python ints (maybe beyond int64 as unsigned): wrap to signed
            values[known] = np.asarray(
                [(int(v) + 2**63) % 2**64 - 2**63 for v in s[known]], dtype=np.int64
            )
        else:
            values[known] = s[known].to_numpy(dtype=np.int64)
    return values, known


def _hash_pairs(values: Any, n: int, group_limit: int) -> tuple[np.ndarray, np.ndarray]:
    series = pd.Series(values, dtype=object)
    series = series.where(series != "", None)
    codes, _ = pd.factorize(series, use_na_sentinel=True)
    if len(codes) != n:
        raise ValueError(f"hash column has {len(codes)} entries for {n} samples")
    known = np.flatnonzero(codes >= 0)
    if known.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = known[np.argsort(codes[known], kind="stable")]
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, order.size])
    a_parts: list[np.ndarray] = []
    b_parts: list[np.ndarray] = []
    pairs2 = starts[sizes == 2]
    if pairs2.size:  # the common case, vectorised
        a_parts.append(order[pairs2])
        b_parts.append(order[pairs2 + 1])
    for start, size in zip(starts[sizes > 2], sizes[sizes > 2]):
        members = np.sort(order[start : start + size])
        if size <= group_limit:
            ii, jj = np.triu_indices(size, k=1)
            a_parts.append(members[ii])
            b_parts.append(members[jj])
        else:
            a_parts.append(np.full(size - 1, members[0]))
            b_parts.append(members[1:])
    if not a_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    return np.minimum(a, b), np.maximum(a, b)


def _evidence_strings(flags: np.ndarray) -> pd.Categorical:
    # Distinct flag sets give distinct names, so the unique flags map 1:1 onto categories.
    uniq, inv = np.unique(flags, return_inverse=True)
    names = [
        "+".join(name for name, bit in EVIDENCE_FLAGS.items() if f & bit) or "none" for f in uniq
    ]
    return pd.Categorical.from_codes(inv.astype(np.int32).ravel(), categories=names)


def _geo_mean(terms: list[np.ndarray], weights: list[float]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = sum(w * np.log(np.clip(t, 0.0, 1.0)) for t, w in zip(terms, weights))
    return np.exp(logs / float(sum(weights)))


def near_duplicate_pairs(
    graph: KnnGraph,
    *,
    file_sha256: Sequence[Any] | np.ndarray | None = None,
    pixel_sha256: Sequence[Any] | np.ndarray | None = None,
    phash: Sequence[Any] | np.ndarray | None = None,
    labels: Sequence[Any] | np.ndarray | None = None,
    max_pairs_per_sample: int | None = None,
    score_kind: str = "combined",
    hash_group_limit: int = 32,
    phash_scale: float = 32.0,
    phash_strong: int = 8,
    weights: dict[str, float] | None = None,
    thumbnails: np.ndarray | None = None,
    thumbnail_known: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    mirror: bool = True,
    pixel_k: int = 8,
    max_verified_pairs: int | None = None,
    fusion_weights: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Candidate duplicate pairs, worst (lowest score) first.

    Columns: i, j (positions, i < j), distance (cosine, 0 for hash matches), score (see the
    module docstring), evidence (which evidence holds, e.g. "pixel_sha256+knn"), rank
    (1 = most likely duplicate), rank_i / rank_j (position of j in i's row and vice versa,
    1 = nearest, 0 = not in the row), hamming (perceptual-hash distance, NaN when unknown) and
    same_label (only when `labels` are given; NA when either side is unlabelled).

    max_pairs_per_sample: a kNN edge becomes a candidate when it is among the first this many
        neighbours of either endpoint (default: all k).

    Pixel evidence (``thumbnails``, uint8 [N, S, S] aligned with the graph, ``thumbnail_known``
    marking the rows that hold one): the thumbnail kNN pairs (``pixel_k`` per image, mirrors
    included when ``mirror``) join the candidates, every candidate with two thumbnails is
    verified (:mod:`quality_assets.scores.pixel_copies`; at most ``max_verified_pairs``, each
    image's nearest candidates first), and the score becomes the fused p-value: each
    verifier's ratio-to-next-best and the embedding score are ranked among all candidates
    (p = rank / M) and score = min over views of p / weight (``fusion_weights``, a weighted
    Bonferroni combination). Extra columns: aligned, agreement (pixel dissimilarities, NaN
    when not verified), aligned_ratio, agreement_ratio and embedding_score. ``vectors`` (the
    embedding, L2-normalised) give thumbnail-only pairs their embedding distance.
    """
    if score_kind not in ("combined", "distance"):
        raise ValueError(f"score_kind must be 'combined' or 'distance', got {score_kind!r}")
    nb, dist = graph.neighbors, graph.distances
    n, k = nb.shape
    m = k if max_pairs_per_sample is None else int(max_pairs_per_sample)
    if m < 1:
        raise ValueError("max_pairs_per_sample must be >= 1")
    m = min(m, k)

    # Directed edges -> undirected pairs; each directed edge maps to one pair and one side.
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = nb.ravel().astype(np.int64)
    col = np.tile(np.arange(k, dtype=np.int16), n)
    a = np.minimum(src, dst)
    b = np.maximum(src, dst)
    key = a * n + b
    del a, b
    keys, inv = np.unique(key, return_inverse=True)
    del key
    n_pairs = keys.size
    pair_d = np.zeros(n_pairs, dtype=np.float64)
    pair_d[inv] = dist.ravel()  # both directions carry the same distance up to rounding
    rank_i = np.zeros(n_pairs, dtype=np.int16)  # 1-based column of j in i's row, 0 = absent
    rank_j = np.zeros(n_pairs, dtype=np.int16)
    forward = src < dst
    rank_i[inv[forward]] = col[forward] + 1
    rank_j[inv[~forward]] = col[~forward] + 1
    del src, dst, col, forward, inv
    selected = ((rank_i >= 1) & (rank_i <= m)) | ((rank_j >= 1) & (rank_j <= m))
    flags = np.full(n_pairs, EVIDENCE_FLAGS["knn"], dtype=np.int64)

    # Exact hash matches: mark the kNN pairs that have one, append those the graph lacks.
    extra_keys: list[np.ndarray] = []
    extra_flags: list[np.ndarray] = []
    for values, bit in ((file_sha256, "file_sha256"), (pixel_sha256, "pixel_sha256")):
        if values is None:
            continue
        ha, hb = _hash_pairs(values, n, hash_group_limit)
        if ha.size == 0:
            continue
        hkeys = np.unique(ha * n + hb)
        pos = np.searchsorted(keys, hkeys)
        found = (pos < n_pairs) & (keys[np.minimum(pos, n_pairs - 1)] == hkeys)
        flags[pos[found]] |= EVIDENCE_FLAGS[bit]
        selected[pos[found]] = True
        extra_keys.append(hkeys[~found])
        extra_flags.append(np.full(int((~found).sum()), EVIDENCE_FLAGS[bit], dtype=np.int64))
    if extra_keys and sum(e.size for e in extra_keys):
        ek = np.concatenate(extra_keys)
        ef = np.concatenate(extra_flags)
        ek, first = np.unique(ek, return_inverse=True)
        merged = np.zeros(ek.size, dtype=np.int64)
        np.bitwise_or.at(merged, first, ef)
        keys = np.concatenate([keys[selected], ek])
        pair_d = np.concatenate([pair_d[selected], np.zeros(ek.size)])
        rank_i = np.concatenate([rank_i[selected], np.zeros(ek.size, np.int16)])
        rank_j = np.concatenate([rank_j[selected], np.zeros(ek.size, np.int16)])
        flags = np.concatenate([flags[selected], merged])
    else:
        keys, pair_d, rank_i, rank_j, flags = (
            keys[selected], pair_d[selected], rank_i[selected], rank_j[selected], flags[selected]
        )
    pixel_rank = np.zeros(keys.size, dtype=np.int64)
    if thumbnails is not None:
        keys, pair_d, rank_i, rank_j, flags, pixel_rank = _add_pixel_candidates(
            keys, pair_d, rank_i, rank_j, flags, n, thumbnails, thumbnail_known, vectors, mirror, pixel_k)
    pi = keys // n
    pj = keys % n
    del keys
    exact = (flags & _HASH_EXACT) != 0
    pair_d[exact] = 0.0
    mutual = (rank_i == 1) & (rank_j == 1)
    flags[mutual] |= EVIDENCE_FLAGS["mutual_nn"]

    hamming = np.full(pi.size, np.nan)
    if phash is not None:
        hv, known = _hash_values(phash, n)
        both = known[pi] & known[pj]
        hamming[both] = hamming64(hv[pi[both]], hv[pj[both]])
        flags[both & (hamming <= phash_strong)] |= EVIDENCE_FLAGS["phash"]

    if score_kind == "distance":
        score = pair_d.copy()
    else:
        score = _combined_score(
            graph, pi, pj, np.nan_to_num(pair_d, nan=1.0), rank_i, rank_j, hamming, phash_scale,
            {**DEFAULT_WEIGHTS, **(weights or {})},
        )
    score[exact] = 0.0
    score = np.clip(score, 0.0, 1.0)
    pixel_columns: dict[str, np.ndarray] = {}
    if thumbnails is not None:
        pixel_columns = _pixel_evidence(
            thumbnails, thumbnail_known, pi, pj, n, rank_i, rank_j, pixel_rank, score, mirror, max_verified_pairs)
        pixel_columns["embedding_score"] = score
        score = _fuse(pixel_columns, {**DEFAULT_FUSION_WEIGHTS, **(fusion_weights or {})})
        score[exact] = 0.0

    order = np.lexsort((pj, pi, np.nan_to_num(pair_d, nan=2.0), score))
    out = pd.DataFrame(
        {
            "i": pi[order],
            "j": pj[order],
            "distance": pair_d[order],
            "score": score[order],
            "evidence": _evidence_strings(flags[order]),
            "rank": np.arange(1, order.size + 1, dtype=np.int64),
            "rank_i": rank_i[order],
            "rank_j": rank_j[order],
            "hamming": hamming[order],
            **{name: values[order] for name, values in pixel_columns.items()},
        }
    )
    if labels is not None:
        canon = canonical_labels(labels)
        if canon.size != n:
            raise ValueError(f"labels has {canon.size} entries for {n} samples")
        li, lj = canon[out["i"].to_numpy()], canon[out["j"].to_numpy()]
        known_l = pd.notna(li) & pd.notna(lj)
        same = pd.array(np.where(known_l, li == lj, False), dtype="boolean")
        same[~known_l] = pd.NA
        out["same_label"] = same
    return out


def copy_flags(pairs: pd.DataFrame, n_samples: int, *, alpha: float = 0.1, q: float = 0.05) -> np.ndarray:
    """Which candidate pairs are flagged as copies (the ranking stays primary).

    Pixel-verified pairs: a verifier's ratio-to-next-best r is cut with SelfClean's fraction cut
    on r / (1 + r), whose logit is log r, so the logistic fit describes the log-ratios of the
    ordinary pairs and the cut flags the ratios that fit does not explain; either verifier can
    flag. Pairs without pixel evidence are cut on their (embedding) score as before. Exact
    file/pixel hash matches are always flagged; the caller adds distance limits.
    """
    m = len(pairs)
    flags = np.zeros(m, dtype=bool)
    verified = np.zeros(m, dtype=bool)
    for column in ("aligned_ratio", "agreement_ratio"):
        if column not in pairs.columns:
            continue
        r = pairs[column].to_numpy(dtype=np.float64)
        known = np.isfinite(r)
        verified |= known
        if known.sum() >= 3:
            with np.errstate(invalid="ignore"):
                _, cut = fraction_cut(np.where(known, r / (1.0 + r), np.nan), alpha=alpha, q=q, n_samples=n_samples)
            if column == "agreement_ratio":
                # Ordinary pairs' agreement ratios crowd tightly around 1, so the cut lands close to
                # it; a copy with a local artefact also keeps most of its pixels (demo: 62% of the
                # flags right with this, 37% without).
                cut &= pairs["agreement"].to_numpy(dtype=np.float64) <= AGREEMENT_FLAG_MAX
            flags |= cut
    unverified = ~verified
    if unverified.sum() >= 3:
        score = pairs["embedding_score"] if "embedding_score" in pairs.columns else pairs["score"]
        _, cut = fraction_cut(score.to_numpy(float)[unverified], alpha=alpha, q=q, n_samples=n_samples)
        flags[np.flatnonzero(unverified)[cut]] = True
    evidence = pairs["evidence"].astype(str)
    flags |= evidence.str.contains("sha256", regex=False).to_numpy()
    return flags

def _add_pixel_candidates(keys, pair_d, rank_i, rank_j, flags, n, thumbnails, known, vectors, mirror, pixel_k):
    """Union the thumbnail kNN pairs into the candidate arrays (keys unique; returned sorted)."""
    thumbs = np.asarray(thumbnails)
    if len(thumbs) != n:
        raise ValueError(f"thumbnails has {len(thumbs)} rows for {n} samples")
    # Hash-only pairs are appended after the graph's sorted pairs: sort before searching.
    order = np.argsort(keys, kind="stable")
    keys, pair_d, rank_i, rank_j, flags = keys[order], pair_d[order], rank_i[order], rank_j[order], flags[order]
    known = np.ones(n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    rows = np.flatnonzero(known)
    pixel_rank = np.zeros(keys.size, dtype=np.int64)
    if rows.size < 2:
        return keys, pair_d, rank_i, rank_j, flags, pixel_rank
    a, b, position = pixel_candidate_pairs(thumbs[rows], min(pixel_k, rows.size - 1), mirror=mirror)
    pkeys = rows[a] * n + rows[b]  # rows is increasing, so rows[a] < rows[b]
    pos = np.searchsorted(keys, pkeys)
    found = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == pkeys)
    flags[pos[found]] |= EVIDENCE_FLAGS["pixel_knn"]
    pixel_rank[pos[found]] = position[found]
    new = pkeys[~found]
    if new.size:
        ni, nj = new // n, new % n
        if vectors is not None:
            v = np.asarray(vectors, dtype=np.float32)
            new_d = np.clip((1.0 - np.einsum("ij,ij->i", v[ni], v[nj])) / 2.0, 0.0, 1.0).astype(np.float64)
        else:
            new_d = np.full(new.size, np.nan)
        keys = np.concatenate([keys, new])
        pair_d = np.concatenate([pair_d, new_d])
        rank_i = np.concatenate([rank_i, np.zeros(new.size, np.int16)])
        rank_j = np.concatenate([rank_j, np.zeros(new.size, np.int16)])
        flags = np.concatenate([flags, np.full(new.size, EVIDENCE_FLAGS["pixel_knn"], dtype=np.int64)])
        pixel_rank = np.concatenate([pixel_rank, position[~found]])
        order = np.argsort(keys, kind="stable")
        keys, pair_d, rank_i, rank_j, flags, pixel_rank = (
            keys[order], pair_d[order], rank_i[order], rank_j[order], flags[order], pixel_rank[order])
    return keys, pair_d, rank_i, rank_j, flags, pixel_rank


def _pixel_evidence(thumbnails, known, pi, pj, n, rank_i, rank_j, pixel_rank, embedding_score, mirror,
                    budget) -> dict[str, np.ndarray]:
    known = np.ones(n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    verifiable = np.flatnonzero(known[pi] & known[pj])
    if budget is not None and verifiable.size > budget:
        # Each image's nearest candidates (in either view) first: copies sit there.
        big = np.iinfo(np.int64).max
        nearest = np.minimum.reduce([
            np.where(r > 0, r, big) for r in
            (rank_i[verifiable].astype(np.int64), rank_j[verifiable].astype(np.int64), pixel_rank[verifiable])
        ])
        # Ties (every image has a first neighbour) go to the stronger embedding evidence.
        verifiable = np.sort(verifiable[np.lexsort((embedding_score[verifiable], nearest))[:budget]])
    aligned = np.full(pi.size, np.nan)
    agreement = np.full(pi.size, np.nan)
    aligned_ratio = np.full(pi.size, np.nan)
    agreement_ratio = np.full(pi.size, np.nan)
    if verifiable.size:
        va, vb = pi[verifiable], pj[verifiable]
        al, ag = verify_pairs(np.asarray(thumbnails), va, vb, mirror=mirror)
        aligned[verifiable], agreement[verifiable] = al, ag
        aligned_ratio[verifiable] = ratio_to_next_best(al, va, vb, n)
        agreement_ratio[verifiable] = ratio_to_next_best(ag, va, vb, n)
    return {"aligned": aligned, "agreement": agreement,
            "aligned_ratio": aligned_ratio, "agreement_ratio": agreement_ratio}


def _fuse(columns: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """min over views of (empirical p-value / weight); NaN evidence (not verified) gives p = 1."""
    views = {"aligned": columns["aligned_ratio"], "agreement": columns["agreement_ratio"],
             "embedding": columns["embedding_score"]}
    total = sum(weights.get(name, 0.0) for name in views)
    if total <= 0:
        raise ValueError(f"fusion weights must give some view a positive weight, got {weights}")
    m = next(iter(views.values())).size
    fused = np.ones(m)
    for name, values in views.items():
        w = weights.get(name, 0.0) / total
        if w <= 0 or m == 0:
            continue
        valid = np.isfinite(values)
        p = np.ones(m)
        p[valid] = rankdata(values[valid], method="max") / m
        fused = np.minimum(fused, p / w)
    return np.clip(fused, 0.0, 1.0)


def _combined_score(
    graph: KnnGraph,
    pi: np.ndarray,
    pj: np.ndarray,
    d: np.ndarray,
    rank_i: np.ndarray,
    rank_j: np.ndarray,
    hamming: np.ndarray,
    phash_scale: float,
    weights: dict[str, float],
) -> np.ndarray:
    dist = graph.distances.astype(np.float64)
    n, k = dist.shape
    m0 = float(np.median(dist[:, 0]))
    local = dist[:, (k - 1) // 2]  # row median (lower median for even k): the local scale

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        # 0/0 (an exact duplicate inside a cluster of exact duplicates) is duplicate evidence.
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num / (num + den)
        return np.where(num + den > 0, r, 0.0)

    abs_term = ratio(d, np.full_like(d, m0))
    rel_term = ratio(d, np.sqrt(local[pi] * local[pj]))

    def side_gap(node: np.ndarray, rank: np.ndarray) -> np.ndarray:
        g = np.ones(d.size)
        has_next = (rank >= 1) & (rank < k)  # rank is 1-based; the next column is `rank`
        nxt = dist[node[has_next], rank[has_next].astype(np.int64)]
        with np.errstate(invalid="ignore", divide="ignore"):
            gv = np.where(nxt > 0, d[has_next] / nxt, 1.0)
        g[has_next] = np.clip(gv, 0.0, 1.0)
        return g

    gap_term = np.sqrt(side_gap(pi, rank_i) * side_gap(pj, rank_j))
    terms = [abs_term, rel_term, gap_term]
    w = [weights.get("abs", 1.0), weights.get("rel", 1.0), weights.get("gap", 1.0)]
    known = ~np.isnan(hamming)
    if known.any():
        ph = np.ones(d.size)
        ph[known] = np.minimum(1.0, (hamming[known] + 1.0) / (phash_scale + 1.0))
        score_with = _geo_mean(terms + [ph], w + [weights.get("phash", 2.0)])
        score_without = _geo_mean(terms, w)
        return np.where(known, score_with, score_without)
    return _geo_mean(terms, w)


def sample_duplicate_scores(
    pairs: pd.DataFrame, n: int, *, return_partner: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each sample's best (lowest) pair score, 1.0 where it is in no pair.

    With ``return_partner=True`` also returns the partner position of that best pair (-1 if
    none); ties go to the pair listed first in `pairs` (worst-first order keeps rank 1's partner).
    """
    i = pairs["i"].to_numpy(dtype=np.int64)
    j = pairs["j"].to_numpy(dtype=np.int64)
    s = pairs["score"].to_numpy(dtype=np.float64)
    node = np.concatenate([i, j])
    other = np.concatenate([j, i])
    val = np.concatenate([s, s])
    seq = np.concatenate([np.arange(i.size), np.arange(i.size)])
    order = np.lexsort((seq, val, node))
    node_sorted = node[order]
    first = np.r_[True, node_sorted[1:] != node_sorted[:-1]] if node.size else np.zeros(0, bool)
    best = np.ones(n, dtype=np.float64)
    partner = np.full(n, -1, dtype=np.int64)
    best[node_sorted[first]] = val[order][first]
    partner[node_sorted[first]] = other[order][first]
    if return_partner:
        return best, partner
    return best


def duplicate_groups(pairs_flagged: pd.DataFrame, n: int) -> np.ndarray:
    """Connected components of the flagged pairs: group id per sample, -1 for singletons.

    `pairs_flagged` holds columns i, j; if it has an `is_issue` column, only rows where it is
    true count. Group ids are 0..G-1, numbered by each group's lowest position.
    """
    df = pairs_flagged
    if "is_issue" in df.columns:
        df = df[df["is_issue"].fillna(False).astype(bool)]
    i = df["i"].to_numpy(dtype=np.int64)
    j = df["j"].to_numpy(dtype=np.int64)
    groups = np.full(n, -1, dtype=np.int64)
    if i.size == 0:
        return groups
    adj = sp.coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    in_group = sizes[comp] >= 2
    # Components are numbered by first appearance, i.e. by lowest position; compact them.
    used = np.unique(comp[in_group])
    remap = np.full(sizes.size, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    groups[in_group] = remap[comp[in_group]]
    return groups


def group_label_conflicts(
    groups: np.ndarray, labels: Sequence[Any] | np.ndarray
) -> pd.DataFrame:
    """One row per duplicate group: size, distinct label sets, majority label, conflict flag.

    Multi-labels (`a|b`) are compared as sets. Unlabelled members count in `size` but not in
    the vote. majority_label ties go to the alphabetically first label.
    """
    groups = np.asarray(groups, dtype=np.int64)
    canon = canonical_labels(labels)
    if canon.size != groups.size:
        raise ValueError(f"labels has {canon.size} entries for {groups.size} samples")
    member = groups >= 0
    cols = ["group_id", "size", "n_labels", "majority_label", "is_conflict"]
    if not member.any():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(cols, ["int64", "int64", "int64", "object", "bool"])})
    df = pd.DataFrame({"group_id": groups[member], "label": canon[member]})
    size = df.groupby("group_id").size().rename("size")
    lab = df.dropna(subset=["label"])
    n_labels = lab.groupby("group_id")["label"].nunique().rename("n_labels")
    counts = lab.groupby(["group_id", "label"]).size().rename("c").reset_index()
    counts = counts.sort_values(["group_id", "c", "label"], ascending=[True, False, True])
    majority = counts.drop_duplicates("group_id").set_index("group_id")["label"]
    out = pd.concat([size, n_labels, majority.rename("majority_label")], axis=1).reset_index()
    out = out.rename(columns={"index": "group_id"})
    out["n_labels"] = out["n_labels"].fillna(0).astype(np.int64)
    out["is_conflict"] = out["n_labels"] > 1
    return out[cols].sort_values("group_id").reset_index(drop=True)
