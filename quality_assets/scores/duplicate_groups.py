"""From scored candidate pairs to flags, per-sample scores, duplicate groups (connected components,
as fastdup does) and label conflicts inside the groups."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from quality_assets.imaging import COLOURED_MIN
from quality_assets.scores import canonical_labels
from quality_assets.scores.cutoff import per_sample_pair_cut

__all__ = ["AGREEMENT_FLAG_MAX", "colour_disagrees", "copy_flags", "unmirrored_evidence", "duplicate_groups", "group_label_conflicts", "sample_duplicate_scores"]

# A pair flagged through the agreement verifier must also agree on at least half of its
# informative pixels.
AGREEMENT_FLAG_MAX = 0.5


def copy_flags(pairs: pd.DataFrame, n_samples: int, *, alpha: float = 0.1, q: float = 0.05,
               decide_on: pd.DataFrame | None = None) -> np.ndarray:
    """Which candidate pairs are flagged as copies (the ranking stays primary).

    Every cut is calibrated per sample (:func:`~quality_assets.scores.cutoff.per_sample_pair_cut`):
    each image's best evidence over its pairs is fitted with SelfClean's fraction cut, and a pair
    is flagged when its evidence falls below the cut, so the flagged share of samples is what
    the natural-neighbour distribution of *this* data does not explain.

    Pixel-verified pairs: a verifier's ratio-to-next-best r is cut on r / (1 + r), whose logit is
    log r; either verifier can flag. The geometric verifier of a registered pair is its
    registration (``registered_ratio``, which searches every turn where ``aligned`` searches
    +-12 degrees), of the others ``aligned_ratio``, and that cut is fitted at alpha / 2. On clean
    MNIST samples (1,200 and 2,575 digits) a third verifier with a cut of its own flagged 1.4% of
    the samples, the registration in the aligned verifier's place 1.2% / 0.8%, and with alpha / 2
    0.3% / 0.6%; it still flags 38 of the 75 protocol copies of the contaminated set, where the
    aligned verifier alone flagged 33. Pairs without pixel evidence are
    cut on their (embedding) score. Exact file/pixel hash matches are always flagged; the caller
    adds distance limits.

    decide_on: other verifier columns (``aligned_ratio``, ``agreement_ratio``, ``agreement``, and
    ``registered_ratio`` where the pair was registered) for
    some rows, same index as ``pairs``: the cuts are still fitted on ``pairs``, but those rows are
    flagged on these values (the unmirrored evidence, see :func:`unmirrored_evidence`).
    """
    m = len(pairs)
    flags = np.zeros(m, dtype=bool)
    verified = np.zeros(m, dtype=bool)
    i = pairs["i"].to_numpy(dtype=np.int64)
    j = pairs["j"].to_numpy(dtype=np.int64)
    override = None if decide_on is None else pairs.index.get_indexer(decide_on.index)

    def geometric(frame: pd.DataFrame) -> np.ndarray:
        aligned = frame["aligned_ratio"].to_numpy(dtype=np.float64)
        if "registered_ratio" not in frame.columns:
            return aligned
        registered = frame["registered_ratio"].to_numpy(dtype=np.float64)
        return np.where(np.isfinite(registered), registered, aligned)

    def values_of(frame: pd.DataFrame, name: str) -> np.ndarray:
        return geometric(frame) if name == "aligned_ratio" else frame[name].to_numpy(dtype=np.float64)

    def column(name: str) -> np.ndarray:
        values = values_of(pairs, name).copy()
        if override is not None and name in decide_on.columns:
            values[override] = values_of(decide_on, name)
        return values

    for name in ("aligned_ratio", "agreement_ratio"):
        if name not in pairs.columns:
            continue
        r = values_of(pairs, name)
        known = np.isfinite(r)
        verified |= known
        if known.sum() >= 3:
            with np.errstate(invalid="ignore"):
                # A registration searches ~200 transforms where the aligned verifier searches 18: a
                # natural twin's best fit is the extreme of many more looks, so the geometric cut
                # takes half the alpha once registrations are in it (see the docstring).
                two_looks = name == "aligned_ratio" and "registered_ratio" in pairs.columns
                threshold, _ = per_sample_pair_cut(np.where(known, r / (1.0 + r), np.nan), i, j, n_samples,
                                                   alpha=alpha / 2 if two_looks else alpha, q=q)
                decided = column(name)
                cut = known & (decided / (1.0 + decided) < threshold)
            if name == "agreement_ratio":
                # Ordinary pairs' agreement ratios crowd tightly around 1, so the cut lands close to
                # it; a copy with a local artefact also keeps most of its pixels (demo: 62% of the
                # flags right with this, 37% without).
                cut &= column("agreement") <= AGREEMENT_FLAG_MAX
            flags |= cut
    unverified = ~verified
    if unverified.sum() >= 3:
        score = pairs["embedding_score"] if "embedding_score" in pairs.columns else pairs["score"]
        _, cut = per_sample_pair_cut(np.where(unverified, score.to_numpy(float), np.nan), i, j, n_samples,
                                     alpha=alpha, q=q)
        flags |= cut
    flags |= _evidence_names(pairs["evidence"], "sha256")
    return flags


def _evidence_names(evidence: pd.Series, name: str) -> np.ndarray:
    """bool per pair: its evidence string names `name`. A categorical column (as
    `near_duplicate_pairs` writes it) is tested once per category, not once per pair: the string
    copy of 3M pairs took 1.5 s at 100k samples."""
    if isinstance(evidence.dtype, pd.CategoricalDtype):
        named = np.array([name in str(category) for category in evidence.cat.categories] + [False])
        return named[evidence.cat.codes.to_numpy()]  # code -1 (missing) reads the trailing False
    return evidence.astype(str).str.contains(name, regex=False).to_numpy()


def unmirrored_evidence(pairs: pd.DataFrame, rows: np.ndarray, thumbnails: np.ndarray, n: int,
                        verify=None) -> pd.DataFrame:
    """The pixel verifiers of ``rows`` (positions in ``pairs``) with mirror images not counting:
    each row verified (and, where it was registered, registered) again without the flip, its
    ratio-to-next-best taken against the same neighbours. Mirrored twins are common in real data
    (arrows, semaphore and sign sets, left and right hands, profile portraits): they are ranked
    for review but not flagged on their own."""
    from quality_assets.scores.pair_evidence import ratio_ends
    from quality_assets.scores.pixel_copies import ratio_to_next_best, verify_pairs
    from quality_assets.scores.registration import registered_similarity

    rows = np.asarray(rows, dtype=np.int64)
    aligned = pairs["aligned"].to_numpy(dtype=np.float64).copy()
    agreement = pairs["agreement"].to_numpy(dtype=np.float64).copy()
    i = pairs["i"].to_numpy(dtype=np.int64)
    j = pairs["j"].to_numpy(dtype=np.int64)
    aligned[rows], agreement[rows] = (verify or verify_pairs)(thumbnails, i[rows], j[rows], mirror=False)
    views = [("aligned_ratio", aligned), ("agreement_ratio", agreement)]
    if "registered" in pairs.columns:
        registered = pairs["registered"].to_numpy(dtype=np.float64).copy()
        again = rows[np.isfinite(registered[rows])]
        if again.size:
            register = getattr(verify, "register", None) or registered_similarity
            registered[again] = (1.0 - register(thumbnails, i[again], j[again], mirror=False)) / 2.0
        views.append(("registered_ratio", registered))
    out = {"agreement": agreement[rows]}
    for name, values in views:
        known = np.flatnonzero(np.isfinite(values))
        ratio = np.full(len(pairs), np.nan)
        ratio[known] = ratio_to_next_best(values[known], i[known], j[known], n, ends=ratio_ends(name))
        out[name] = ratio[rows]
    return pd.DataFrame(out, index=pairs.index[rows])


# Colour agreement of a flagged pair (hue histograms from ingest, imaging.hue_histogram):
# an image with at least imaging.COLOURED_MIN of coloured pixels has colour; two coloured images agree
# when their hue distributions (over coloured pixels) differ by at most HUE_TV_MAX in total
# variation. A copy keeps its hues under crops, flips, blur, JPEG and most of an overlay; a
# recoloured variant (a red and a green arrow) moves them all.
COLOURLESS_MAX = 0.002
HUE_TV_MAX = 0.5


def colour_disagrees(hue_histograms: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """bool per pair: the two images' colours say they are different pictures.

    ``hue_histograms`` [N, 1 + bins] (NaN rows: unknown, never disagree). One coloured image and
    one without colour (a grey and a blue speech bubble) disagree; two coloured ones disagree
    when their hue distributions differ by more than ``HUE_TV_MAX``; two grey ones never do.
    """
    h = np.asarray(hue_histograms, dtype=np.float64)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    # Per image first, then per pair: only pairs of two coloured images need their histograms (a
    # grayscale set has none; gathering every pair's histograms took 1.4 s for 3M pairs).
    known_image = np.isfinite(h).all(axis=1)
    coloured = 1.0 - h[:, 0]
    known = known_image[i] & known_image[j]
    ca, cb = coloured[i], coloured[j]
    one_colourless = (np.minimum(ca, cb) < COLOURLESS_MAX) & (np.maximum(ca, cb) >= COLOURED_MIN)
    both = np.flatnonzero(known & (ca >= COLOURED_MIN) & (cb >= COLOURED_MIN))
    with np.errstate(invalid="ignore", divide="ignore"):
        hues = h[:, 1:] / coloured[:, None]
        tv = 0.5 * np.abs(hues[i[both]] - hues[j[both]]).sum(axis=1)
    recoloured = np.zeros(i.size, dtype=bool)
    recoloured[both[tv > HUE_TV_MAX]] = True
    return known & (one_colourless | recoloured)


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
