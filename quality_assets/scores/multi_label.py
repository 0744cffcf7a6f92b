"""Multi-label data: every tag scored on its own (one-vs-rest).

A multi-label sample carries a set of tags, stored as the sorted tags joined with '|'. Treating
each distinct set as one class (what `canonical_labels` comparisons do) cannot see a single
flipped tag: `cat|dog` among `cat` neighbours is just "another class", the suggestion is a whole
set and the confusion table counts sets. Here each tag t is its own binary problem, "has t /
lacks t", over the labelled samples:

    kNN evidence      SelfClean's intra/extra distance ratio on the binary labels (`tag_ratio_scores`,
                      the same formula as `label_error.label_error_scores`), and the neighbours'
                      distance-weighted share of t (`tag_vote_shares`, for the suggestion)
    confident learning out-of-fold one-vs-rest probabilities of a classifier on the representation
                      and cleanlab's multi-label label quality per tag and its issue flags
                      (`confident_learning.multi_label_confident_learning`)

Per tag the two agree-with-the-given-state qualities are fused by a geometric mean (as the
single-label scores are); a sample's score is its worst tag. Each tag's posterior is the
classifier's out-of-fold probability and the neighbours' share, averaged (the single-label
suggestion's rule). The suggestion is the set those posteriors prefer: the given set with every
tag added or removed whose other state is likelier (`MultiLabelErrors.added` / `.removed` name
them), its confidence the posterior of the least sure change (the least sure tag when nothing
changes). Removing a sample's only tag suggests no label (None): an empty set is not a label
(ingest rejects untagged train rows), so the cleaning policy drops or keeps such a sample.

The confusion table is per tag, in the `class_confusion` columns: (t -> "(no t)") counts flagged
samples whose suggestion removes t (an extra tag), ("(no t)" -> t) those whose suggestion adds it
(a missed tag).

Pure NumPy / scikit-learn / cleanlab: no Dagster, no DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from quality_assets.knn import KnnGraph
from quality_assets.scores import canonical_labels
from quality_assets.scores.confident_learning import multi_label_confident_learning

__all__ = ["MultiLabelErrors", "TagMatrix", "absent_tag", "is_multi_label", "multi_label_errors",
           "tag_confusion", "tag_matrix", "tag_ratio_scores", "tag_sets", "tag_vote_shares"]

SEPARATOR = "|"
_CHUNK_CELLS = 8_000_000  # rows x k x tags per chunk of the ratio computation


def absent_tag(tag: str) -> str:
    """The confusion table's name for "lacks this tag"."""
    return f"(no {tag})"


def is_multi_label(labels: Sequence[Any] | np.ndarray) -> bool:
    """True when any sample carries more than one label."""
    canon = canonical_labels(labels)
    return any(SEPARATOR in value for value in pd.unique(canon[pd.notna(canon)]))


@dataclass
class TagMatrix:
    present: np.ndarray     # [n, T] bool: sample i carries tag t (False for unlabelled rows)
    tags: np.ndarray        # [T] tag names, sorted
    labelled: np.ndarray    # [n] bool: the sample has at least one tag


def tag_matrix(labels: Sequence[Any] | np.ndarray) -> TagMatrix:
    """The [n, T] tag-presence matrix of '|'-joined label sets (canonicalised first)."""
    canon = canonical_labels(labels)
    labelled = pd.notna(canon)
    codes, sets = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)
    parts = [str(s).split(SEPARATOR) for s in sets]
    tags = np.asarray(sorted({t for p in parts for t in p}), dtype=object)
    index = {t: j for j, t in enumerate(tags)}
    by_set = np.zeros((len(parts), tags.size), dtype=bool)
    for row, p in enumerate(parts):
        by_set[row, [index[t] for t in p]] = True
    present = np.zeros((canon.size, tags.size), dtype=bool)
    present[labelled] = by_set[codes[labelled]]
    return TagMatrix(present, tags, np.asarray(labelled, dtype=bool))


def tag_sets(present: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """Rows of a presence matrix as '|'-joined label sets (None for an empty row)."""
    tags = np.asarray(tags, dtype=object)
    return np.asarray([SEPARATOR.join(tags[row]) if row.any() else None for row in np.asarray(present, bool)],
                      dtype=object)


def _vote_weights(graph: KnnGraph, labelled: np.ndarray, vote_k: int | None) -> sp.csr_matrix:
    """[n, n] distance-weighted votes of each row's first `vote_k` labelled neighbours, rows sum to 1
    (0 without labelled neighbours); the weights `label_error.knn_vote_shares` uses."""
    nb, dist = graph.neighbors, graph.distances.astype(np.float64)
    n, k = nb.shape
    vk = k if vote_k is None else int(vote_k)
    if not 1 <= vk <= k:
        raise ValueError(f"vote_k must be in [1, {k}], got {vk}")
    m0 = float(np.median(dist[:, 0]))
    eps = 0.1 * m0 if m0 > 0 else 1e-6
    cols = nb[:, :vk]
    mask = labelled[cols]
    weights = np.where(mask, 1.0 / (dist[:, :vk] + eps), 0.0)
    total = weights.sum(1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    rows = np.repeat(np.arange(n), vk)
    return sp.csr_matrix((weights.ravel(), (rows, cols.ravel())), shape=(n, n))


def tag_vote_shares(graph: KnnGraph, tags: TagMatrix, *, vote_k: int | None = None) -> np.ndarray:
    """[n, T] each tag's distance-weighted share among a sample's labelled neighbours (NaN rows for
    samples without a labelled neighbour)."""
    w = _vote_weights(graph, tags.labelled, vote_k)
    shares = np.clip(np.asarray(w @ tags.present.astype(np.float64)), 0.0, 1.0)
    shares[np.asarray(w.sum(1)).ravel() <= 0] = np.nan
    return shares


def tag_ratio_scores(graph: KnnGraph, tags: TagMatrix) -> np.ndarray:
    """[n, T] SelfClean's intra/extra distance ratio per tag on the binary "has t / lacks t" labels:
    d_diff^2 / (d_same^2 + d_diff^2) over the labelled neighbours, with the k-th distance standing in
    for a side no neighbour shows (as `label_error.label_error_scores`). NaN for unlabelled rows."""
    nb, dist = graph.neighbors, graph.distances.astype(np.float64)
    n, k = nb.shape
    n_tags = tags.tags.size
    out = np.full((n, n_tags), np.nan)
    labelled, present = tags.labelled, tags.present
    step = max(1, _CHUNK_CELLS // max(1, k * n_tags))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        rows = rows[labelled[rows]]
        if rows.size == 0:
            continue
        cols = nb[rows]
        d = dist[rows]
        usable = labelled[cols][:, :, None]                                  # [r, k, 1]
        same = usable & (present[cols] == present[rows][:, None, :])         # [r, k, T]
        diff = usable & ~same
        kth = d[:, -1][:, None]
        first_same = np.take_along_axis(d, same.argmax(1), axis=1)           # [r, T]
        first_diff = np.take_along_axis(d, diff.argmax(1), axis=1)
        d_same = np.where(same.any(1), first_same, kth)
        d_diff = np.where(diff.any(1), first_diff, kth)
        denom = d_same**2 + d_diff**2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(denom > 0, d_diff**2 / np.where(denom > 0, denom, 1.0), 0.5)
    return out


def tag_confusion(present: np.ndarray, tags: np.ndarray, flip: np.ndarray, flagged: np.ndarray) -> pd.DataFrame:
    """Per-tag confusion among flagged samples: `flip` [n, T] marks the tags their suggestion changes.

    Rows (t, "(no t)") count extra tags (given, suggested removed), rows ("(no t)", t) missed tags
    (lacking, suggested added). Returns DataFrame[given_label, suggested_label, count], largest count
    first (`label_error.class_confusion`'s shape, so the class_confusion table holds either).
    """
    present = np.asarray(present, dtype=bool)
    changed = np.asarray(flip, dtype=bool) & np.asarray(flagged, dtype=bool)[:, None]
    tags = np.asarray(tags, dtype=object)
    absent = np.asarray([absent_tag(t) for t in tags], dtype=object)
    extra = (changed & present).sum(0)
    missed = (changed & ~present).sum(0)
    df = pd.DataFrame({
        "given_label": np.concatenate([tags, absent]),
        "suggested_label": np.concatenate([absent, tags]),
        "count": np.concatenate([extra, missed]).astype(np.int64),
    })
    df = df[df["count"] > 0]
    df = df.sort_values(["count", "given_label", "suggested_label"], ascending=[False, True, True])
    return df.reset_index(drop=True)


@dataclass
class MultiLabelErrors:
    score: np.ndarray           # [n] worst tag's fused quality, lower = more likely mislabelled; NaN unlabelled
    suggested: np.ndarray       # [n] suggested label set ('|'-joined), None when unlabelled / empty set
    confidence: np.ndarray      # [n] posterior of the least sure change (of the least sure tag without one)
    tags: np.ndarray            # [T] tag names
    present: np.ndarray         # [n, T] given tags
    tag_quality: np.ndarray     # [n, T] fused per-tag quality (the score is its row minimum)
    tag_posterior: np.ndarray   # [n, T] posterior that the sample carries the tag
    worst_tag: np.ndarray       # [n] index of the worst tag (-1 unlabelled)
    flip: np.ndarray            # [n, T] bool: tags the suggestion adds or removes
    cleanlab_issues: np.ndarray | None = None  # [n] cleanlab's multi-label flags, when it ran

    def _joined(self, mask: np.ndarray) -> np.ndarray:
        return np.asarray([SEPARATOR.join(self.tags[row]) if row.any() else None for row in mask], dtype=object)

    @property
    def added(self) -> np.ndarray:
        """[n] tags the suggestion adds ('|'-joined), None where none."""
        return self._joined(self.flip & ~self.present)

    @property
    def removed(self) -> np.ndarray:
        """[n] tags the suggestion removes ('|'-joined), None where none."""
        return self._joined(self.flip & self.present)


def multi_label_errors(
    graph: KnnGraph,
    labels: Sequence[Any] | np.ndarray,
    *,
    vectors: np.ndarray | None = None,
    extra_graphs: Sequence[KnnGraph] = (),
    confident_learning: bool = True,
    min_labelled: int = 20,
    seed: int = 0,
    order_key: np.ndarray | None = None,
) -> MultiLabelErrors:
    """One-vs-rest label errors of multi-label data (see the module docstring).

    `extra_graphs`: other views' graphs (the pixel view); each tag's distance ratio is the geometric
    mean over all views. `vectors`: the representation the one-vs-rest classifier is trained on
    (confident learning is skipped without it or with fewer than `min_labelled` labelled samples).
    """
    tags = tag_matrix(labels)
    n, n_tags = tags.present.shape
    if n != graph.neighbors.shape[0]:
        raise ValueError(f"labels has {n} entries for {graph.neighbors.shape[0]} samples")
    labelled, present = tags.labelled, tags.present
    ratio = tag_ratio_scores(graph, tags)
    for other in extra_graphs:
        ratio = np.sqrt(ratio * tag_ratio_scores(other, tags))
    quality = ratio
    posterior = tag_vote_shares(graph, tags)
    cleanlab_issues = None
    rows = np.flatnonzero(labelled)
    if confident_learning and vectors is not None and rows.size >= min_labelled and n_tags >= 2:
        learned = multi_label_confident_learning(np.asarray(vectors)[rows], present[rows], seed=seed,
                                                 order_key=None if order_key is None else np.asarray(order_key)[rows])
        quality = quality.copy()
        quality[rows] = np.sqrt(ratio[rows] * learned.tag_quality)
        # Posterior: the classifier's out-of-fold probability and the neighbours' share, averaged
        # (the classifier alone where no labelled neighbour votes).
        votes = posterior[rows]
        posterior[rows] = np.where(np.isnan(votes), learned.pred_probs, 0.5 * learned.pred_probs + 0.5 * votes)
        cleanlab_issues = np.zeros(n, dtype=bool)
        cleanlab_issues[rows] = learned.is_issue

    score = np.full(n, np.nan)
    worst = np.full(n, -1, dtype=np.int64)
    flip = np.zeros((n, n_tags), dtype=bool)
    suggested = np.full(n, None, dtype=object)
    confidence = np.full(n, np.nan)
    if rows.size and n_tags:
        q = np.where(np.isnan(quality[rows]), np.inf, quality[rows])
        worst[rows] = q.argmin(1)
        score[rows] = quality[rows, worst[rows]]
        # The suggested set: every tag in the state its posterior prefers (ties keep the given state).
        p = posterior[rows]
        known = np.isfinite(p)
        p_given = np.where(present[rows], p, 1.0 - p)
        changes = known & (p_given < 0.5)
        flip[rows] = changes
        # Confidence: the least sure change (the tags a relabel would touch); without a change, the
        # least sure tag of the given set.
        p_state = np.where(known, np.maximum(p_given, 1.0 - p_given), np.inf)
        sure = np.where(changes.any(1), np.where(changes, p_state, np.inf).min(1), p_state.min(1))
        confidence[rows] = np.where(np.isfinite(sure), sure, np.nan)
        suggested[rows] = tag_sets(present[rows] ^ flip[rows], tags.tags)
    return MultiLabelErrors(score=score, suggested=suggested, confidence=confidence, tags=tags.tags,
                            present=present, tag_quality=quality, tag_posterior=posterior, worst_tag=worst,
                            flip=flip, cleanlab_issues=cleanlab_issues)
