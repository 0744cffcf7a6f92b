"""Cheap image-property checks (cleanvision's set), one issue type per property, all read from the
manifest's ingest statistics; no graph needed."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from quality_assets.issue_types.base import IssueResult, IssueType, ScoringInputs
from quality_assets.issue_types.registry import register
from quality_assets.scores.image_properties import ISSUE_TYPES, image_property_scores

_DESCRIPTIONS = {
    "dark": "Images whose bright end is still dark (95th brightness percentile low).",
    "light": "Images whose dark end is still light (5th brightness percentile high): washed out or blank.",
    "blurry": "Images with weak edges for the dataset (low Laplacian energy relative to the rest).",
    "low_information": "Images with little content: low entropy relative to the rest of the dataset.",
    "odd_size": "Images whose size is far outside the dataset's usual range.",
    "odd_aspect_ratio": "Images much wider than tall or the reverse.",
    "grayscale": "Grayscale images in a dataset that is mostly colour.",
    "exact_duplicate": "Byte- or pixel-identical files (exact copies).",
}


class ImagePropertyType(IssueType):
    """One image property; subclasses set `prop`."""

    prop: str

    def score(self, inputs: ScoringInputs, options, found: Mapping[str, IssueResult]) -> IssueResult | None:
        block = image_property_scores(inputs.manifest)
        block = block[block["issue_type"] == self.prop]
        if block.empty:
            return None  # the manifest lacks the statistics this property needs
        score = np.full(inputs.n, np.nan)
        flag = np.zeros(inputs.n, dtype=bool)
        index = block["index"].to_numpy()
        score[index] = block["score"].to_numpy()
        flag[index] = block["is_issue"].to_numpy(bool)
        return IssueResult(score=score, is_issue=flag)


for _prop in ISSUE_TYPES:
    register(type(f"Image_{_prop}", (ImagePropertyType,), {
        "__module__": __name__,
        "prop": _prop,
        "name": f"image_{_prop}",
        "title": "Image check: " + _prop.replace("_", " "),
        "description": _DESCRIPTIONS[_prop],
    }))
