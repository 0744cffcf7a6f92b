"""Evidence that a candidate pair is a copy: the combined embedding score (distance, local scale,
Lowe's gap, perceptual hash), the pixel verifiers' ratios, and their fusion into one p-value.
The formulas are documented in `scores.near_duplicate`'s module docstring."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from quality_assets.knn import KnnGraph, pair_dot
from quality_assets.scores.duplicate_groups import colour_disagrees
from quality_assets.scores.pixel_copies import ratio_to_next_best, verify_pairs
from quality_assets.pixel_view import crop_distances, hue_search_vectors, polar_search_vectors
from quality_assets.scores.registration import registered_similarity

__all__ = ["DEFAULT_FUSION_WEIGHTS", "DEFAULT_WEIGHTS", "combined_score", "descriptor_ratio", "fuse_p_values",
           "pixel_evidence"]

# Weights of the evidence terms in the combined score's geometric mean.
DEFAULT_WEIGHTS: dict[str, float] = {"abs": 1.0, "rel": 1.0, "gap": 1.0, "phash": 2.0}


# Weighted-Bonferroni weights of the p-values fused when thumbnails are given (normalised to sum
# to 1 over the views present). The registered view leads: on the SelfClean protocol (MNIST,
# AUG/ARTE copies and leaks, every candidate registered) its ratio alone ranks copies at pair AP
# 0.40 where the fusion of the other three reached 0.08, and any view with a large weight lets its
# natural twins through (0.21 at 0.3 each). The crop evidence (`pixel_evidence`'s ``crop_ratio``)
# comes second, for copies that hold their source in part of their frame, which registration of
# whole frames scores low (docs/benchmarks/matrix.md, "Update 2026-12-04 (2)"). The others keep a
# small say for what neither sees: the embedding for copies under strong photometric changes (the
# only view of a recoloured pair), aligned and agreement for local occlusions on unregistered pairs.
# Chosen on all twelve matrix cells (four datasets, three seeds) once the exact and near-exact
# matches stopped taking part in the views' p-values (`fuse_p_values`), over a grid of registered
# 1-4, crop 0.2-0.8, the others 0.025-0.1 each: pair AP under both truths (the protocol's and the
# one without the sources' own duplicates) wants crop at about a quarter of registered and little
# embedding; the leakage ranking, read from the same scores, wants a say for aligned and agreement
# (a JPEG leak that registration scores poorly). These weights are within 0.001 of the grid's best
# near-duplicate means (docs/benchmarks/matrix.md, "Update 2026-12-06 (4)"). Before, while those
# matches sat at the top of every view but the crop view's (a picture is no crop of itself), they
# gave the crop view's best pairs a head start of as many ranks as the data has such matches, which
# 0.7 / 0.1 / 0.1 / 0.1 / 0.1 had been tuned under.
#
# The learned copy descriptor's view (``descriptor``, only when `near_duplicate.copy_descriptor` is on):
# a fifth of the fusion with the five views above (the others keep their ratios within the other
# four fifths), the share measured on the matrix (docs/benchmarks/matrix.md, "Update 2026-12-05
# (6)"; 0.35 of the fusion lost on the grayscale sets, 0.1 gained less).
DEFAULT_FUSION_WEIGHTS: dict[str, float] = {"aligned": 0.1, "agreement": 0.1, "registered": 1.5, "embedding": 0.05,
                                             "crop": 0.4, "descriptor": 0.5375}

# Pairs registered per image (`scores.registration`, about 1k pairs/s on 2 CPU cores): each
# image's best few by the turn-invariant polar vectors and by the cheaper evidence. On that MNIST
# set, 2 + 2 per image (2.6 pairs per image) keep pair AP 0.36 of the 0.40 that registering all
# 28 candidates per image gives; the cheaper evidence alone (8 per image) keeps 0.21. On the
# matrix (10 contaminated cells, 4 datasets), 4 per order instead of 2 lifts the protocol's mean
# pair AP 0.198 -> 0.217 (grayscale cells +0.02-0.08, colour cells -0.004 to +0.009), leaves
# leakage AP and the clean cells' flag rates as they were, and costs about 30% more scoring time.
# 8 per order instead of 4 (2026-12-05, `docs/benchmarks/matrix.md` "Update 2026-12-05 (2)"): a
# copy of a digit in a crowd of its natural twins (a "1" among "1"s) is often not among either end's
# 4 best pairs by any order, so it was a candidate that was never registered. On nine matrix cells
# pair AP rose on six (+0.013 to +0.035), moved by at most 0.004 on three; mean over datasets +0.013;
# leakage and the clean cells' flag rates unchanged or better; about 1.8x the registrations. 12 per
# order gave less (mean over datasets +0.009, grayscale only, clip art -0.004) for 1.4x more
# ("Update 2026-12-05 (4)"), so 8 stays. From ~35k images on, the registration budget
# (`max_registered_pairs`) binds before this quota does.
REGISTER_POLAR_PER_IMAGE = 8
REGISTER_CHEAP_PER_IMAGE = 8
# In colour data, also each image's best pairs by hue histogram (`pixel_view.hue_search_vectors`):
# a clip-art copy turned and cropped has neither a near polar vector nor aligned evidence, but its
# colours (8 hue neighbours hold 92% of the protocol's clip-art AUG sources).
REGISTER_HUE_PER_IMAGE = 8
# And each image's best pairs by crop distance (`pixel_view.crop_search_vectors`: one end's crop
# against the other's whole thumbnail): a copy holding its source in part of its frame is far from
# it in every other order.
REGISTER_CROP_PER_IMAGE = 8
# And each image's best pairs by the representation's own score (`embedding_score`: the SSL graph's
# combined score). DINO on the data learns the crop, blur and squeeze invariances that the pixel
# orders lack, so a copy squeezed beside a bar or zoomed and blurred is often among its source's
# nearest by the representation while it ranks past 8 at both ends by polar vectors, pixels and
# crops; the cheaper order above gives the representation a tenth of its say and does not pick it.
# On the stored matrix cells (2026-12-06, `docs/benchmarks/matrix.md` "Update 2026-12-06 (10)")
# such copies registered at 0.15-0.34 of their ends' next best, among the leading copies' ratios.
REGISTER_EMBEDDING_PER_IMAGE = 4
# Which end of a pair each verifier's ratio to the next best is read at (`pixel_copies.
# ratio_to_next_best(ends=...)`), by the column it fills; a column not named reads both ends (the
# geometric mean). Every place that computes one of these ratios (here,
# `duplicate_groups.unmirrored_evidence`) asks `ratio_ends`.
# - A registered pair is read at the end where it stands out more ("better"): a copy is its own
#   end's best registration by far, while its source may have a natural twin that registers better
#   than the transformed copy; averaged, that twin pulled the copy down. On four matrix cells (pair
#   table re-ranked, `docs/benchmarks/matrix.md` "Update 2026-12-04 (7)") pair AP rose on every one
#   (MNIST s2 0.548 -> 0.560, Animal-MNIST s2 0.506 -> 0.529, clip art s0 0.087 -> 0.091, icons s0
#   0.073 -> 0.078); the same for the aligned, agreement and crop ratios lost on three of them.
# - The crop evidence is read at the end where the pair stands out less ("worse"): it must stand
#   out at both. A copy with tiles, a bar or a watermark holds, in a crop, a digit that many plain
#   images resemble; at each such image's end the copy's crop is its nearest (its other pairs have
#   no foreign part to crop away), so averaged, the copy paired with every lookalike of its source
#   stood out.
#   At the copy's end those lookalikes are a crowd, and only the source stands out (matrix.md
#   "Update 2026-12-05").
# - The learned copy descriptor's ratio is read as the registration's: it too matches every turn
#   and mirror (the dihedral transforms), so a copy's own end picks its source.
RATIO_ENDS: dict[str, str] = {"registered_ratio": "better", "crop_ratio": "worse", "descriptor_ratio": "better"}


def ratio_ends(column: str) -> str:
    """The ``ends`` argument of `ratio_to_next_best` for the ratio column ``column``."""
    return RATIO_ENDS.get(column, "both")


# The cheaper evidence that picks pairs to register: the fusion before registration existed.
CHEAP_FUSION_WEIGHTS: dict[str, float] = {"aligned": 0.45, "agreement": 0.45, "embedding": 0.1}


def _rank_per_node(score: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Each pair's best 1-based rank by ascending score among the pairs of either end."""
    order = np.argsort(score, kind="stable")
    # Both ends of the t-th best pair at 2t and 2t + 1: one stable sort by node then keeps the score
    # order within each node, and each pair's two ranks sit side by side again after it (a lexsort
    # on node and t, then np.minimum.at, took twice as long on 3M pairs).
    ends = np.stack([i[order], j[order]], axis=1).ravel()
    by_node = np.argsort(ends, kind="stable")
    ends = ends[by_node]
    start = np.r_[0, np.flatnonzero(ends[1:] != ends[:-1]) + 1]
    rank = np.empty(ends.size, dtype=np.int64)
    rank[by_node] = np.arange(ends.size) - np.repeat(start, np.diff(np.r_[start, ends.size])) + 1
    best = np.empty(score.size, dtype=np.int64)
    best[order] = rank.reshape(-1, 2).min(axis=1)
    return best


def _geo_mean(terms: list[np.ndarray], weights: list[float]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = sum(w * np.log(np.clip(t, 0.0, 1.0)) for t, w in zip(terms, weights))
    return np.exp(logs / float(sum(weights)))


def pixel_evidence(thumbnails, known, pi, pj, n, rank_i, rank_j, pixel_rank, embedding_score, mirror,
                    budget, *, hue_histograms: np.ndarray | None = None, verify=None,
                    register_budget: int | None = None,
                    polar_vectors: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The pixel verifiers and their ratios to the next best, per candidate pair (NaN: not verified).

    hue_histograms: the samples' ingest hue histograms, when the pixel view (grayscale thumbnails)
    should not vouch for pairs whose colours disagree: a red and a green arrow have the same
    thumbnail. Such pairs are marked ``recoloured``: the ranking gives them only their embedding
    evidence (in clip art they outranked lightly cropped copies otherwise); the verifier columns
    and ratios stay as measured, so they still count as their neighbours' next best and in the
    flag cut's natural-neighbour fit (taking them out made copy-free clip art flag more).

    polar_vectors: the thumbnails' ``polar_search_vectors`` [n, d] where already computed (the
    representation stage stores them with its copy search; NaN rows where not): computed here otherwise.
    """
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
    crop_distance = np.full(pi.size, np.nan)
    crop_ratio = np.full(pi.size, np.nan)
    # The images the verified pairs touch (sorted): the crop and registered evidence index them.
    images = np.unique(np.concatenate([pi[verifiable], pj[verifiable]]))
    if verifiable.size:
        va, vb = pi[verifiable], pj[verifiable]
        al, ag = (verify or verify_pairs)(np.asarray(thumbnails), va, vb, mirror=mirror)
        aligned[verifiable], agreement[verifiable] = al, ag
        aligned_ratio[verifiable] = ratio_to_next_best(al, va, vb, n, ends=ratio_ends("aligned_ratio"))
        agreement_ratio[verifiable] = ratio_to_next_best(ag, va, vb, n, ends=ratio_ends("agreement_ratio"))
        # Read back where an earlier run measured the pair (a drop measures only the pairs it brings).
        remembered = getattr(verify, "remembered", None)
        thumbs = np.asarray(thumbnails)
        measure = lambda a, b: crop_distances(thumbs, a, b)  # noqa: E731
        crop, whole = (remembered(("crop_distance", "whole_distance"), va, vb, measure) if remembered
                       else measure(va, vb))
        # A copy that holds its source in part of its frame (tiles, a bar, a canvas) is nearer through a
        # crop than whole, and nearer than its ends' other pairs: the crop distance's ratio to the
        # next best, times the root of its ratio to the whole thumbnails' distance (natural twins are
        # as near whole as through a crop). Registration compares whole frames, where the foreign
        # part of such a copy weighs against it.
        crop = np.clip(crop, 0.0, 2.0)  # float32 cosines of identical vectors can pass 1
        crop_distance[verifiable] = crop
        crop_ratio[verifiable] = crop_evidence(crop, whole, va, vb, n)
    registered, registered_ratio = _registered_evidence(
        thumbnails, pi, pj, n, verifiable, aligned_ratio, agreement_ratio, embedding_score,
        crop_distance[verifiable], mirror, getattr(verify, "register", None) or registered_similarity,
        register_budget, hue_histograms, polar_vectors, images=images)
    recoloured = np.zeros(pi.size, dtype=bool)
    if hue_histograms is not None and verifiable.size:
        recoloured[verifiable] = colour_disagrees(hue_histograms, pi[verifiable], pj[verifiable])
    return {"aligned": aligned, "agreement": agreement, "registered": registered,
            "aligned_ratio": aligned_ratio, "agreement_ratio": agreement_ratio, "registered_ratio": registered_ratio,
            "crop_ratio": crop_ratio, "recoloured": recoloured}


def _registered_evidence(thumbnails, pi, pj, n, verifiable, aligned_ratio, agreement_ratio, embedding_score,
                         crop_distance, mirror, register, budget: int | None = None,
                         hue_histograms: np.ndarray | None = None,
                         polar_vectors: np.ndarray | None = None, *,
                         images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The registered dissimilarity (1 - correlation) / 2 and its ratio to the next best, for each
    image's best few pairs by polar distance, by the cheaper evidence, by crop distance (given, per
    verifiable pair), by the representation's score and (both ends coloured) by hue; NaN elsewhere.
    Over the `budget`, every image's best pair (by any) comes first, then its second, and so on.
    `images`: the sorted images of the verifiable pairs (`pixel_evidence` has them already)."""
    registered = np.full(pi.size, np.nan)
    registered_ratio = np.full(pi.size, np.nan)
    if not verifiable.size:
        return registered, registered_ratio
    va, vb = pi[verifiable], pj[verifiable]
    cheap = fuse_p_values({"aligned_ratio": aligned_ratio[verifiable], "agreement_ratio": agreement_ratio[verifiable],
                           "embedding_score": embedding_score[verifiable]}, CHEAP_FUSION_WEIGHTS)
    polar = None if polar_vectors is None else np.asarray(polar_vectors)[images]
    if polar is None or not np.isfinite(polar).all():
        polar = polar_search_vectors(np.asarray(thumbnails)[images])
    polar_distance = 1.0 - pair_dot(polar, np.searchsorted(images, va), np.searchsorted(images, vb))
    hue_distance = np.full(va.size, np.inf)
    coloured_pair = np.zeros(va.size, dtype=bool)
    if hue_histograms is not None:
        hue_vectors, coloured = hue_search_vectors(np.asarray(hue_histograms)[images])
        ha, hb = np.searchsorted(images, va), np.searchsorted(images, vb)
        coloured_pair = coloured[ha] & coloured[hb]
        hue_distance[coloured_pair] = 1.0 - pair_dot(hue_vectors, ha[coloured_pair], hb[coloured_pair])
    embedding = np.asarray(embedding_score, dtype=np.float64)[verifiable]
    everywhere = np.ones(va.size, dtype=bool)
    orders = [(polar_distance, REGISTER_POLAR_PER_IMAGE, everywhere), (cheap, REGISTER_CHEAP_PER_IMAGE, everywhere),
              (hue_distance, REGISTER_HUE_PER_IMAGE, coloured_pair), (crop_distance, REGISTER_CROP_PER_IMAGE, everywhere),
              (embedding, REGISTER_EMBEDDING_PER_IMAGE, everywhere)]
    # A pair's level: its best rank at either end by any order, within that order's quota.
    big = np.iinfo(np.int64).max
    level = np.full(va.size, big)
    for distance, quota, ranked in orders:
        if ranked.any():
            by_order = _rank_per_node(distance, va, vb)
            level = np.minimum(level, np.where(ranked & (by_order <= quota), by_order, big))
    picked = np.flatnonzero(level < big)
    if budget is not None and picked.size > budget:
        # Within a level, the pairs that any order ranks nearest overall go first.
        # (Without colour every hue distance is infinite and ties at the middle rank, a cap on this
        # tie-break; ranking each order over only its own pairs read the same at a 30k budget on
        # Animal-MNIST s1 and MNIST s1, pair AP 0.575 and 0.720 to the last digit.)
        nearest = np.minimum.reduce([rankdata(distance[picked]) for distance, _, _ in orders])
        picked = np.sort(picked[np.lexsort((nearest, level[picked]))[:max(0, int(budget))]])
    chosen = verifiable[picked]
    if chosen.size:
        ra, rb = pi[chosen], pj[chosen]
        registered[chosen] = (1.0 - register(np.asarray(thumbnails), ra, rb, mirror=mirror)) / 2.0
        registered_ratio[chosen] = ratio_to_next_best(registered[chosen], ra, rb, n,
                                                      ends=ratio_ends("registered_ratio"))
    return registered, registered_ratio


def descriptor_ratio(descriptors: np.ndarray, i: np.ndarray, j: np.ndarray, n: int, *,
                     chunk: int = 16_384) -> np.ndarray:
    """The learned copy descriptor's evidence per pair: its dihedral dissimilarity ((1 - the best
    cosine over the 8 dihedral transforms) / 2, `copy_detection.pair_similarity`) over the next
    best one the pair's ends have (`ratio_to_next_best`, at ``ratio_ends("descriptor_ratio")``).
    ``descriptors`` float32 [N, 8, d] (`copy_detection.embed_copies`); pairs are gathered in chunks
    (a pair's two [8, d] blocks: 8 KB at d = 128)."""
    from quality_assets.copy_detection import pair_similarity

    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    dissimilarity = np.empty(i.size)
    for start in range(0, i.size, chunk):
        part = slice(start, start + chunk)
        similarity, _ = pair_similarity(descriptors, i[part], j[part])
        dissimilarity[part] = (1.0 - similarity) / 2.0
    return ratio_to_next_best(dissimilarity, i, j, n, ends=ratio_ends("descriptor_ratio"))


def crop_evidence(crop: np.ndarray, whole: np.ndarray, i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """The crop ratio of pairs (i, j) from their crop and whole distances (`pixel_view.crop_distances`,
    the crop clipped to [0, 2]): the crop distance over the next best of the pair's ends, times the
    root of its ratio to the whole thumbnails' distance."""
    return (ratio_to_next_best(crop, i, j, n, ends=ratio_ends("crop_ratio"))
            * np.sqrt(crop / np.maximum(whole, 1e-6)))


def empirical_p_values(values: np.ndarray) -> np.ndarray:
    """Each pair's share of the pairs whose evidence is at most its own (lower = likelier a copy);
    NaN evidence (not verified) gives p = 1."""
    m = values.size
    valid = np.isfinite(values)
    p = np.ones(m)
    p[valid] = rankdata(values[valid], method="max") / m
    return p


def fuse_p_values(columns: dict[str, np.ndarray], weights: dict[str, float],
                  exact: np.ndarray | None = None, near_exact: np.ndarray | None = None) -> np.ndarray:
    """min over views of (empirical p-value / weight); NaN evidence (not verified) gives p = 1, and
    so does the pixel evidence of a pair marked ``recoloured``.

    ``exact`` (bool per pair): the exact matches (file or pixel sha256) score 0 and take no part in
    the views' p-values. Every view ranks them at its top but the crop evidence at its bottom (a
    picture is no crop of itself), so counted there they pushed every other pair of the other views
    down against the crop evidence, by as many ranks as the data has exact matches: 300 exact copies
    added to a matrix cell (MNIST s1) took its pair AP from 0.543 to 0.376; left out, 0.584
    (docs/benchmarks/matrix.md "Update 2026-12-06 (3)"). ``near_exact`` (bool per pair, not exact):
    the same for re-encoded or resized copies, which the caller ranks after the exact ones by their
    own tier; they are fused among themselves (p-values over the near-exact pairs only), so their
    order within the tier still follows their evidence. 300 JPEG re-encodes took the same cell to
    0.380 while they were counted in the others' p-values; left out (and the weights chosen again
    without their head start), 0.595 ("Update 2026-12-06 (4)")."""
    if exact is not None or near_exact is not None:
        m = np.asarray(next(iter(columns.values()))).size
        exact = np.zeros(m, dtype=bool) if exact is None else np.asarray(exact, dtype=bool)
        near = np.zeros(m, dtype=bool) if near_exact is None else np.asarray(near_exact, dtype=bool) & ~exact
        score = np.zeros(m)
        for group in (~(exact | near), near):
            if group.any():
                score[group] = fuse_p_values({name: np.asarray(values)[group] for name, values in columns.items()},
                                             weights)
        return score
    recoloured = columns.get("recoloured")
    pixel_ok = ~np.asarray(recoloured, dtype=bool) if recoloured is not None else True
    views = {"aligned": np.where(pixel_ok, columns["aligned_ratio"], np.nan),
             "agreement": np.where(pixel_ok, columns["agreement_ratio"], np.nan),
             "embedding": columns["embedding_score"]}
    if "registered_ratio" in columns:
        views["registered"] = np.where(pixel_ok, columns["registered_ratio"], np.nan)
    if "crop_ratio" in columns:
        views["crop"] = np.where(pixel_ok, columns["crop_ratio"], np.nan)
    if "descriptor_ratio" in columns:
        views["descriptor"] = np.where(pixel_ok, columns["descriptor_ratio"], np.nan)
    total = sum(weights.get(name, 0.0) for name in views)
    if total <= 0:
        raise ValueError(f"fusion weights must give some view a positive weight, got {weights}")
    m = next(iter(views.values())).size
    fused = np.ones(m)
    for name, values in views.items():
        w = weights.get(name, 0.0) / total
        if w <= 0 or m == 0:
            continue
        fused = np.minimum(fused, empirical_p_values(values) / w)
    return np.clip(fused, 0.0, 1.0)


def combined_score(
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
