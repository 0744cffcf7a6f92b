"""Data valuation: KNN-Shapley (Jia et al. 2019) of train samples against the trusted split when there
is one, else against the eval (val/test) split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from quality_assets.issue_types.base import Cutoff, IssueResult, IssueType, ScoringInputs, automatic_cut
from quality_assets.issue_types.registry import register
from quality_assets.splits import TRUSTED_SPLITS


@dataclass(frozen=True)
class LowValueOptions(Cutoff):
    pass


@register
class LowValue(IssueType):
    name = "low_value"
    title = "Low-value training samples"
    description = ("Training samples that contribute least to classifying the trusted split, or the evaluation "
                   "split without one (KNN-Shapley); "
                   "the ones that hurt a nearest-neighbour classifier most rank first.")
    Options = LowValueOptions

    def score(self, inputs: ScoringInputs, options: LowValueOptions,
              found: Mapping[str, IssueResult]) -> IssueResult | None:
        reference = inputs.is_eval | np.isin(inputs.splits, TRUSTED_SPLITS)
        if not (reference.any() and inputs.labelled.any()):
            return None  # no eval or trusted split, or no labels: nothing to value against
        from quality_assets.scores.data_value import data_value_scores

        value = data_value_scores(inputs.graph, inputs.labels, inputs.splits)
        return IssueResult(score=value, is_issue=automatic_cut(value, options))
