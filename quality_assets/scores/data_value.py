"""Data valuation: KNN-Shapley (Jia et al., VLDB 2019) of train samples on the kNN graph.

The utility is a K-nearest-neighbour classifier's accuracy on the eval samples: the `trusted`
split (a small clean label book, see `quality_assets.splits`) when the data has labelled trusted
samples, else val and test pooled. A noisy val/test label makes a train sample that matches it look
valuable; the label book's labels were checked, so they are the better utility when there.
For one eval sample e with train samples sorted by distance a_1, a_2, ..., a_M and
c_i = 1[label(a_i) == label(e)], the exact Shapley values follow the recursion

    s(a_M) = c_M / M
    s(a_i) = s(a_{i+1}) + (c_i - c_{i+1}) / K * min(K, i) / i

and a train sample's value is the mean of s over the eval samples. A mislabelled train point
near eval samples of its true class gets a negative value: it only ever pushes their vote the
wrong way.

Truncation to the graph: for each eval sample e only its graph neighbours that are train
samples are known; they are exactly e's m <= k nearest train samples (any train sample missing
from the row is farther than the whole row). Above position m the recursion is exact; only its
starting value s(a_m) depends on the M - m unseen train samples. Modelling their labels as
matching e's at the train class prior p (the share of train samples with e's label) gives
E[s(a_m)] = (c_m - p) / m + p / M, which is used as the start; unseen train samples get 0 from
e (their exact value is of order 1/rank). So the truncation error is the unseen tail: the
ranking of the lowest-valued samples (the ones that matter) agrees with the exact version
from small k on, the whole ranking only for larger k (measured in
quality_tests/scores/test_data_value.py). A train sample that is among no eval sample's
neighbours gets value 0 (neutral), not a low value.

When there are no eval samples (or `splits` is None), every labelled sample is both train and
eval: its own row never lists itself, so this is leave-one-out validation.

Multi-label data (any sample with more than one label): each tag is its own binary problem
("has t / lacks t") and a sample's value is the mean of its per-tag values. Shapley values are
linear in the utility, so this is exactly the value for the mean per-tag accuracy of the
nearest-neighbour classifier; treating each label set as one class would call a sample that
shares all but one tag with its eval neighbours simply wrong.

Score in [0, 1], lower = lower value: score = 0.5 + 0.5 * value / max |value| (0.5 = neutral,
below 0.5 = harmful); NaN for samples that are not labelled train samples.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from quality_assets.knn import KnnGraph
from quality_assets.scores import canonical_labels
from quality_assets.splits import EVAL_SPLITS, TRAIN_SPLITS, TRUSTED_SPLITS
from quality_assets.scores.multi_label import is_multi_label, tag_matrix

__all__ = ["data_value_scores", "knn_shapley_values"]


def _masks(
    n: int, labelled: np.ndarray, splits: Sequence[Any] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if splits is None:
        return labelled.copy(), labelled.copy()
    if len(splits) != n:
        raise ValueError(f"splits has {len(splits)} entries for {n} samples")
    s = pd.Series(splits, dtype=object).astype(str).str.strip().str.lower()
    is_train = s.isin(TRAIN_SPLITS).to_numpy() & labelled
    is_trusted = s.isin(TRUSTED_SPLITS).to_numpy() & labelled
    is_eval = is_trusted if is_trusted.any() else s.isin(EVAL_SPLITS).to_numpy() & labelled
    if not is_eval.any():
        return is_train, is_train.copy()
    return is_train, is_eval


def _shapley(nb: np.ndarray, codes: np.ndarray, is_train: np.ndarray, is_eval: np.ndarray, knn_k: int) -> np.ndarray:
    """Truncated KNN-Shapley values (sum over eval samples / their count) for integer `codes`."""
    n, k = nb.shape
    values = np.zeros(n, dtype=np.float64)
    ev = np.flatnonzero(is_eval)
    n_train = int(is_train.sum())
    prior = np.bincount(codes[is_train], minlength=max(1, codes.max() + 1)) / max(1, n_train)
    if ev.size:
        for start in range(0, ev.size, 262_144):  # bounded temporaries on huge eval sets
            e = ev[start : start + 262_144]
            rows = nb[e]
            tr = is_train[rows]
            order = np.argsort(~tr, axis=1, kind="stable")  # train neighbours first, in order
            rows = np.take_along_axis(rows, order, axis=1)
            tr = np.take_along_axis(tr, order, axis=1)
            m = tr.sum(axis=1)
            c = ((codes[rows] == codes[e][:, None]) & tr).astype(np.float64)
            t = np.arange(1, k + 1, dtype=np.float64)
            coef = np.minimum(knn_k, t) / (knn_k * t)
            step = np.zeros_like(c)
            step[:, :-1] = (c[:, :-1] - c[:, 1:]) * coef[:-1]
            step[t[None, :] >= m[:, None]] = 0.0  # no step at or past the last train neighbour
            tail = np.cumsum(step[:, ::-1], axis=1)[:, ::-1]
            last = np.take_along_axis(c, np.maximum(m - 1, 0)[:, None], axis=1)[:, 0]
            # Expected exact value at the truncation point when the unseen train samples match
            # e's label at the class prior p: (c_m - p) / m + p / M (see the module docstring).
            p = prior[codes[e]]
            base = np.where(m > 0, (last - p) / np.maximum(m, 1) + p / max(1, n_train), 0.0)
            s = base[:, None] + tail
            valid = tr  # exactly the first m columns after the reorder
            values += np.bincount(rows[valid], weights=s[valid], minlength=n)
        values /= ev.size
    return values


def knn_shapley_values(
    graph: KnnGraph,
    labels: Sequence[Any] | np.ndarray,
    splits: Sequence[Any] | np.ndarray | None = None,
    *,
    knn_k: int = 5,
    multi_label: bool | None = None,
) -> np.ndarray:
    """Raw (truncated) KNN-Shapley value per sample; NaN for samples that are not labelled train.

    `multi_label`: None decides by the data (any sample with more than one label); True values the
    mean per-tag accuracy (see the module docstring)."""
    nb = graph.neighbors
    n, k = nb.shape
    if knn_k < 1:
        raise ValueError("knn_k must be >= 1")
    canon = canonical_labels(labels)
    if canon.size != n:
        raise ValueError(f"labels has {canon.size} entries for {n} samples")
    codes = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)[0].astype(np.int64)
    is_train, is_eval = _masks(n, codes >= 0, splits)
    if multi_label is None:
        multi_label = is_multi_label(canon)
    if multi_label:
        tags = tag_matrix(canon)
        values = np.zeros(n, dtype=np.float64)
        for t in range(tags.tags.size):
            tag_codes = np.where(tags.labelled, tags.present[:, t].astype(np.int64), -1)
            values += _shapley(nb, tag_codes, is_train, is_eval, knn_k)
        values /= max(1, tags.tags.size)
    else:
        values = _shapley(nb, codes, is_train, is_eval, knn_k)
    out = np.full(n, np.nan)
    out[is_train] = values[is_train]
    return out


def data_value_scores(
    graph: KnnGraph,
    labels: Sequence[Any] | np.ndarray,
    splits: Sequence[Any] | np.ndarray | None = None,
    *,
    knn_k: int = 5,
    multi_label: bool | None = None,
) -> np.ndarray:
    """KNN-Shapley mapped to [0, 1]: 0.5 + 0.5 * value / max|value| (lower = lower value)."""
    v = knn_shapley_values(graph, labels, splits, knn_k=knn_k, multi_label=multi_label)
    finite = np.isfinite(v)
    top = np.abs(v[finite]).max() if finite.any() else 0.0
    out = np.full(v.size, np.nan)
    out[finite] = 0.5 if top <= 0 else np.clip(0.5 + 0.5 * v[finite] / top, 0.0, 1.0)
    return out
