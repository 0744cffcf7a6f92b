"""From scored candidate pairs to flags, per-sample scores, duplicate groups (connected components,
as fastdup does) and label conflicts inside the groups."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from quality_assets.scores import canonical_labels
from quality_assets.scores.cutoff import fraction_cut

__all__ = ["AGREEMENT_FLAG_MAX", "copy_flags", "duplicate_groups", "group_label_conflicts", "sample_duplicate_scores"]

# A pair flagged through the agreement verifier must also agree on at least half of its
# informative pixels.
AGREEMENT_FLAG_MAX = 0.5


def copy_flags(pairs: pd.DataFrame, n_samples: int, *, alpha: float = 0.1, q: float = 0.05) -> np.ndarray:
    """Which candidate pairs are flagged as copies (the ranking stays primary).

    Pixel-verified pairs: a verifier's ratio-to-next-best r is cut with SelfClean's fraction cut
    on r / (1 + r), whose logit is log r, so the logistic fit describes the log-ratios of the
    ordinary pairs and the cut flags the ratios that fit does not explain; either verifier can
    flag. Pairs without pixel evidence are cut on their (embedding) score as before. Exact
    file/pixel hash matches are always flagged; the caller adds distance limits.
    """
    m = len(pairs)
    flags = np.zeros(m, dtype=bool)
    verified = np.zeros(m, dtype=bool)
    for column in ("aligned_ratio", "agreement_ratio"):
        if column not in pairs.columns:
            continue
        r = pairs[column].to_numpy(dtype=np.float64)
        known = np.isfinite(r)
        verified |= known
        if known.sum() >= 3:
            with np.errstate(invalid="ignore"):
                _, cut = fraction_cut(np.where(known, r / (1.0 + r), np.nan), alpha=alpha, q=q, n_samples=n_samples)
            if column == "agreement_ratio":
                # Ordinary pairs' agreement ratios crowd tightly around 1, so the cut lands close to
                # it; a copy with a local artefact also keeps most of its pixels (demo: 62% of the
                # flags right with this, 37% without).
                cut &= pairs["agreement"].to_numpy(dtype=np.float64) <= AGREEMENT_FLAG_MAX
            flags |= cut
    unverified = ~verified
    if unverified.sum() >= 3:
        score = pairs["embedding_score"] if "embedding_score" in pairs.columns else pairs["score"]
        _, cut = fraction_cut(score.to_numpy(float)[unverified], alpha=alpha, q=q, n_samples=n_samples)
        flags[np.flatnonzero(unverified)[cut]] = True
    evidence = pairs["evidence"].astype(str)
    flags |= evidence.str.contains("sha256", regex=False).to_numpy()
    return flags


def sample_duplicate_scores(
    pairs: pd.DataFrame, n: int, *, return_partner: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Each sample's best (lowest) pair score, 1.0 where it is in no pair.

    With ``return_partner=True`` also returns the partner position of that best pair (-1 if
    none); ties go to the pair listed first in `pairs` (worst-first order keeps rank 1's partner).
    """
    i = pairs["i"].to_numpy(dtype=np.int64)
    j = pairs["j"].to_numpy(dtype=np.int64)
    s = pairs["score"].to_numpy(dtype=np.float64)
    node = np.concatenate([i, j])
    other = np.concatenate([j, i])
    val = np.concatenate([s, s])
    seq = np.concatenate([np.arange(i.size), np.arange(i.size)])
    order = np.lexsort((seq, val, node))
    node_sorted = node[order]
    first = np.r_[True, node_sorted[1:] != node_sorted[:-1]] if node.size else np.zeros(0, bool)
    best = np.ones(n, dtype=np.float64)
    partner = np.full(n, -1, dtype=np.int64)
    best[node_sorted[first]] = val[order][first]
    partner[node_sorted[first]] = other[order][first]
    if return_partner:
        return best, partner
    return best


def duplicate_groups(pairs_flagged: pd.DataFrame, n: int) -> np.ndarray:
    """Connected components of the flagged pairs: group id per sample, -1 for singletons.

    `pairs_flagged` holds columns i, j; if it has an `is_issue` column, only rows where it is
    true count. Group ids are 0..G-1, numbered by each group's lowest position.
    """
    df = pairs_flagged
    if "is_issue" in df.columns:
        df = df[df["is_issue"].fillna(False).astype(bool)]
    i = df["i"].to_numpy(dtype=np.int64)
    j = df["j"].to_numpy(dtype=np.int64)
    groups = np.full(n, -1, dtype=np.int64)
    if i.size == 0:
        return groups
    adj = sp.coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    in_group = sizes[comp] >= 2
    # Components are numbered by first appearance, i.e. by lowest position; compact them.
    used = np.unique(comp[in_group])
    remap = np.full(sizes.size, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    groups[in_group] = remap[comp[in_group]]
    return groups


def group_label_conflicts(
    groups: np.ndarray, labels: Sequence[Any] | np.ndarray
) -> pd.DataFrame:
    """One row per duplicate group: size, distinct label sets, majority label, conflict flag.

    Multi-labels (`a|b`) are compared as sets. Unlabelled members count in `size` but not in
    the vote. majority_label ties go to the alphabetically first label.
    """
    groups = np.asarray(groups, dtype=np.int64)
    canon = canonical_labels(labels)
    if canon.size != groups.size:
        raise ValueError(f"labels has {canon.size} entries for {groups.size} samples")
    member = groups >= 0
    cols = ["group_id", "size", "n_labels", "majority_label", "is_conflict"]
    if not member.any():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(cols, ["int64", "int64", "int64", "object", "bool"])})
    df = pd.DataFrame({"group_id": groups[member], "label": canon[member]})
    size = df.groupby("group_id").size().rename("size")
    lab = df.dropna(subset=["label"])
    n_labels = lab.groupby("group_id")["label"].nunique().rename("n_labels")
    counts = lab.groupby(["group_id", "label"]).size().rename("c").reset_index()
    counts = counts.sort_values(["group_id", "c", "label"], ascending=[True, False, True])
    majority = counts.drop_duplicates("group_id").set_index("group_id")["label"]
    out = pd.concat([size, n_labels, majority.rename("majority_label")], axis=1).reset_index()
    out = out.rename(columns={"index": "group_id"})
    out["n_labels"] = out["n_labels"].fillna(0).astype(np.int64)
    out["is_conflict"] = out["n_labels"] > 1
    return out[cols].sort_values("group_id").reset_index(drop=True)
