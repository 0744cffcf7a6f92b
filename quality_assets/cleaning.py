"""The cleaned split: a declared policy over the issue scores, overridden by human review.

Input is one frame per sample (the manifest joined with its flags per issue type), so the policy
is a few vector operations. Every row gets an `action` (keep / drop / relabel) and a `reason`
naming the rule that decided it. Precedence, first match wins: a human review decision (the latest
per sample), then each issue type's cleaning rules in its `cleaning_order` (built in: off_topic
drop, train copy of a leaked eval image drop, non-representative duplicate-group member drop, label
error relabel / drop or keep), then keep. Issue types without a `cleaning_order` only flag.

The component policies (`scores/component_policies.py`: bad components, image pruning, label
intersection, label pruning; all off by default) act on whole duplicate groups over the members no
earlier rule dropped. Their drops come before the group's dedupe (so the representative is chosen
among the members that survive them), their relabels after it (so the kept representative carries
the component's labels) and before the label-error rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from quality_assets.issue_types import issue_types
from quality_assets.scores.component_policies import ComponentPolicy, component_decisions
from quality_assets.splits import EVAL_SPLITS, TRUSTED_SPLITS

# Where the component policies sit among the issue types' `cleaning_order`s: drops after off-topic
# (10) and leakage (20) and before the near-duplicate dedupe (30); relabels after it and before
# label errors (40).
COMPONENT_DROPS_ORDER = 25
COMPONENT_RELABELS_ORDER = 35


@dataclass(frozen=True)
class CleaningPolicy:
    drop_off_topic: bool = True
    dedupe_groups: bool = True
    drop_train_leaks: bool = True
    relabel_confidence: float = 0.8      # relabel a flagged label error at or above this vote share
    unconfident_label_errors: str = "drop"  # drop | keep
    touch_eval_splits: bool = False      # never drop/relabel val/test rows unless asked
    # Component policies over duplicate groups (scores/component_policies.py), all off by default.
    prune_bad_components: bool = False
    component_variance_threshold: float = 0.45
    component_variance_kind: str = "plain"  # plain | geometric | cubic
    prune_component_images: bool = False
    component_image_min_ratio: float = 0.5
    intersect_component_labels: bool = False
    prune_component_labels: bool = False
    component_label_min_ratio: float = 0.5

    def __post_init__(self) -> None:
        self.component_policy()  # a bad kind or ratio fails here, naming the field

    def component_policy(self) -> ComponentPolicy:
        return ComponentPolicy(
            prune_bad_components=self.prune_bad_components,
            variance_threshold=self.component_variance_threshold,
            variance_kind=self.component_variance_kind,
            prune_images=self.prune_component_images,
            image_min_ratio=self.component_image_min_ratio,
            intersect_labels=self.intersect_component_labels,
            prune_labels=self.prune_component_labels,
            label_min_ratio=self.component_label_min_ratio,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def cleaning_frame(samples: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """`samples` (sample_id, path, split, label, duplicate_group) joined with per-type columns
    `<type>_issue`, `<type>_suggested`, `<type>_confidence`, `<type>_partner_of` from the long
    `flags` rows (sample_id, issue_type, is_issue, suggested_label, confidence, is_partner)."""
    frame = samples.reset_index(drop=True).copy()
    frame["is_eval"] = frame["split"].isin(EVAL_SPLITS).to_numpy()
    position = pd.Series(np.arange(len(frame)), index=frame["sample_id"].to_numpy())
    flags = flags[flags["sample_id"].isin(position.index)]
    for t in issue_types():
        mine = flags[flags["issue_type"] == t.name]
        own, partner = mine[~mine["is_partner"].astype(bool)], mine[mine["is_partner"].astype(bool)]
        issue = np.zeros(len(frame), dtype=bool)
        suggested = np.full(len(frame), None, dtype=object)
        confidence = np.full(len(frame), np.nan)
        partner_of = np.zeros(len(frame), dtype=bool)
        at = position.loc[own["sample_id"]].to_numpy()
        issue[at] = own["is_issue"].fillna(False).to_numpy(bool)
        suggested[at] = own["suggested_label"].to_numpy(dtype=object)
        confidence[at] = pd.to_numeric(own["confidence"], errors="coerce").to_numpy(float)
        partner_of[position.loc[partner["sample_id"]].to_numpy()] = True
        frame[f"{t.name}_issue"] = issue
        frame[f"{t.name}_suggested"] = suggested
        frame[f"{t.name}_confidence"] = confidence
        frame[f"{t.name}_partner_of"] = partner_of
    return frame


def _complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of issue types the frame does not mention: nothing flagged."""
    defaults = {"issue": False, "suggested": None, "confidence": np.nan, "partner_of": False}
    missing = {f"{t.name}_{part}": value for t in issue_types() for part, value in defaults.items()
               if f"{t.name}_{part}" not in frame.columns}
    if "is_eval" not in frame.columns:
        missing["is_eval"] = frame["split"].isin(EVAL_SPLITS).to_numpy()
    return frame.assign(**missing) if missing else frame


def apply_policy(frame: pd.DataFrame, policy: CleaningPolicy, reviews: pd.DataFrame | None = None) -> pd.DataFrame:
    """Decide an action for every sample of a :func:`cleaning_frame`.

    `reviews` columns: sample_id, issue_type, decision (keep/drop/relabel), new_label, decided_at.
    """
    frame = _complete(frame.reset_index(drop=True))
    n = len(frame)
    action = np.full(n, "keep", dtype=object)
    reason = np.full(n, "no issue", dtype=object)
    new_label = frame["label"].to_numpy(dtype=object).copy()
    decided = np.zeros(n, dtype=bool)
    is_eval = frame["split"].isin(EVAL_SPLITS).to_numpy()
    # The trusted label book is never cleaned, not even when the eval splits may be.
    is_trusted = frame["split"].isin(TRUSTED_SPLITS).to_numpy()
    mutable = (~is_eval | policy.touch_eval_splits) & ~is_trusted

    if reviews is not None and len(reviews):
        latest = reviews.sort_values("decided_at").groupby("sample_id").tail(1).set_index("sample_id")
        review = frame["sample_id"].map(latest["decision"]).to_numpy(dtype=object)
        review_label = frame["sample_id"].map(latest["new_label"]).to_numpy(dtype=object)
        review_issue = frame["sample_id"].map(latest["issue_type"]).to_numpy(dtype=object)
        for what in ("keep", "drop", "relabel"):
            mask = review == what
            if what == "relabel":
                new_label[mask] = review_label[mask]
            for i in np.flatnonzero(mask & ~decided):
                action[i] = what
                reason[i] = f"review: {what} ({review_issue[i]})"
            decided |= mask

    def apply(mask: np.ndarray, what: str, why: np.ndarray | str, label: np.ndarray | None = None) -> None:
        nonlocal decided
        chosen = np.asarray(mask, dtype=bool) & ~decided
        if label is not None:
            new_label[chosen] = np.asarray(label, dtype=object)[chosen]
        action[chosen] = what
        reason[chosen] = why[chosen] if isinstance(why, np.ndarray) else why
        decided |= chosen

    components = policy.component_policy()
    rules: list[tuple[int, object]] = [(t.cleaning_order, t) for t in issue_types() if t.cleaning_order is not None]
    if components.active:
        rules += [(COMPONENT_DROPS_ORDER, "component drops"), (COMPONENT_RELABELS_ORDER, "component relabels")]
    component = None
    for _, rule in sorted(rules, key=lambda r: r[0]):
        if isinstance(rule, str) and rule == "component drops":
            # Shares count the members still in play, under their labels so far (a review's relabel).
            groups = (frame["duplicate_group"].fillna(-1).to_numpy(np.int64) if "duplicate_group" in frame.columns
                      else np.full(n, -1, dtype=np.int64))
            component = component_decisions(groups, new_label,
                                            components, counted=~(decided & (action == "drop")))
            gone = (component.action == "drop") & mutable & ~decided
            apply(gone, "drop", component.reason)
            # The dedupe then picks its representative among the members that are left.
            if gone.any():
                frame = frame.assign(duplicate_group=np.where(gone, -1, groups))
            continue
        if isinstance(rule, str) and rule == "component relabels":
            if component is not None:
                apply((component.action == "relabel") & mutable, "relabel", component.reason, component.new_label)
            continue
        for decision in rule.cleaning(frame, policy, mutable):
            apply(decision.mask, decision.action, decision.reason, decision.new_label)

    return pd.DataFrame({
        "sample_id": frame["sample_id"].to_numpy(),
        "path": frame["path"].to_numpy(),
        "split": frame["split"].to_numpy(),
        "label": np.where(action == "drop", frame["label"].to_numpy(dtype=object), new_label),
        "original_label": frame["label"].to_numpy(dtype=object),
        "action": action,
        "reason": reason,
    })
