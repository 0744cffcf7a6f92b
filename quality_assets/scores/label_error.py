"""Label errors: SelfClean's intra/extra distance ratio on the kNN graph, with a suggested label.

For a labelled sample i:

    d_same = distance to the nearest other sample with the same label
    d_diff = distance to the nearest sample with a different label
    score  = d_diff^2 / (d_same^2 + d_diff^2)        (0.5 when both are 0)

A sample sitting among other-label samples (d_diff << d_same) scores near 0.

Graph version: both distances are read off i's k neighbours, nearest first. When no neighbour
has i's label, the nearest same-label sample is at least as far as the k-th neighbour, so
d_same = d_k(i) (a lower bound: the score is then an upper bound, i.e. the sample is at least
this suspicious). Likewise d_diff = d_k(i) when all k neighbours share i's label (the score is
then a lower bound; such samples are the clean majority and rank after every sample that has an
other-label neighbour within k, as in the dense version). The dense ranking is reproduced once k
is large enough for most rows to contain both kinds of neighbour; see
quality_tests/scores/test_label_error.py for the k used.

Labels are compared as strings (multi-labels as sets, see `canonical_labels`). Unlabelled
samples (None / NaN) get NaN everywhere and are skipped as neighbours.

Suggested label: distance-weighted vote of the first `vote_k` labelled neighbours with weight
1 / (d + eps), eps = 0.1 x the median first-neighbour distance (so an exact duplicate does not
get an infinite vote); confidence = the winner's share of the weight. Ties go to the label seen
first in the data.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from quality_assets.knn import KnnGraph
from quality_assets.scores import canonical_labels

__all__ = [
    "class_confusion", "knn_vote_shares", "label_error_scores", "label_noise_ceiling", "noise_corrected_confidence",
]

# The clearest tenth of the samples sets the ceiling: on the matrix's cells (about 2% flips) it
# reads 0.92-0.995, on 2,500 digits with 10% / 20% uniform flips 0.94 / 0.87 (docs/BENCHMARKS.md,
# "Training consumer").
CEILING_QUANTILE = 0.9


def label_error_scores(
    graph: KnnGraph,
    labels: Sequence[Any] | np.ndarray,
    *,
    vote_k: int | None = None,
) -> pd.DataFrame:
    """Per-sample DataFrame[score, suggested_label, confidence, d_same, d_diff], index = position."""
    nb, dist = graph.neighbors, graph.distances.astype(np.float64)
    n, k = nb.shape
    canon = canonical_labels(labels)
    if canon.size != n:
        raise ValueError(f"labels has {canon.size} entries for {n} samples")
    codes, uniques = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)
    codes = codes.astype(np.int64)
    own = codes
    nl = codes[nb]
    labelled_nb = nl >= 0
    same = labelled_nb & (nl == own[:, None])
    diff = labelled_nb & (nl != own[:, None])
    rows = np.arange(n)
    kth = dist[:, -1]
    has_same = same.any(axis=1)
    has_diff = diff.any(axis=1)
    d_same = np.where(has_same, dist[rows, same.argmax(axis=1)], kth)
    d_diff = np.where(has_diff, dist[rows, diff.argmax(axis=1)], kth)
    denom = d_same**2 + d_diff**2
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(denom > 0, d_diff**2 / denom, 0.5)
    unlabelled = own < 0
    score[unlabelled] = np.nan
    d_same[unlabelled] = np.nan
    d_diff[unlabelled] = np.nan

    vk = k if vote_k is None else int(vote_k)
    if not 1 <= vk <= k:
        raise ValueError(f"vote_k must be in [1, {k}], got {vk}")
    m0 = float(np.median(dist[:, 0]))
    eps = 0.1 * m0 if m0 > 0 else 1e-6
    vl = nl[:, :vk]
    vmask = vl >= 0
    weights = 1.0 / (dist[:, :vk] + eps)
    r = np.repeat(rows, vk).reshape(n, vk)[vmask]
    votes = sp.csr_matrix(
        (weights[vmask], (r, vl[vmask])), shape=(n, max(1, len(uniques)))
    )  # duplicate (row, label) entries are summed: the weighted vote
    total = np.asarray(votes.sum(axis=1)).ravel()
    winner = np.asarray(votes.argmax(axis=1)).ravel()
    best = np.asarray(votes.max(axis=1).todense()).ravel()
    voted = total > 0
    suggested = np.full(n, None, dtype=object)
    uniq_arr = np.asarray(list(uniques), dtype=object)
    suggested[voted] = uniq_arr[winner[voted]] if uniq_arr.size else None
    confidence = np.full(n, np.nan)
    confidence[voted] = best[voted] / total[voted]

    return pd.DataFrame(
        {
            "score": score,
            "suggested_label": suggested,
            "confidence": confidence,
            "d_same": d_same,
            "d_diff": d_diff,
        }
    )


def knn_vote_shares(graph: KnnGraph, codes: np.ndarray, n_classes: int, *, vote_k: int | None = None) -> sp.csr_matrix:
    """[n, n_classes] sparse distance-weighted vote shares of each sample's labelled neighbours
    (rows sum to 1, or 0 without labelled neighbours); the vote `label_error_scores` suggests from."""
    nb, dist = graph.neighbors, graph.distances.astype(np.float64)
    n, k = nb.shape
    vk = k if vote_k is None else int(vote_k)
    m0 = float(np.median(dist[:, 0]))
    eps = 0.1 * m0 if m0 > 0 else 1e-6
    vl = np.asarray(codes)[nb[:, :vk]]
    vmask = vl >= 0
    weights = 1.0 / (dist[:, :vk] + eps)
    rows = np.repeat(np.arange(n), vk).reshape(n, vk)[vmask]
    votes = sp.csr_matrix((weights[vmask], (rows, vl[vmask])), shape=(n, max(1, n_classes)))
    total = np.asarray(votes.sum(axis=1)).ravel()
    return sp.diags(np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)) @ votes


def class_confusion(
    given: Sequence[Any] | np.ndarray,
    suggested: Sequence[Any] | np.ndarray,
    flagged: Sequence[bool] | np.ndarray,
) -> pd.DataFrame:
    """Counts of (given -> suggested) among flagged samples whose suggestion differs.

    Returns DataFrame[given_label, suggested_label, count], largest count first.
    """
    g = canonical_labels(given)
    s = canonical_labels(suggested)
    f = np.asarray(pd.Series(flagged).fillna(False), dtype=bool)
    if not (g.size == s.size == f.size):
        raise ValueError("given, suggested and flagged must have the same length")
    keep = f & pd.notna(g) & pd.notna(s)
    keep &= np.asarray(g != s, dtype=bool)
    df = pd.DataFrame({"given_label": g[keep], "suggested_label": s[keep]})
    if df.empty:
        return pd.DataFrame({"given_label": pd.Series(dtype=object),
                             "suggested_label": pd.Series(dtype=object),
                             "count": pd.Series(dtype=np.int64)})
    out = df.groupby(["given_label", "suggested_label"]).size().rename("count").reset_index()
    out = out.sort_values(
        ["count", "given_label", "suggested_label"], ascending=[False, True, True]
    )
    out["count"] = out["count"].astype(np.int64)
    return out.reset_index(drop=True)


def confidently_contradicted(given: np.ndarray, suggested: np.ndarray, confidence: np.ndarray,
                             threshold: float) -> np.ndarray:
    """bool [N]: the evidence names another label than the given one with at least `threshold`
    of its probability (NaN confidence, no suggestion or no given label: never).

    The label-error flag. SelfClean's fraction cut on the ranking needs its contamination guess
    above the real rate and fits the score's tail, whose shape follows the domain: on the
    benchmark matrix's seed-0 cells (DINO on the data) it flagged 4.2% of clean MNIST, 1.5% of
    clean Animal-MNIST and 0% of clean icons, and found none of the icons' label errors.
    A confident other label (the out-of-fold classifier and the neighbours' vote, averaged) at
    0.9 flagged 0.6% / 1.1% / 0.4% of the clean cells and found 88% / 57% / 7% of the
    contaminated cells' label errors (precision 0.69 / 0.48 / 0.33); the cut found 98% / 48% /
    0% (precision 0.32 / 0.70 / -). Those figures are the linear classifier's. With the linear and
    kernel models averaged, the default threshold is 0.85: on nine contaminated cells it finds about
    as many errors as 0.9 did before (recall 0.83 / 0.55 / 0.28 / 0.18 on MNIST, Animal-MNIST, clip
    art, icons) and flags fewer correct labels (docs/benchmarks/matrix.md, "Update 2026-12-02").
    The issue type passes the confidence corrected for the label noise the data implies
    (`noise_corrected_confidence`), so the threshold holds at 20% flips as at 2%.
    """
    given = np.asarray(given, dtype=object)
    suggested = np.asarray(suggested, dtype=object)
    conf = np.asarray(confidence, dtype=np.float64)
    known = pd.notna(given) & pd.notna(suggested) & np.isfinite(conf)
    other = np.zeros(len(given), dtype=bool)
    other[known] = suggested[known] != given[known]
    return known & other & (np.where(known, conf, 0.0) >= threshold)


def label_noise_ceiling(confidence: np.ndarray, *, quantile: float = CEILING_QUANTILE) -> float:
    """The confidence that the data's clearest samples reach (the `quantile` of the finite
    confidences; 1.0 when there are none).

    Evidence learned from the given labels cannot be surer than those labels: where a share e of
    them was flipped to other classes, a classifier trained on them and the neighbours' votes give
    even an unambiguous sample about 1 - e for its class. A fixed threshold on that evidence then
    finds fewer errors the more there are (2,500 digits, 20% flips: 13% of them at 0.85); read
    against this ceiling it does not. A weak representation lowers the ceiling too, but only where
    the clearest tenth is unsure, which a representation that separates any class avoids."""
    finite = np.asarray(confidence, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.quantile(finite, quantile)) if finite.size else 1.0


def noise_corrected_confidence(confidence: np.ndarray, ceiling: float, n_classes: int) -> np.ndarray:
    """The confidence with the label noise that `ceiling` implies taken out: the inverse of a
    channel that moves a share e = 1 - ceiling of each class's labels evenly to the other
    classes, q = (1 - e) p + e (1 - p) / (K - 1), solved for p and clipped to [0, 1]. The map is
    monotone, so suggestions and rankings keep their order. e is capped at half the rate at which
    labels carry no information ((K - 1) / K), so a weak representation's low ceiling cannot make
    every unsure sample confident."""
    conf = np.asarray(confidence, dtype=np.float64)
    if n_classes < 2:
        return conf.copy()
    noise = min(max(0.0, 1.0 - ceiling), 0.5 * (n_classes - 1) / n_classes)
    floor = noise / (n_classes - 1)
    return np.clip((conf - floor) / (1.0 - noise - floor), 0.0, 1.0)
