"""Off-topic samples: isolation in the learned views plus encoder collapse (`scores.off_topic`;
SelfClean's LAD on the embedding alone when the pixel view is missing), fused with isolation in the
property view (image statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from quality_assets.issue_types.base import (
    CleaningDecision, Cutoff, GateSpec, IssueResult, IssueType, ScoringInputs, automatic_cut,
)
from quality_assets.issue_types.registry import register


@dataclass(frozen=True)
class OffTopicOptions(Cutoff):
    property_view: bool = True      # fuse the property view's isolation (a foreign domain in plain statistics)


@register
class OffTopic(IssueType):
    name = "off_topic"
    title = "Off-topic samples"
    description = ("Samples that do not belong to the dataset: far from the rest in the embedding and in "
                   "pixels, or joining the data late and in small clusters. Lower score = more isolated.")
    Options = OffTopicOptions
    gate = GateSpec(
        rate_key="off_topic_rate", threshold=0.10, blocking=False, what="off-topic rate",
        description="Off-topic rate as flagged by the automatic cut-off (warns unless configured to block).",
    )
    cleaning_order = 10

    def score(self, inputs: ScoringInputs, options: OffTopicOptions,
              found: Mapping[str, IssueResult]) -> IssueResult:
        from quality_assets.scores.off_topic import fused_off_topic_scores, lad_scores, off_topic_scores

        ssl = inputs.views["ssl"]
        pixel = inputs.views.get("pixel")
        if pixel is None:
            score = lad_scores(ssl.graph, ssl.vectors)
        else:
            score = off_topic_scores(ssl.graph, ssl.vectors, pixel.graph, pixel.vectors)
        properties = inputs.views.get("properties")
        if options.property_view and properties is not None:
            score = fused_off_topic_scores(score, properties.graph)
        flag = automatic_cut(score, options)
        return IssueResult(score=score, is_issue=flag,
                           summary={"off_topic_rate": float(flag.mean()) if inputs.n else 0.0})

    def cleaning(self, frame: pd.DataFrame, policy, mutable: np.ndarray) -> list[CleaningDecision]:
        if not policy.drop_off_topic:
            return []
        return [CleaningDecision(frame["off_topic_issue"].to_numpy(bool) & mutable, "drop", "off_topic")]
