"""Train/eval leakage: eval samples with a flagged near duplicate in train, read from the
near-duplicate pairs."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from quality_assets.issue_types.base import CleaningDecision, GateSpec, IssueResult, IssueType, ScoringInputs
from quality_assets.issue_types.registry import register
from quality_assets.scores.leakage import leakage_pairs, leakage_scores


@register
class Leakage(IssueType):
    name = "leakage"
    title = "Leakage: evaluation samples duplicated in train"
    description = ("Validation/test samples with a flagged near duplicate in train, shown next to that train "
                   "partner. Lower score = more alike.")
    gallery = "partner"
    requires = ("near_duplicate",)
    gate = GateSpec(
        rate_key="leakage_rate", threshold=0.05, blocking=True, what="leakage rate",
        description="Train/test leakage rate: eval samples with a near duplicate in train / eval samples.",
        metadata_keys=("n_leaked_eval", "n_eval"), worst_query="worst_leak_pairs",
    )
    cleaning_order = 20

    def score(self, inputs: ScoringInputs, options, found: Mapping[str, IssueResult]) -> IssueResult:
        n = inputs.n
        pairs = found["near_duplicate"].pairs
        splits = inputs.splits
        score = leakage_scores(pairs, splits, n)
        best = leakage_pairs(pairs, splits, flagged_only=False).drop_duplicates("eval_index")  # lowest score first
        partner = np.full(n, -1, dtype=np.int64)
        partner[best["eval_index"].to_numpy(dtype=np.int64)] = best["train_index"].to_numpy(dtype=np.int64)
        flag = np.zeros(n, dtype=bool)
        flag[leakage_pairs(pairs, splits, flagged_only=True)["eval_index"].to_numpy(dtype=np.int64)] = True
        is_eval = inputs.is_eval
        n_eval = int(is_eval.sum())
        summary = {
            "n_eval": n_eval,
            "n_leaked_eval": int(flag.sum()),
            "leakage_rate": float(flag[is_eval].sum() / n_eval) if n_eval else 0.0,
        }
        return IssueResult(score=score, is_issue=flag, partner=partner, summary=summary)

    def cleaning(self, frame: pd.DataFrame, policy, mutable: np.ndarray) -> list[CleaningDecision]:
        if not policy.drop_train_leaks:
            return []
        # Eval sets stay fixed: the train copy of a leaked eval image goes.
        train_copy = frame["leakage_partner_of"].to_numpy(bool) & ~frame["is_eval"].to_numpy(bool)
        return [CleaningDecision(train_copy, "drop", "leakage: train copy of an eval image")]
