"""Train/eval leakage: eval (val/test) samples with a near duplicate in train.

Works on the candidate pairs of `near_duplicate.near_duplicate_pairs` (columns i, j, score and,
optionally, is_issue and evidence). A leak is a pair with one eval and one train endpoint.

Exact copies are transitive, near duplicates are not. Large groups of identical files reach the
pair table as a star (see near_duplicate), so two eval copies of a train image may be paired
only with each other; the exact-hash pairs (evidence mentioning sha256) are therefore closed
transitively: every eval member of an exact-hash component that holds a train member leaks to
that component's lowest-position train member, with score 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = [
    "EVAL_SPLITS",
    "TRAIN_SPLITS",
    "evidence_mentions",
    "leakage_pairs",
    "leakage_rate",
    "leakage_scores",
]

from quality_assets.splits import EVAL_SPLITS, TRAIN_SPLITS


def _split_masks(splits: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = pd.Series(splits, dtype=object).astype(str).str.strip().str.lower()
    return s.isin(TRAIN_SPLITS).to_numpy(), s.isin(EVAL_SPLITS).to_numpy()


def evidence_mentions(evidence: pd.Series, word: str) -> np.ndarray:
    """Rows whose evidence string contains `word`; on a categorical only the categories are
    searched (12M pair rows must not become 12M Python strings)."""
    if isinstance(evidence.dtype, pd.CategoricalDtype):
        cats = evidence.cat.categories.astype(str)
        hit = np.asarray(cats.str.contains(word, regex=False), dtype=bool)
        codes = evidence.cat.codes.to_numpy()
        return np.where(codes >= 0, hit[np.maximum(codes, 0)], False)
    return evidence.astype(str).str.contains(word, regex=False).fillna(False).to_numpy(dtype=bool)


def _exact_closure(pairs: pd.DataFrame, is_train: np.ndarray, is_eval: np.ndarray) -> pd.DataFrame:
    n = is_train.size
    if "evidence" not in pairs.columns or pairs.empty:
        return pd.DataFrame(columns=["i", "j", "score"])
    exact = evidence_mentions(pairs["evidence"], "sha256")
    if not exact.any():
        return pd.DataFrame(columns=["i", "j", "score"])
    i = pairs["i"].to_numpy(dtype=np.int64)[exact]
    j = pairs["j"].to_numpy(dtype=np.int64)[exact]
    adj = sp.coo_matrix((np.ones(i.size, np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    touched = np.zeros(n, dtype=bool)
    touched[i] = True
    touched[j] = True
    train_rep = np.full(comp.max() + 1, n, dtype=np.int64)
    tr = np.flatnonzero(touched & is_train)
    np.minimum.at(train_rep, comp[tr], tr)
    ev = np.flatnonzero(touched & is_eval)
    rep = train_rep[comp[ev]]
    ok = rep < n
    return pd.DataFrame({"i": ev[ok], "j": rep[ok], "score": np.zeros(int(ok.sum()))})


def _train_eval_pairs(
    pairs: pd.DataFrame, splits: Sequence[Any] | np.ndarray, flagged_only: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    is_train, is_eval = _split_masks(splits)
    df = pairs
    if flagged_only and "is_issue" in df.columns:
        df = df[df["is_issue"].fillna(False).astype(bool)]
    i = df["i"].to_numpy(dtype=np.int64)
    j = df["j"].to_numpy(dtype=np.int64)
    score = df["score"].to_numpy(dtype=np.float64)
    if "distance" in df.columns:
        dist = df["distance"].to_numpy(dtype=np.float64)
    else:
        dist = np.full(i.size, np.nan)
    fwd = is_eval[i] & is_train[j]
    bwd = is_train[i] & is_eval[j]
    out = pd.DataFrame(
        {
            "eval_index": np.concatenate([i[fwd], j[bwd]]),
            "train_index": np.concatenate([j[fwd], i[bwd]]),
            "score": np.concatenate([score[fwd], score[bwd]]),
            "distance": np.concatenate([dist[fwd], dist[bwd]]),
        }
    )
    closure = _exact_closure(pairs, is_train, is_eval)
    if not closure.empty:
        extra = pd.DataFrame(
            {
                "eval_index": closure["i"].to_numpy(dtype=np.int64),
                "train_index": closure["j"].to_numpy(dtype=np.int64),
                "score": 0.0,
                "distance": 0.0,
            }
        )
        out = pd.concat([out, extra], ignore_index=True)
    out = out.sort_values(["score", "eval_index", "train_index"], kind="stable")
    out = out.drop_duplicates(["eval_index", "train_index"]).reset_index(drop=True)
    return out, is_train, is_eval


def leakage_pairs(
    pairs: pd.DataFrame, splits: Sequence[Any] | np.ndarray, *, flagged_only: bool = True
) -> pd.DataFrame:
    """Eval/train pairs, lowest score first: DataFrame[eval_index, train_index, score, distance].

    With ``flagged_only`` and an `is_issue` column, only flagged pairs count (exact-hash copies
    always count). Without `is_issue`, every pair given counts.
    """
    out, _, _ = _train_eval_pairs(pairs, splits, flagged_only)
    return out


def leakage_scores(
    pairs: pd.DataFrame, splits: Sequence[Any] | np.ndarray, n: int
) -> np.ndarray:
    """Per sample: eval samples get their best (lowest) pair score to any train sample (1.0 if
    none); train and other samples get NaN. Uses all pairs, flagged or not."""
    if len(splits) != n:
        raise ValueError(f"splits has {len(splits)} entries for {n} samples")
    lp, _, is_eval = _train_eval_pairs(pairs, splits, flagged_only=False)
    out = np.full(n, np.nan)
    out[is_eval] = 1.0
    if not lp.empty:
        best = lp.groupby("eval_index")["score"].min()
        out[best.index.to_numpy(dtype=np.int64)] = np.minimum(1.0, best.to_numpy())
    return out


def leakage_rate(pairs: pd.DataFrame, splits: Sequence[Any] | np.ndarray) -> float:
    """Leaked eval samples / eval samples (0.0 when there are no eval samples).

    A sample leaks when it has a flagged pair (`is_issue`, or every given pair when the column
    is absent) with a train sample, or is an exact-hash copy of one.
    """
    lp, _, is_eval = _train_eval_pairs(pairs, splits, flagged_only=True)
    n_eval = int(is_eval.sum())
    if n_eval == 0:
        return 0.0
    return float(lp["eval_index"].nunique() / n_eval)
