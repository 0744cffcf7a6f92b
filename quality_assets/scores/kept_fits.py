"""What the fits kept between score runs share (the pixel classifier's, `scores.pixel_classifier`;
the representation classifiers', `scores.kept_label_model`): rows known by a digest of their content
key, and the rule that decides whether an earlier fit still serves the rows of this run.

A kept fit is a :class:`KeptFit`: the rows it has seen, which the two fits' dataclasses
(`pixel_classifier.PixelClassifierFit`, `kept_label_model.LabelModelFit`) extend with their models
and `settings`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_GROWTH_FRACTION", "KeptFit", "KeptProbabilities", "change_reason", "keep_rows", "key_digests",
           "reuse_reason", "unique_digests"]

# A kept fit serves until the labelled rows changed by more than this fraction of its training rows
# (the SSL model's `max_growth_fraction`).
MAX_GROWTH_FRACTION = 0.2


@dataclass
class KeptFit:
    """The rows a kept fit has seen and their out-of-fold probabilities. Rows are known by a 64-bit
    digest of their content key (`key_digests`); `trained` rows were dealt into the fit's folds (their
    probabilities come from the fold that held them out), the others were predicted later by the mean
    of all folds; `labels` are codes into `classes` (what each row was labelled when it was seen)."""

    classes: tuple[str, ...]
    keys: np.ndarray
    labels: np.ndarray
    anchored: np.ndarray
    trained: np.ndarray
    probabilities: np.ndarray

    @property
    def n_trained(self) -> int:
        return int(self.trained.sum())


def key_digests(keys: np.ndarray) -> np.ndarray:
    """64-bit digests of content keys (a fit of a million rows keeps 8 MB of keys, not the strings)."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(k).encode(), digest_size=8).digest(), "little")
                        for k in np.asarray(keys, dtype=object)), dtype=np.uint64, count=len(keys))


def unique_digests(keys: np.ndarray, what: str) -> np.ndarray:
    digests = key_digests(keys)
    if np.unique(digests).size != digests.size:
        raise ValueError(f"the {what}'s content keys must be unique")
    return digests


def reuse_reason(previous: KeptFit | None, settings: dict[str, Any], classes: tuple[str, ...], digests: np.ndarray,
                 codes: np.ndarray, anchored: np.ndarray,
                 max_growth_fraction: float) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
    """(why `previous` cannot serve this run's rows, None where it can; each row's place in it, -1
    for a new row; each of this run's class codes as a code of the fit's), the last two None where
    the fit was not looked into. `previous` must carry `settings` too."""
    if previous is None:
        return "no earlier fit", None, None
    if previous.settings != settings:
        return "the classifier's settings changed", None, None
    if set(previous.classes) != set(classes):
        return "the classes changed", None, None
    at = pd.Index(previous.keys).get_indexer(digests)
    columns = np.array([previous.classes.index(c) for c in classes], dtype=np.int64)
    return change_reason(previous, at, columns, codes, anchored, max_growth_fraction), at, columns


def change_reason(previous: KeptFit, at: np.ndarray, columns: np.ndarray, codes: np.ndarray,
                  anchored: np.ndarray, max_growth_fraction: float) -> str | None:
    """Why the rows changed too much for `previous` to serve them (None: it can). `at`: each row's
    place in `previous` (-1: new); `columns`: each of this run's class codes as a code of the fit's."""
    known = at >= 0
    if (previous.anchored[at[known]] != anchored[known]).any():
        return "the label book changed"   # an anchor's own label was its training target in every fold
    was_trained = known.copy()
    was_trained[known] = previous.trained[at[known]]
    relabelled = was_trained.copy()
    relabelled[was_trained] = previous.labels[at[was_trained]] != columns[codes[was_trained]]
    removed = previous.n_trained - int(was_trained.sum())
    changed = int((~was_trained).sum()) + int(relabelled.sum()) + removed
    growth = changed / max(previous.n_trained, 1)
    if growth > max_growth_fraction:
        return f"the labelled rows changed by {growth:.0%} > {max_growth_fraction:.0%}"
    return None


@dataclass
class KeptProbabilities:
    """What `keep_rows` gives: the rows' probabilities (columns in this run's class order), the fit
    grown by the new rows (the same fit without any), and how many rows its models predicted."""

    probabilities: np.ndarray
    fit: Any
    n_new: int
    n_predicted: int


def keep_rows(previous: KeptFit, at: np.ndarray, columns: np.ndarray, digests: np.ndarray, codes: np.ndarray,
              anchored: np.ndarray, predict: Callable[[np.ndarray], np.ndarray | None],
              **grown: np.ndarray) -> KeptProbabilities | None:
    """This run's probabilities from `previous`: the rows it holds keep theirs (each came from models
    that never saw the row, so it does not depend on the row's own label), a new anchored row gets
    its own label, the other new rows `predict(rows)` ([rows, fit classes]; None: it cannot, and
    neither can this). The new rows join the fit as predicted rows, not trained ones, so the next run
    reads them back; `grown`: the fit's other per-row arrays, already grown by them."""
    new = np.flatnonzero(at < 0)
    seen = np.flatnonzero(at >= 0)
    probs = np.zeros((len(digests), columns.size))
    probs[seen] = previous.probabilities[at[seen]][:, columns]
    fresh_anchor = new[anchored[new]]
    probs[fresh_anchor, codes[fresh_anchor]] = 1.0
    to_predict = new[~anchored[new]]
    predicted = np.zeros((0, len(previous.classes)))
    if to_predict.size:
        predicted = predict(to_predict)
        if predicted is None:
            return None
        probs[to_predict] = predicted[:, columns]
    fit = previous
    if new.size:
        new_probs = np.zeros((new.size, len(previous.classes)), dtype=previous.probabilities.dtype)
        new_probs[np.searchsorted(new, to_predict)] = predicted
        new_probs[np.searchsorted(new, fresh_anchor), columns[codes[fresh_anchor]]] = 1.0
        fit = replace(previous, keys=np.concatenate([previous.keys, digests[new]]),
                      labels=np.concatenate([previous.labels, columns[codes[new]].astype(previous.labels.dtype)]),
                      anchored=np.concatenate([previous.anchored, anchored[new]]),
                      trained=np.concatenate([previous.trained, np.zeros(new.size, bool)]),
                      probabilities=np.concatenate([previous.probabilities, new_probs]), **grown)
    return KeptProbabilities(probs, fit, int(new.size), int(to_predict.size))
