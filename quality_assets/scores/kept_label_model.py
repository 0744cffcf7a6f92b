"""The representation's label-error classifiers (`scores.confident_learning`: a linear and a kernel
model per fold, out of fold) kept between score runs, so that a drop predicts its new rows instead of
fitting every fold again: at 100k rows the fits and their held-out decision values took 26 of a 1%
drop's 134 s (docs/BENCHMARKS.md, "Incremental drops").

The rule is the pixel classifier's (`scores.pixel_classifier`, shared in `scores.kept_fits`): a fit
(:class:`LabelModelFit`) keeps its models (the standardiser and every fold's linear model, kernel
machine and Platt sigmoids) and every row's out-of-fold probabilities, by content key. A later run
keeps the probabilities of the rows the fit holds (each from models that never saw the row: they do
not depend on its label), predicts new rows with the mean of every fold's models (none saw them), and
fits again only when the labelled rows changed by more than a fraction of the fit's training rows
(new, relabelled and removed rows together), the classes or the label book changed, or the features
did.

The features are the SSL model's vectors (and the pixel view's): a retrained SSL model embeds every
row again, and a fit made on the old vectors must not read the new ones. The fit stores the vectors
of a few of its rows (`_PROBE_ROWS`, chosen by their content-key digests) and is kept only where the
rows it still has give those vectors again, up to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quality_assets.scores.confident_learning import (KERNEL_MAX_CLASSES, MAX_FEATURES, MAX_TRAIN_ROWS, LabelModel,
                                                      fit_label_model)
from quality_assets.scores.kept_fits import MAX_GROWTH_FRACTION, KeptFit, keep_rows, reuse_reason, unique_digests

__all__ = ["MAX_GROWTH_FRACTION", "LabelModelFit", "LabelModelProbabilities", "fit_kept_label_model",
           "label_model_probabilities", "label_model_settings"]

# Rows whose features a fit stores, to tell whether a later run's features are the ones it was made on.
_PROBE_ROWS = 64
# How far a probe row's features may move and still be the same (a re-embedding by the same model in
# other batches moves float32 vectors in their last bits; another model moves them by their scale).
_PROBE_TOLERANCE = 1e-4


@dataclass
class LabelModelFit(KeptFit):
    """The models of one out-of-fold fit and the rows it has seen (`kept_fits.KeptFit`). `probe` holds
    positions of rows whose features the fit stored (`probe_features`, float64)."""

    model: LabelModel
    probe: np.ndarray
    probe_features: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelModelProbabilities:
    """What :func:`label_model_probabilities` gives: the rows' probabilities (columns in the caller's
    class order), the fit they came from, whether it was fitted in this call, why, how many rows a
    kept fit gained and how many of them its models predicted (the others are anchored)."""

    probabilities: np.ndarray
    fit: LabelModelFit
    trained: bool
    reason: str
    n_new: int = 0
    n_predicted: int = 0

    @property
    def fit_changed(self) -> bool:
        """Whether `fit` holds anything the earlier fit did not (to be stored)."""
        return self.trained or self.n_new > 0


def label_model_settings(*, seed: int = 0, features: int) -> dict[str, Any]:
    """What a fit depends on besides the rows and the code: a kept fit must have been made with the
    same (scikit-learn's version too: the stored kernel machines are its objects)."""
    import sklearn

    return {"seed": int(seed), "features": int(features), "max_features": MAX_FEATURES,
            "max_train_rows": MAX_TRAIN_ROWS, "kernel_max_classes": KERNEL_MAX_CLASSES,
            "scikit_learn": sklearn.__version__}


def fit_kept_label_model(features: np.ndarray, codes: np.ndarray, classes, keys: np.ndarray, *, seed: int = 0,
                         anchor: np.ndarray | None = None) -> LabelModelFit:
    """`confident_learning.out_of_sample_probabilities` (folds dealt in the order of `keys`, the rows'
    unique content keys) that keeps its models, for later runs."""
    classes = tuple(str(c) for c in classes)
    return _fit(np.asarray(features), np.asarray(codes, dtype=np.int64), classes, keys,
                unique_digests(keys, "label model"), seed=seed, anchor=anchor)[0]


def label_model_probabilities(features: np.ndarray, codes: np.ndarray, classes, keys: np.ndarray, *,
                              previous: LabelModelFit | None = None,
                              max_growth_fraction: float = MAX_GROWTH_FRACTION, seed: int = 0,
                              anchor: np.ndarray | None = None) -> LabelModelProbabilities:
    """Out-of-sample probabilities of the rows from `previous` where it still holds (see the module
    docstring), else from a new fit. `classes`: the class name of each code; `keys`: unique content
    keys of the rows."""
    if max_growth_fraction < 0:
        raise ValueError(f"max_growth_fraction must be >= 0, got {max_growth_fraction}")
    classes = tuple(str(c) for c in classes)
    features = np.asarray(features)
    codes = np.asarray(codes, dtype=np.int64)
    anchored = np.zeros(len(codes), bool) if anchor is None else np.asarray(anchor, dtype=bool)
    settings = label_model_settings(seed=seed, features=features.shape[1])
    digests = unique_digests(keys, "label model")
    reason, at, columns = reuse_reason(previous, settings, classes, digests, codes, anchored, max_growth_fraction)
    if reason is None and not previous.model.folds:
        reason = "the earlier fit has no models (every row it saw was in the label book)"
    if reason is None:
        reason = _features_changed(previous, at, features)
    if reason is None:
        kept = keep_rows(previous, at, columns, digests, codes, anchored,
                         lambda rows: previous.model.predict(features[rows]))
        detail = (f"{kept.n_new} new rows predicted by its {len(previous.model.folds)} folds' models"
                  if kept.n_new else "no new rows")
        return LabelModelProbabilities(kept.probabilities, kept.fit, False, f"kept the earlier fit: {detail}",
                                       kept.n_new, kept.n_predicted)
    fit, probs = _fit(features, codes, classes, keys, digests, seed=seed, anchor=anchored)
    return LabelModelProbabilities(probs, fit, True, reason)


def _fit(features: np.ndarray, codes: np.ndarray, classes: tuple[str, ...], keys: np.ndarray, digests: np.ndarray,
         *, seed: int, anchor: np.ndarray | None) -> tuple[LabelModelFit, np.ndarray]:
    """(the fit, its rows' probabilities as fitted): the fit keeps them in float32, as the pixel
    classifier's does (a million rows of 100 classes hold 400 MB, rewritten by every drop)."""
    anchored = np.zeros(len(codes), bool) if anchor is None else np.asarray(anchor, dtype=bool)
    probs, model = fit_label_model(features, codes, len(classes), seed=seed, anchor=anchored, order_key=keys)
    probe = np.sort(np.argsort(digests, kind="stable")[:_PROBE_ROWS])
    fit = LabelModelFit(classes, digests, codes.astype(np.int32), anchored.copy(), np.ones(len(codes), bool),
                        probs.astype(np.float32), model, probe, features[probe].astype(np.float64),
                        label_model_settings(seed=seed, features=features.shape[1]))
    return fit, probs


def _features_changed(previous: LabelModelFit, at: np.ndarray, features: np.ndarray) -> str | None:
    """Why this run's features are not the ones `previous` was fitted on (None: they are, as far as
    its probe rows still here tell)."""
    here = np.full(len(previous.keys), -1)   # each of the fit's rows' position in this run (-1: gone)
    here[at[at >= 0]] = np.flatnonzero(at >= 0)
    here = here[previous.probe]
    present = here >= 0
    if not present.any():
        return "none of the rows whose features the fit checks is left"
    stored = previous.probe_features[present]
    current = features[here[present]].astype(np.float64)
    scale = float(np.abs(stored).max(initial=0.0))
    if not np.allclose(current, stored, rtol=_PROBE_TOLERANCE, atol=_PROBE_TOLERANCE * max(scale, 1e-12)):
        return "the features changed (another SSL model or view)"
    return None
