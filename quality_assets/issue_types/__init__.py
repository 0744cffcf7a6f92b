"""Issue types: one module per type, all found through one registry (`registry.py`).

| module | issue types |
|---|---|
| near_duplicate | candidate pairs, verified and fused; groups and label conflicts |
| leakage | eval samples with a flagged near duplicate in train |
| off_topic | two-view isolation and encoder collapse (LAD on the embedding alone) |
| label_error | intra/extra distance ratio in both views, suggested label, class confusion (per tag, one-vs-rest, for multi-label data) |
| low_value | KNN-Shapley of train samples against the eval split (mean over tags for multi-label data) |
| image_properties | dark, light, blurry, low information, odd size/aspect, grayscale, exact duplicate |
"""

from quality_assets.issue_types.base import (
    CleaningDecision, Cutoff, GateSpec, IssueResult, IssueType, NoOptions, ScoringInputs, View, automatic_cut,
)
from quality_assets.issue_types.registry import (
    CLEANED_SPLIT_GATE_FIELDS, gate_fields, get_issue_type, issue_types, iter_gated, options_from_dict, register,
    unregister,
)

__all__ = [
    "CLEANED_SPLIT_GATE_FIELDS", "CleaningDecision", "Cutoff", "GateSpec", "IssueResult", "IssueType", "NoOptions",
    "ScoringInputs", "View", "automatic_cut", "gate_fields", "get_issue_type", "issue_types", "iter_gated",
    "options_from_dict", "register", "unregister",
]
