"""Component policies: cleaning decisions over whole near-duplicate groups (fastdup's PETA cleaning).

A component is a duplicate group (a connected component of flagged pairs, `duplicate_groups.
duplicate_groups`) with at least two labelled members that count; singletons are excluded. Its
*units* are tags for multi-label data (a member carrying `a|b` counts once for `a` and once for `b`)
and whole labels for single-label data. With n labelled members and c_u members carrying unit u,
r_u = c_u / n is the unit's share in the component, and

    label variance V = sum_u r_u (1 - r_u)

is the summed Bernoulli variance of "this member carries u" (for single-label data the Gini
impurity 1 - sum r_u^2; for multi-label data half the expected Hamming distance between two members'
tag sets). V is 0 when every member carries the same labels.

The four policies, in their precedence (first match wins):

  bad_component       every member is dropped when V exceeds the threshold for the component's size
                      n (labelled members). `variance_kind` says how the threshold scales with n:
                      plain tau (any size), geometric tau^(n/2) (each further pair of members
                      multiplies it by tau), cubic tau * (2/n)^3. All equal tau for a pair; the
                      geometric and cubic kinds hold larger components of near-copies to a stricter
                      standard, since more copies that disagree is stronger evidence of bad labels.
  image_pruning       a member carrying a unit with r_u < `image_min_ratio` (rare in its component) is
                      dropped.
  label_intersection  every labelled member gets the units all members share (r_u = 1); for
                      single-label data that is the label when all agree, else nothing.
  label_pruning       units with r_u < `label_min_ratio` are removed from the members carrying them.
                      For single-label data a removed label is replaced by the component's most
                      common label that is kept (ties: alphabetical).

A member whose label set would become empty is dropped (an empty set is not a label). Unlabelled
members count in no share and are changed only by bad_component. Every decided row has a reason
naming the policy and the group: "component <policy>: group <id> (...)".

Pure pandas / NumPy: no Dagster, no DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from quality_assets.scores import canonical_labels
from quality_assets.scores.multi_label import SEPARATOR, is_multi_label

__all__ = ["VARIANCE_KINDS", "ComponentDecisions", "ComponentPolicy", "component_decisions",
           "label_variance", "variance_threshold"]

VARIANCE_KINDS = ("plain", "geometric", "cubic")


@dataclass(frozen=True)
class ComponentPolicy:
    prune_bad_components: bool = False
    variance_threshold: float = 0.45
    variance_kind: str = "plain"          # plain | geometric | cubic
    prune_images: bool = False
    image_min_ratio: float = 0.5
    intersect_labels: bool = False
    prune_labels: bool = False
    label_min_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.variance_kind not in VARIANCE_KINDS:
            raise ValueError(f"variance_kind must be one of {', '.join(VARIANCE_KINDS)}; got {self.variance_kind!r}")
        if not self.variance_threshold >= 0:
            raise ValueError(f"variance_threshold must be >= 0; got {self.variance_threshold!r}")
        for name in ("image_min_ratio", "label_min_ratio"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1]; got {value!r}")

    @property
    def active(self) -> bool:
        return self.prune_bad_components or self.prune_images or self.intersect_labels or self.prune_labels


def variance_threshold(threshold: float, kind: str, size: np.ndarray | int) -> np.ndarray:
    """The largest label variance a component of `size` labelled members may have (see the module
    docstring); equal to `threshold` for a pair under every kind."""
    n = np.asarray(size, dtype=np.float64)
    if kind == "plain":
        return np.full_like(n, float(threshold))
    if kind == "geometric":
        return np.power(float(threshold), n / 2.0)
    if kind == "cubic":
        return float(threshold) * (2.0 / n) ** 3
    raise ValueError(f"variance_kind must be one of {', '.join(VARIANCE_KINDS)}; got {kind!r}")


def label_variance(shares: np.ndarray) -> float:
    """V = sum_u r_u (1 - r_u) of one component's unit shares."""
    r = np.asarray(shares, dtype=np.float64)
    return float((r * (1.0 - r)).sum())


@dataclass
class ComponentDecisions:
    action: np.ndarray      # [n] object: "drop" | "relabel" | None (no decision)
    new_label: np.ndarray   # [n] object: the new label ('|'-joined set) of relabel rows, else the given one
    reason: np.ndarray      # [n] object: "component <policy>: group <id> (...)" for decided rows
    policy: np.ndarray      # [n] object: the deciding policy's name, None where undecided
    components: pd.DataFrame  # one row per component: group_id, n_labelled, variance, threshold, is_bad


def _units(canon: np.ndarray, multi: bool) -> list[tuple[str, ...]]:
    out = []
    for value in canon:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(())
        elif multi:
            out.append(tuple(sorted(set(str(value).split(SEPARATOR)))))
        else:
            out.append((str(value),))
    return out


def component_decisions(
    groups: Sequence[int] | np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    policy: ComponentPolicy,
    *,
    counted: np.ndarray | None = None,
    multi_label: bool | None = None,
) -> ComponentDecisions:
    """Per-sample decisions of the component policies (module docstring).

    `groups`: group id per sample, -1 for singletons. `labels`: per-sample labels ('|'-joined sets for
    multi-label data). `counted`: members that take part (default all); the others (already dropped
    by an earlier rule) neither count in the shares nor get a decision. `multi_label`: per tag or
    whole label; detected from the labels when None.
    """
    groups = np.asarray(groups, dtype=np.int64)
    canon = canonical_labels(labels)
    n = groups.size
    if canon.size != n:
        raise ValueError(f"labels has {canon.size} entries for {n} samples")
    counted = np.ones(n, dtype=bool) if counted is None else np.asarray(counted, dtype=bool)
    multi = is_multi_label(canon) if multi_label is None else bool(multi_label)
    action = np.full(n, None, dtype=object)
    new_label = canon.astype(object).copy()
    reason = np.full(n, None, dtype=object)
    decided_by = np.full(n, None, dtype=object)
    columns = {"group_id": "int64", "n_labelled": "int64", "variance": "float64", "threshold": "float64",
               "is_bad": "bool"}
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    members = np.flatnonzero((groups >= 0) & counted)
    if not policy.active or members.size == 0:
        return ComponentDecisions(action, new_label, reason, decided_by, empty)

    units = _units(canon, multi)
    long = pd.DataFrame([(int(p), int(groups[p]), u) for p in members for u in units[p]],
                        columns=["pos", "group", "unit"])
    labelled_members = pd.Series([groups[p] for p in members if units[p]], dtype=np.int64)
    n_labelled = labelled_members.value_counts()
    counts = long.groupby(["group", "unit"]).size().rename("count").reset_index()
    counts["n"] = counts["group"].map(n_labelled).to_numpy(np.int64)
    counts["share"] = counts["count"] / counts["n"]
    counts = counts[counts["n"] >= 2]   # a group with one labelled member left is a singleton
    if counts.empty:
        return ComponentDecisions(action, new_label, reason, decided_by, empty)
    variance = (counts["share"] * (1.0 - counts["share"])).groupby(counts["group"]).sum()
    stats = pd.DataFrame({"group_id": variance.index.to_numpy(np.int64),
                          "n_labelled": n_labelled.loc[variance.index].to_numpy(np.int64),
                          "variance": variance.to_numpy(np.float64)})
    stats["threshold"] = variance_threshold(policy.variance_threshold, policy.variance_kind, stats["n_labelled"])
    # A hair of tolerance so a variance equal to the threshold (up to rounding) is not "above" it.
    stats["is_bad"] = stats["variance"] > stats["threshold"] + 1e-12
    stats = stats.reset_index(drop=True)
    share = {(int(g), u): float(s) for g, u, s in zip(counts["group"], counts["unit"], counts["share"])}
    by_group = {int(g): (bool(bad), float(v), float(t)) for g, bad, v, t in
                zip(stats["group_id"], stats["is_bad"], stats["variance"], stats["threshold"])}
    # Single-label label pruning's replacement: each group's most common label that is kept.
    kept_units = counts[counts["share"] >= policy.label_min_ratio].sort_values(["group", "share", "unit"],
                                                                                ascending=[True, False, True])
    majority_kept = dict(zip(kept_units.drop_duplicates("group")["group"].astype(int),
                             kept_units.drop_duplicates("group")["unit"]))

    def decide(pos: int, what: str, name: str, detail: str, label: Any = None) -> None:
        action[pos] = what
        reason[pos] = f"component {name}: group {groups[pos]} ({detail})"
        decided_by[pos] = name
        if what == "relabel":
            new_label[pos] = label

    def joined(values: Sequence[str]) -> str:
        return SEPARATOR.join(sorted(values))

    for pos in members:
        g = int(groups[pos])
        if g not in by_group:
            continue
        is_bad, variance, threshold = by_group[g]
        mine = units[pos]
        if policy.prune_bad_components and is_bad:
            decide(pos, "drop", "bad_component",
                   f"label variance {variance:.3g} > {threshold:.3g}, {policy.variance_kind}")
            continue
        if not mine:
            continue
        shares = {u: share[(g, u)] for u in mine}
        if policy.prune_images:
            rare = [u for u in mine if shares[u] < policy.image_min_ratio]
            if rare:
                decide(pos, "drop", "image_pruning", f"rare: {joined(rare)}")
                continue
        if policy.intersect_labels:
            shared = [u for u in mine if shares[u] >= 1.0 - 1e-12]
            if len(shared) < len(mine):
                removed = joined(set(mine) - set(shared))
                if shared:
                    decide(pos, "relabel", "label_intersection", f"removed: {removed}", joined(shared))
                else:
                    decide(pos, "drop", "label_intersection", f"no shared label; removed: {removed}")
                continue
        if policy.prune_labels:
            kept = [u for u in mine if shares[u] >= policy.label_min_ratio]
            if len(kept) < len(mine):
                removed = joined(set(mine) - set(kept))
                if kept:
                    decide(pos, "relabel", "label_pruning", f"removed: {removed}", joined(kept))
                    continue
                if not multi and g in majority_kept:
                    decide(pos, "relabel", "label_pruning", f"removed: {removed}", majority_kept[g])
                    continue
                decide(pos, "drop", "label_pruning", f"no label left; removed: {removed}")
    return ComponentDecisions(action, new_label, reason, decided_by, stats)
