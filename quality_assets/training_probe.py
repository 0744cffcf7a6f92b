"""The example training consumer: a linear probe on the embeddings, raw split vs cleaned split.

Both probes are evaluated on the same held-out set, so the difference measures what cleaning the
*training* data did, the third question of the SelfClean paper: the `trusted` split (the label
book, never touched by cleaning) when there is one, else the cleaned eval split (eval rows the
policy kept, with their given labels). Only the train split is trained on. The probe reads the same
frozen embeddings the audit scored, so it can hardly show the effect of cleaning; the CNN consumer
(`quality_assets.consumer_cnn`) trains on the pixels and can.

Multi-label data (any label with more than one tag): the probe is one-vs-rest, one logistic
regression per tag, and a prediction is the set of tags whose model says yes. `accuracy_*` is then
the share of eval samples whose whole tag set is predicted, `tag_accuracy_*` the share of correct
(sample, tag) decisions (Hamming accuracy), which moves with every single tag cleaning fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from quality_assets.scores.multi_label import is_multi_label, tag_matrix
from quality_assets.splits import EVAL_SPLITS, TRAIN_SPLITS, TRUSTED_SPLITS


@dataclass
class ProbeResult:
    n_train_raw: int
    n_train_cleaned: int
    n_eval: int
    accuracy_raw: float
    accuracy_cleaned: float
    multi_label: bool = False
    tag_accuracy_raw: float = float("nan")       # multi-label: per-(sample, tag) accuracy
    tag_accuracy_cleaned: float = float("nan")
    eval_set: str = "cleaned eval"             # or "trusted"

    @property
    def improvement(self) -> float:
        return self.accuracy_cleaned - self.accuracy_raw


@dataclass
class _ConsumerRows:
    raw_train: np.ndarray      # train rows with a given label
    clean_train: np.ndarray    # train rows the cleaning kept, with their (corrected) label
    eval_kept: np.ndarray      # val/test rows the cleaning kept, with a given label
    trusted: np.ndarray        # trusted rows with a label


def _consumer_rows(frame: pd.DataFrame) -> _ConsumerRows:
    split = frame["split"].astype(str).str.lower()
    labelled = frame["original_label"].notna().to_numpy()
    is_train = split.isin(TRAIN_SPLITS).to_numpy()
    kept = (frame["action"] != "drop").to_numpy()
    return _ConsumerRows(raw_train=is_train & labelled, clean_train=is_train & kept & frame["label"].notna().to_numpy(),
                         eval_kept=split.isin(EVAL_SPLITS).to_numpy() & kept & labelled,
                         trusted=split.isin(TRUSTED_SPLITS).to_numpy() & labelled)


def consumer_skip_reason(frame: pd.DataFrame, consumer: str = "linear") -> str | None:
    """Why a consumer cannot compare raw and cleaned training on this cleaned split, or None.

    A dataset without a train split (a test set audited on its own) or without an evaluation split
    (a training set audited before anyone split it) is ordinary input: the audit's scores and its
    cleaned split stand, only the consumer has nothing to train or nothing to be scored on. The CNN
    consumer reports its raw and cleaned eval figures on val/test, so a trusted split alone does not
    serve it; the linear probe evaluates on the trusted split when there is one."""
    rows = _consumer_rows(frame)
    if not rows.raw_train.any():
        return "no labelled train samples: the consumer trains on the train split, and this data has none"
    if not rows.clean_train.any():
        return "the cleaning dropped every train sample: there is no cleaned train split to train on"
    if consumer == "cnn" and not rows.eval_kept.any():
        return "no labelled val or test samples: the CNN consumer is scored on the val and test splits"
    if not (rows.eval_kept.any() or rows.trusted.any()):
        return "no labelled eval samples: the consumer is scored on a trusted, val or test split, and this data has none"
    return None


def train_probes(frame: pd.DataFrame, vectors: np.ndarray, *, seed: int = 0, max_iter: int = 500) -> ProbeResult:
    """`frame`: split, label (cleaned), original_label, action per row of `vectors`."""
    reason = consumer_skip_reason(frame)
    if reason:
        raise ValueError(reason)
    rows = _consumer_rows(frame)
    raw_train, clean_train = rows.raw_train, rows.clean_train
    is_trusted = rows.trusted
    evaluation = is_trusted if is_trusted.any() else rows.eval_kept

    original = frame["original_label"].to_numpy(dtype=object)
    cleaned = frame["label"].to_numpy(dtype=object)
    eval_set = "trusted" if is_trusted.any() else "cleaned eval"
    if is_multi_label(np.concatenate([original, cleaned])):
        result = _multi_label_probes(vectors, original, cleaned, raw_train, clean_train, evaluation,
                                     seed=seed, max_iter=max_iter)
        result.eval_set = eval_set
        return result

    def fit_score(mask: np.ndarray, labels: np.ndarray) -> float:
        if len(np.unique(labels[mask])) < 2:
            return float("nan")
        model = LogisticRegression(max_iter=max_iter, C=1.0, random_state=seed)
        model.fit(vectors[mask], labels[mask])
        return float((model.predict(vectors[evaluation]) == original[evaluation]).mean())

    return ProbeResult(
        n_train_raw=int(raw_train.sum()), n_train_cleaned=int(clean_train.sum()), n_eval=int(evaluation.sum()),
        accuracy_raw=fit_score(raw_train, original),
        accuracy_cleaned=fit_score(clean_train, cleaned), eval_set=eval_set,
    )


def _multi_label_probes(vectors: np.ndarray, original: np.ndarray, cleaned: np.ndarray, raw_train: np.ndarray,
                        clean_train: np.ndarray, evaluation: np.ndarray, *, seed: int, max_iter: int) -> ProbeResult:
    """One-vs-rest probes; (set accuracy, tag accuracy) on the eval samples' given tags."""
    n = len(original)
    tags = tag_matrix(np.concatenate([original, cleaned]))   # one tag list for both label columns
    given, fixed = tags.present[:n], tags.present[n:]
    truth = given[evaluation]

    def fit_score(mask: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        varied = y[mask].any(0) & ~y[mask].all(0)
        if not varied.any():
            return float("nan"), float("nan")
        predicted = np.repeat(y[mask].any(0)[None, :], int(evaluation.sum()), axis=0)  # constant tags
        model = OneVsRestClassifier(LogisticRegression(max_iter=max_iter, C=1.0, random_state=seed))
        model.fit(vectors[mask], y[mask][:, varied].astype(np.int64))
        predicted[:, varied] = np.asarray(model.predict(vectors[evaluation])).reshape(-1, int(varied.sum())) > 0
        correct = predicted == truth
        return float(correct.all(1).mean()), float(correct.mean())

    raw_set, raw_tag = fit_score(raw_train, given)
    clean_set, clean_tag = fit_score(clean_train, fixed)
    return ProbeResult(
        n_train_raw=int(raw_train.sum()), n_train_cleaned=int(clean_train.sum()), n_eval=int(evaluation.sum()),
        accuracy_raw=raw_set, accuracy_cleaned=clean_set, multi_label=True,
        tag_accuracy_raw=raw_tag, tag_accuracy_cleaned=clean_tag,
    )
