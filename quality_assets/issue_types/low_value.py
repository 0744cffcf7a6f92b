"""Data valuation: KNN-Shapley (Jia et al. 2019) of train samples against the eval split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


from quality_assets.issue_types.base import Cutoff, IssueResult, IssueType, ScoringInputs, automatic_cut
from quality_assets.issue_types.registry import register
from quality_assets.scores.data_value import data_value_scores


@dataclass(frozen=True)
class LowValueOptions(Cutoff):
    pass


@register
class LowValue(IssueType):
    name = "low_value"
    title = "Low-value training samples"
    description = ("Training samples that contribute least to classifying the evaluation split (KNN-Shapley); "
                   "the ones that hurt a nearest-neighbour classifier most rank first.")
    Options = LowValueOptions

    def score(self, inputs: ScoringInputs, options: LowValueOptions,
              found: Mapping[str, IssueResult]) -> IssueResult | None:
        if not (inputs.is_eval.any() and inputs.labelled.any()):
            return None  # no eval split or no labels: nothing to value against
        value = data_value_scores(inputs.graph, inputs.labels, inputs.splits)
        return IssueResult(score=value, is_issue=automatic_cut(value, options))
