"""Train/eval leakage: eval samples with a flagged near duplicate in train, read from the
near-duplicate pairs; each eval image's best train partners are also searched for a light crop on
the colour grids (`scores.near_exact.crop_differences`), which the pair evidence ranks among natural
variants of the same drawing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from quality_assets.issue_types.base import CleaningDecision, GateSpec, IssueResult, IssueType, ScoringInputs
from quality_assets.issue_types.registry import register
from quality_assets.scores.leakage import leakage_pairs, leakage_scores
from quality_assets.scores.near_exact import CROP_MAX_DIFF, NEAR_EXACT_SCORE, crop_differences


@dataclass(frozen=True)
class LeakageOptions:
    crop_partners: int = 3            # each eval image's best train partners searched for a light crop (0: off)
    max_crop_searches: int = 500_000  # pairs searched (each both ways, ~1,300 pairs/s), the eval images' best partners first


def _cropped_copies(inputs: ScoringInputs, ranked: pd.DataFrame, partners: int, budget: int) -> pd.DataFrame:
    """Eval images that are a lightly cropped copy of one of their best train partners, either way round
    (`scores.near_exact.crop_differences`): DataFrame[eval_index, train_index, difference], best first.
    Eval images already ranked as exact or near-exact copies are not searched."""
    columns = ["eval_index", "train_index", "difference"]
    if inputs.colour_grids is None or partners <= 0 or ranked.empty:
        return pd.DataFrame(columns=columns)
    searched = ranked[ranked["score"] > NEAR_EXACT_SCORE]
    done = ranked.loc[ranked["score"] <= NEAR_EXACT_SCORE, "eval_index"].unique()
    searched = searched[~searched["eval_index"].isin(done)].groupby("eval_index").head(partners)
    # Over budget: each eval image's best partner first, then its second (`ranked` is best first).
    searched = searched.assign(_nth=searched.groupby("eval_index").cumcount())
    searched = searched.sort_values(["_nth", "score"], kind="stable").head(max(0, int(budget)))
    e = searched["eval_index"].to_numpy(dtype=np.int64)
    t = searched["train_index"].to_numpy(dtype=np.int64)
    grids, known = inputs.colour_grids, inputs.colour_grid_known

    def search(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray]:
        found = np.fmin(crop_differences(grids, known, a, b), crop_differences(grids, known, b, a))
        return (np.where(np.isnan(found), np.inf, found),)  # +inf: searched, no crop

    # Read back where an earlier run searched the pair: a drop searches only the pairs it brings.
    remembered = getattr(inputs.pair_verifier, "remembered", None)
    (difference,) = remembered(("crop_difference",), e, t, search) if remembered else search(e, t)
    hit = np.isfinite(difference)
    found = pd.DataFrame({"eval_index": e[hit], "train_index": t[hit], "difference": difference[hit]})
    return found.sort_values(["difference", "eval_index"], kind="stable").drop_duplicates("eval_index")


@register
class Leakage(IssueType):
    name = "leakage"
    title = "Leakage: evaluation samples duplicated in train"
    description = ("Validation/test samples with a flagged near duplicate in train, shown next to that train "
                   "partner. Lower score = more alike.")
    gallery = "partner"
    Options = LeakageOptions
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
        ranked = leakage_pairs(pairs, splits, flagged_only=False)   # lowest score first
        best = ranked.drop_duplicates("eval_index")
        partner = np.full(n, -1, dtype=np.int64)
        partner[best["eval_index"].to_numpy(dtype=np.int64)] = best["train_index"].to_numpy(dtype=np.int64)
        # A lightly cropped copy ranks right after the exact and near-exact ones: its pixels moved, so
        # the pair evidence ranks it among natural variants of the same drawing. Ranked, not flagged.
        cropped = _cropped_copies(inputs, ranked, options.crop_partners, options.max_crop_searches)
        if len(cropped):
            e = cropped["eval_index"].to_numpy(dtype=np.int64)
            score[e] = np.minimum(score[e], NEAR_EXACT_SCORE * (1.0 + cropped["difference"].to_numpy() / CROP_MAX_DIFF))
            partner[e] = cropped["train_index"].to_numpy(dtype=np.int64)
        flag = np.zeros(n, dtype=bool)
        flag[leakage_pairs(pairs, splits, flagged_only=True)["eval_index"].to_numpy(dtype=np.int64)] = True
        is_eval = inputs.is_eval
        n_eval = int(is_eval.sum())
        summary = {
            "n_eval": n_eval,
            "n_leaked_eval": int(flag.sum()),
            "leakage_rate": float(flag[is_eval].sum() / n_eval) if n_eval else 0.0,
            "n_cropped_copies_ranked": int(len(cropped)),
        }
        return IssueResult(score=score, is_issue=flag, partner=partner, summary=summary)

    def cleaning(self, frame: pd.DataFrame, policy, mutable: np.ndarray) -> list[CleaningDecision]:
        if not policy.drop_train_leaks:
            return []
        # Eval sets stay fixed: the train copy of a leaked eval image goes.
        train_copy = frame["leakage_partner_of"].to_numpy(bool) & ~frame["is_eval"].to_numpy(bool)
        return [CleaningDecision(train_copy, "drop", "leakage: train copy of an eval image")]
