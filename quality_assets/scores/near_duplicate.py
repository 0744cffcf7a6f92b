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

from quality_assets.imaging import hamming_distances as hamming64
from quality_assets.knn import KnnGraph, pair_dot
from quality_assets.pixel_view import copy_candidate_pairs
from quality_assets.scores import canonical_labels
# Flags, per-sample scores and groups live in duplicate_groups; they stay importable from here.
from quality_assets.scores.duplicate_groups import (
    colour_disagrees, copy_flags, duplicate_groups, group_label_conflicts, sample_duplicate_scores,
    unmirrored_evidence,
)
from quality_assets.scores.near_exact import NEAR_EXACT_MAX_DIFF, NEAR_EXACT_SCORE, grid_differences, grid_measures
from quality_assets.scores.pair_evidence import (
    DEFAULT_FUSION_WEIGHTS, DEFAULT_WEIGHTS, combined_score, descriptor_ratio, fuse_p_values, pixel_evidence,
)

__all__ = [
    "DEFAULT_FUSION_WEIGHTS",
    "colour_disagrees",
    "copy_flags",
    "DEFAULT_WEIGHTS",
    "EVIDENCE_FLAGS",
    "duplicate_groups",
    "group_label_conflicts",
    "hamming64",
    "lift_near_exact",
    "near_duplicate_pairs",
    "pair_order",
    "sample_duplicate_scores",
    "unmirrored_evidence",
]

# Bit flags behind the `evidence` column, in the order they are written.
EVIDENCE_FLAGS: dict[str, int] = {
    "file_sha256": 1,
    "pixel_sha256": 2,
    "phash": 4,  # perceptual-hash Hamming distance <= `phash_strong`
    "mutual_nn": 8,  # each is the other's first neighbour
    "knn": 16,  # the pair is an edge of the kNN graph
    "pixel_knn": 32,  # the pair is an edge of the thumbnail kNN graph (pixel_copies)
    "near_exact": 64,  # the colour grids agree cell by cell (scores.near_exact)
}
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
    max_registered_pairs: int | None = None,
    fusion_weights: dict[str, float] | None = None,
    pixel_candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    hue_histograms: np.ndarray | None = None,
    verify=None,
    polar_vectors: np.ndarray | None = None,
    colour_grids: np.ndarray | None = None,
    colour_grid_known: np.ndarray | None = None,
    near_exact_max_diff: float = NEAR_EXACT_MAX_DIFF,
    copy_descriptors: np.ndarray | None = None,
) -> pd.DataFrame:
    """Candidate duplicate pairs, worst (lowest score) first.

    Columns: i, j (positions, i < j), distance (cosine, 0 for hash matches), score (see the
    module docstring), evidence (which evidence holds, e.g. "pixel_sha256+knn"), rank
    (1 = most likely duplicate), rank_i / rank_j (position of j in i's row and vice versa,
    1 = nearest, 0 = not in the row), hamming (perceptual-hash distance, NaN when unknown) and
    same_label (only when `labels` are given; NA when either side is unlabelled).

    max_pairs_per_sample: a kNN edge becomes a candidate when it is among the first this many
        neighbours of either endpoint (default: all k).

    verify: what verifies pairs on the thumbnails (``verify_pairs``' signature; default
        ``verify_pairs``). The service passes a ``VerifiedPairMemo`` that reads back earlier runs.

    Pixel evidence (``thumbnails``, uint8 [N, S, S] aligned with the graph, ``thumbnail_known``
    marking the rows that hold one): the thumbnail kNN pairs (``pixel_k`` per image, mirrors
    included when ``mirror``) join the candidates, every candidate with two thumbnails is
    verified (:mod:`quality_assets.scores.pixel_copies`; at most ``max_verified_pairs``, each
    image's nearest candidates first), and the score becomes the fused p-value: each
    verifier's ratio-to-next-best and the embedding score are ranked among the candidates that
    are neither exact nor near-exact matches (p = rank / M; the exact matches keep score 0, the
    near-exact ones are ranked among themselves) and score = min over views
    of p / weight (``fusion_weights``, a weighted Bonferroni combination). Each image's best few
    candidates are also registered over turn, mirror, zoom and shift
    (:mod:`quality_assets.scores.registration`), the leading view. Extra
    columns: aligned, agreement, registered (pixel dissimilarities, NaN when not verified or not
    registered), aligned_ratio, agreement_ratio, registered_ratio, crop_ratio (the best crop's
    evidence, ``pair_evidence.pixel_evidence``) and embedding_score.
    ``max_registered_pairs`` caps the registrations (each image's best pair first, then its second). ``vectors`` (the
    embedding, L2-normalised) give thumbnail-only pairs their embedding distance.
    ``pixel_candidates`` (i, j, best 1-based position) are the thumbnail kNN pairs when the
    representation stage has stored them; without them they are searched here.
    ``hue_histograms`` (the ingest hue histograms, [N, 1 + bins]) add the hue search to that
    candidate search, register each image's hue-nearest pairs, and withhold the pixel evidence
    from pairs whose colours disagree (``pair_evidence.pixel_evidence``).

    Near-exact copies (``colour_grids``, uint8 [N, G, G, 3], ``colour_grid_known`` marking the rows
    that hold one; :mod:`quality_assets.scores.near_exact`): a candidate pair whose grids differ by at
    most ``near_exact_max_diff`` in every cell (a re-encoded or resized copy) ranks after the exact
    matches and before every other pair, its score NEAR_EXACT_SCORE times its score without the
    tier (fused among the near-exact pairs), and carries the ``near_exact`` evidence. Not for
    ``score_kind="distance"`` (SelfClean's plain ranking); ``near_exact_max_diff`` <= 0 turns it off.

    ``copy_descriptors`` (float32 [N, 8, d], the learned copy descriptor's dihedral descriptors,
    `copy_detection.embed_copies`; with thumbnails only): one more fused view, the pair's
    descriptor dissimilarity over the next best (``descriptor_ratio`` column,
    ``pair_evidence.descriptor_ratio``).
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
            keys, pair_d, rank_i, rank_j, flags, n, thumbnails, thumbnail_known, vectors, mirror, pixel_k,
            pixel_candidates, hue_histograms)
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
        score = combined_score(
            graph, pi, pj, np.nan_to_num(pair_d, nan=1.0), rank_i, rank_j, hamming, phash_scale,
            {**DEFAULT_WEIGHTS, **(weights or {})},
        )
    score[exact] = 0.0
    score = np.clip(score, 0.0, 1.0)
    near = np.zeros(pi.size, dtype=bool)
    if colour_grids is not None and score_kind == "combined" and near_exact_max_diff > 0:
        check = ~exact
        # The pairs' grid measures are read back where an earlier run took them (a drop takes its new pairs').
        remembered = getattr(verify, "remembered", None)
        measures = None if remembered is None else (lambda a, b: remembered(  # noqa: E731
            ("grid_difference", "grid_relative"), a, b, lambda x, y: grid_measures(colour_grids, x, y)))
        diff = grid_differences(colour_grids, colour_grid_known, pi[check], pj[check], near_exact_max_diff,
                                measures=measures)
        near[np.flatnonzero(check)[np.isfinite(diff)]] = True
        flags[near] |= EVIDENCE_FLAGS["near_exact"]
    pixel_columns: dict[str, np.ndarray] = {}
    if thumbnails is not None:
        pixel_columns = pixel_evidence(
            thumbnails, thumbnail_known, pi, pj, n, rank_i, rank_j, pixel_rank, score, mirror, max_verified_pairs,
            hue_histograms=hue_histograms, verify=verify, register_budget=max_registered_pairs,
            polar_vectors=polar_vectors)
        pixel_columns["embedding_score"] = score
        if copy_descriptors is not None:
            pixel_columns["descriptor_ratio"] = descriptor_ratio(copy_descriptors, pi, pj, n)
        # The exact matches rank first by their bytes and the near-exact ones next by their tier, both
        # outside the other pairs' p-values (`fuse_p_values`).
        score = fuse_p_values(pixel_columns, {**DEFAULT_FUSION_WEIGHTS, **(fusion_weights or {})}, exact=exact,
                              near_exact=near)
    if near.any():
        # Lifted, in their evidence's order: ordered by the grid difference instead, an icon theme's
        # own repeats (another caption, 0.06-0.12) interleaved with its JPEG leaks (0.04-0.12).
        score[near] = lift_near_exact(score[near])

    order = pair_order(pi, pj, pair_d, score)
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


def lift_near_exact(score: np.ndarray) -> np.ndarray:
    """Near-exact pairs' scores: after the exact matches and before every other pair, in their
    evidence's order."""
    return NEAR_EXACT_SCORE * np.clip(score, 0.0, 1.0)


def pair_order(i: np.ndarray, j: np.ndarray, distance: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The pairs' ranking (positions, best first): by score, then embedding distance (unknown
    last), then the ends, so that ties break the same way in every run."""
    return np.lexsort((j, i, np.nan_to_num(distance, nan=2.0), score))


def _add_pixel_candidates(keys, pair_d, rank_i, rank_j, flags, n, thumbnails, known, vectors, mirror, pixel_k,
                          candidates=None, hue_histograms=None):
    """Union the thumbnail kNN pairs into the candidate arrays (keys unique; returned sorted)."""
    thumbs = np.asarray(thumbnails)
    if len(thumbs) != n:
        raise ValueError(f"thumbnails has {len(thumbs)} rows for {n} samples")
    # Hash-only pairs are appended after the graph's sorted pairs: sort before searching.
    order = np.argsort(keys, kind="stable")
    keys, pair_d, rank_i, rank_j, flags = keys[order], pair_d[order], rank_i[order], rank_j[order], flags[order]
    pixel_rank = np.zeros(keys.size, dtype=np.int64)
    if candidates is None:
        candidates = copy_candidate_pairs(thumbs, known, pixel_k, mirror=mirror, hue_histograms=hue_histograms)
    a, b, position = (np.asarray(c, dtype=np.int64) for c in candidates)
    if a.size == 0:
        return keys, pair_d, rank_i, rank_j, flags, pixel_rank
    pkeys = np.minimum(a, b) * n + np.maximum(a, b)
    pos = np.searchsorted(keys, pkeys)
    found = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == pkeys)
    flags[pos[found]] |= EVIDENCE_FLAGS["pixel_knn"]
    pixel_rank[pos[found]] = position[found]
    new = pkeys[~found]
    if new.size:
        ni, nj = new // n, new % n
        if vectors is not None:
            v = np.asarray(vectors, dtype=np.float32)
            new_d = np.clip((1.0 - pair_dot(v, ni, nj)) / 2.0, 0.0, 1.0).astype(np.float64)
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


