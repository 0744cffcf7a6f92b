"""The cleaned split: a declared policy over the issue scores, overridden by human review.

Input is one frame per sample (the manifest joined with its flags), so the policy is a few vector
operations. Every row gets an `action` (keep / drop / relabel) and a `reason` naming the rule that
decided it. Precedence, first match wins:
    1. a human review decision (the latest per sample)
    2. off_topic flagged                       -> drop
    3. train copy of a leaked eval image       -> drop   (eval sets stay fixed)
    4. non-representative duplicate-group member -> drop (one representative kept per group;
       an eval member is preferred as representative, so the train copies go)
    5. label error flagged, confident suggestion -> relabel
    6. label error flagged, not confident        -> drop or keep-with-flag (policy)
    7. otherwise keep
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class CleaningPolicy:
    drop_off_topic: bool = True
    dedupe_groups: bool = True
    drop_train_leaks: bool = True
    relabel_confidence: float = 0.8      # relabel a flagged label error at or above this vote share
    unconfident_label_errors: str = "drop"  # drop | keep
    touch_eval_splits: bool = False      # never drop/relabel val/test rows unless asked

    def to_dict(self) -> dict:
        return asdict(self)


def apply_policy(samples: pd.DataFrame, policy: CleaningPolicy, reviews: pd.DataFrame | None = None) -> pd.DataFrame:
    """Decide an action for every sample.

    `samples` columns: sample_id, path, split, label, off_topic_issue (bool), duplicate_group (int, -1 none),
    leak_partner_of_eval (bool: a train sample that duplicates an eval sample), label_error_issue (bool),
    suggested_label, label_confidence.
    `reviews` columns: sample_id, issue_type, decision (keep/drop/relabel), new_label, decided_at.
    """
    frame = samples.copy()
    n = len(frame)
    action = np.full(n, "keep", dtype=object)
    reason = np.full(n, "no issue", dtype=object)
    new_label = frame["label"].to_numpy(dtype=object).copy()
    decided = np.zeros(n, dtype=bool)
    is_eval = frame["split"].isin(EVAL_SPLITS).to_numpy()
    mutable = ~is_eval | policy.touch_eval_splits

    def decide(mask: np.ndarray, what: str, why: str) -> None:
        nonlocal decided
        chosen = mask & ~decided
        action[chosen] = what
        reason[chosen] = why
        decided |= chosen

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

    if policy.drop_off_topic:
        decide(frame["off_topic_issue"].to_numpy(bool) & mutable, "drop", "off_topic")
    if policy.drop_train_leaks:
        decide(frame["leak_partner_of_eval"].to_numpy(bool) & ~is_eval, "drop",
               "leakage: train copy of an eval image")
    if policy.dedupe_groups:
        duplicate_member = _non_representatives(frame)
        decide(duplicate_member & mutable, "drop", "near_duplicate: not the group representative")
    flagged = frame["label_error_issue"].to_numpy(bool) & mutable
    suggestion = frame["suggested_label"].to_numpy(dtype=object)
    confident = (frame["label_confidence"].fillna(0).to_numpy(float) >= policy.relabel_confidence) & pd.notna(suggestion)
    relabel = flagged & confident & (suggestion != frame["label"].to_numpy(dtype=object))
    chosen = relabel & ~decided
    new_label[chosen] = suggestion[chosen]
    decide(relabel, "relabel", "label_error: confident suggestion")
    if policy.unconfident_label_errors == "drop":
        decide(flagged, "drop", "label_error: no confident suggestion")
    else:
        decide(flagged, "keep", "label_error flagged for review (kept by policy)")

    return pd.DataFrame({
        "sample_id": frame["sample_id"].to_numpy(),
        "path": frame["path"].to_numpy(),
        "split": frame["split"].to_numpy(),
        "label": np.where(action == "drop", frame["label"].to_numpy(dtype=object), new_label),
        "original_label": frame["label"].to_numpy(dtype=object),
        "action": action,
        "reason": reason,
    })


def _non_representatives(frame: pd.DataFrame) -> np.ndarray:
    """Members of a duplicate group other than its representative.

    The representative is an eval member when the group has one (so eval sets stay fixed and the
    train copies go), else the member with the best (highest) label-error score, ties by sample_id.
    """
    groups = frame["duplicate_group"].fillna(-1).to_numpy(int)
    in_group = groups >= 0
    if not in_group.any():
        return np.zeros(len(frame), dtype=bool)
    members = frame.loc[in_group, ["sample_id", "split"]].copy()
    members["group"] = groups[in_group]
    members["is_eval"] = members["split"].isin(EVAL_SPLITS)
    members["order"] = np.arange(in_group.sum())
    ranked = members.sort_values(["group", "is_eval", "sample_id"], ascending=[True, False, True])
    representative = ranked.groupby("group").head(1).index
    result = np.zeros(len(frame), dtype=bool)
    result[np.flatnonzero(in_group)] = True
    result[frame.index.get_indexer(representative)] = False
    # eval members other than the representative are also kept: eval sets stay fixed unless asked.
    return result
