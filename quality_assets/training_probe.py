"""The example training consumer: a linear probe on the embeddings, raw split vs cleaned split.

Both probes are evaluated on the same held-out set, the cleaned eval split (eval rows the policy
kept, with their given labels), so the difference measures what cleaning the *training* data did,
the third question of the SelfClean paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from quality_assets.splits import EVAL_SPLITS


@dataclass
class ProbeResult:
    n_train_raw: int
    n_train_cleaned: int
    n_eval: int
    accuracy_raw: float
    accuracy_cleaned: float

    @property
    def improvement(self) -> float:
        return self.accuracy_cleaned - self.accuracy_raw


def train_probes(frame: pd.DataFrame, vectors: np.ndarray, *, seed: int = 0, max_iter: int = 500) -> ProbeResult:
    """`frame`: split, label (cleaned), original_label, action per row of `vectors`."""
    is_eval = frame["split"].isin(EVAL_SPLITS).to_numpy()
    kept = (frame["action"] != "drop").to_numpy()
    raw_train = (~is_eval) & frame["original_label"].notna().to_numpy()
    clean_train = (~is_eval) & kept & frame["label"].notna().to_numpy()
    evaluation = is_eval & kept & frame["original_label"].notna().to_numpy()
    if evaluation.sum() == 0:
        raise ValueError("no labelled eval samples: the probe needs a val or test split")
    if raw_train.sum() == 0 or clean_train.sum() == 0:
        raise ValueError("no labelled train samples to train the probe on")

    def fit_score(mask: np.ndarray, labels: np.ndarray) -> float:
        if len(np.unique(labels[mask])) < 2:
            return float("nan")
        model = LogisticRegression(max_iter=max_iter, C=1.0, random_state=seed)
        model.fit(vectors[mask], labels[mask])
        return float((model.predict(vectors[evaluation]) == frame["original_label"].to_numpy(dtype=object)[evaluation]).mean())

    return ProbeResult(
        n_train_raw=int(raw_train.sum()), n_train_cleaned=int(clean_train.sum()), n_eval=int(evaluation.sum()),
        accuracy_raw=fit_score(raw_train, frame["original_label"].to_numpy(dtype=object)),
        accuracy_cleaned=fit_score(clean_train, frame["label"].to_numpy(dtype=object)),
    )
