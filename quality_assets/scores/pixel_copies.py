"""Pixel-view evidence that two images are copies of each other, for near-duplicate pairs.

Why a second view: a representation learned for semantics (the SSL model) is built to put
*different* images of the same thing close together. In datasets packed with natural near-twins
(digits, products, clothing) that is exactly what hides copies: a rotated, cropped or
watermarked copy sits farther from its source than two ordinary "1"s sit from each other
(docs/benchmarks/detection.md: in the SSL space an ARTE copy's source is its nearest neighbour
only about half the time). A copy, unlike a twin, is the *same pixels* up to a small geometric
change or a local occlusion, and that can be checked directly on a small grayscale thumbnail.

Three pieces, all O(pairs) time and O(N) memory besides the thumbnails themselves:

1. Candidates: the k nearest neighbours in an 8x8 thumbnail space (zero-mean, unit-norm), plain
   and in the canonical frame below, with the mirrored thumbnails in the index too so a flipped
   copy finds its source. These pairs join the SSL kNN edges; no view alone holds every copy.
2. Two verifiers per candidate pair, each a dissimilarity in [0, 1]:
   - ``aligned``: 1 - the best correlation of the two blurred thumbnails after putting each
     into a canonical frame (centre of mass at the centre, RMS radius fixed: removes shift and
     scale, i.e. crops and padding) and searching rotations of +-12 degrees (and the mirror).
     Also tried without the canonical frame, which a local artefact would move. This is what
     finds rotated / cropped / padded / slightly blurred copies.
   - ``agreement``: the share of informative pixels (those away from the image's median in
     either image) that do NOT agree within 4/255-ish (``AGREE_TOLERANCE``) in the unblurred
     thumbnails. A watermark, a bar or a pasted tile changes a region completely and leaves
     the rest identical; a natural twin agrees nowhere exactly.
3. Relative evidence: natural twins come in crowds (every "1" looks like every other "1"), a
   copy stands out from its crowd. Each verifier's dissimilarity is divided by the node's next
   best dissimilarity among its other candidate pairs (Lowe's ratio test), geometric mean over
   the two ends.

Fusion lives in :mod:`quality_assets.scores.near_duplicate`: each verifier's ratio becomes an
empirical p-value (its rank among all candidate pairs) and the pair's score is the smallest
weighted p-value (a weighted Bonferroni combination), so either verifier alone can vouch for
a copy and no verifier's scale dominates.

Measured on the demo (MNIST 5k + 60 injected copies + 25 leaked copies; `benchmarks/demo_rescore.py`,
docs/BENCHMARKS.md): near-duplicate pair AP 0.05 with embedding evidence alone -> 0.86, leakage
AP 0.72 -> 1.0, with these two verifiers leading the fusion (2026-11-24). The fusion chosen on the
benchmark matrix since (`pair_evidence.DEFAULT_FUSION_WEIGHTS`: registration leads, agreement keeps
0.1) reads 0.49 on the demo: its overlay copies, which agreement finds, share their exactness with
a drawn set's template variants (docs/benchmarks/matrix.md, "Update 2026-12-07 (3)"). Cost at
scale: `benchmarks/bench_pixel_copies.py`, docs/benchmarks/knn_scores.md; the verifiers alone:
`benchmarks/bench_verify_pairs.py`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch

from quality_assets.pixel_view import (
    BLUR_SIGMA_PX, THUMBNAIL_SIZE, check_thumbnails, frames, gaussian_blur, warp,
)

__all__ = [
    "AGREE_TOLERANCE",
    "VerifiedPairMemo",
    "ratio_to_next_best",
    "verify_pairs",
]

# Two pixels agree when they differ by at most this (on a 0..1 scale): JPEG re-encodes at
# quality >= 70 keep nearly every pixel within it, different strokes never are.
AGREE_TOLERANCE = 0.04
# Rotations searched in the canonical frame (degrees); copies rotated further are not "near".
ROTATIONS_DEG = tuple(float(a) for a in np.arange(-12.0, 12.01, 3.0))


def _unit(x: torch.Tensor) -> torch.Tensor:
    v = x.flatten(1)
    v = v - v.mean(1, keepdim=True)
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-6)


def _agreement_dissimilarity(a: torch.Tensor, b: torch.Tensor, med_a: torch.Tensor,
                             med_b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    med_a, med_b = med_a[:, None], med_b[:, None]
    informative = ((a - med_a).abs() > AGREE_TOLERANCE) | ((b - med_b).abs() > AGREE_TOLERANCE)
    disagree = (a - b).abs() > AGREE_TOLERANCE
    n_inf = informative.sum(1)
    frac = (disagree & informative).sum(1) / n_inf.clamp(min=1)
    # Two flat images: nothing is informative; they agree as far as their pixels do.
    return torch.where(n_inf > 0, frac, disagree.float().mean(1))


def verify_pairs(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, *, mirror: bool = True,
                 batch: int | None = None, threads: int | None = None,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(aligned, agreement) dissimilarities in [0, 1] for the pairs (i[p], j[p]); see the module doc.

    device: "cpu" (default), "cuda", or "auto" (CUDA when available). The verifiers are the
    same tensor code on either. Only the CPU path has been run so far: no GPU was available when
    this was written, so the service does not pick CUDA by itself.
    """
    t = check_thumbnails(thumbs)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.shape != j.shape:
        raise ValueError("i and j must have the same shape")
    aligned = np.ones(i.size, dtype=np.float64)
    agreement = np.ones(i.size, dtype=np.float64)
    if i.size == 0:
        return aligned, agreement
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    batch = int(batch or (65536 if dev.type == "cuda" else 4096))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    sigma = BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    thetas = [math.radians(a) for a in ROTATIONS_DEG]
    flips = (False, True) if mirror else (False,)
    try:
        with torch.inference_mode():
            # Per-image statistics once, not once per pair: each image sits in ~20 pairs.
            images = np.unique(np.concatenate([i, j]))
            slot = np.full(len(t), -1, dtype=np.int64)
            slot[images] = np.arange(images.size)
            frame = torch.empty(images.size, 3, device=dev)
            median = torch.empty(images.size, device=dev)
            for start in range(0, images.size, 16384):
                x = torch.from_numpy(t[images[start:start + 16384]]).to(dev).float()[:, None] / 255.0
                frame[start:start + len(x)] = torch.stack(frames(gaussian_blur(x, sigma)), dim=1)
                median[start:start + len(x)] = x.flatten(1).median(1).values
            # The pairs by their second image: a batch warps each of its second images once (the 18
            # turned and mirrored canonical frames), not once per pair; an image sits in ~20 pairs.
            by_second = np.argsort(j, kind="stable")
            for start in range(0, i.size, batch):
                rows = by_second[start:start + batch]
                ia, jb = i[rows], j[rows]
                seconds, of_pair = np.unique(jb, return_inverse=True)
                of_pair = torch.from_numpy(of_pair.reshape(-1)).to(dev)
                sa, sb = torch.from_numpy(slot[ia]).to(dev), torch.from_numpy(slot[seconds]).to(dev)
                xa = torch.from_numpy(t[ia]).to(dev).float()[:, None] / 255.0
                xs = torch.from_numpy(t[seconds]).to(dev).float()[:, None] / 255.0
                ba, bs = gaussian_blur(xa, sigma), gaussian_blur(xs, sigma)
                xb, bb = xs[of_pair], bs[of_pair]
                ua = _unit(ba)
                best = (ua * _unit(bb)).sum(1)
                med_a, med_b = median[sa], median[sb][of_pair]
                agree = _agreement_dissimilarity(xa, xb, med_a, med_b)
                if mirror:
                    best = torch.maximum(best, (ua * _unit(torch.flip(bb, dims=[3]))).sum(1))
                    agree = torch.minimum(agree, _agreement_dissimilarity(xa, torch.flip(xb, dims=[3]), med_a, med_b))
                fa, fs = frame[sa].unbind(1), frame[sb].unbind(1)
                ca = _unit(warp(ba, *fa, 0.0, False))
                for flip in flips:
                    for theta in thetas:
                        best = torch.maximum(best, (ca * _unit(warp(bs, *fs, theta, flip))[of_pair]).sum(1))
                aligned[rows] = ((1.0 - best.clamp(-1.0, 1.0)) / 2.0).double().cpu().numpy()
                agreement[rows] = agree.double().cpu().numpy()
    finally:
        torch.set_num_threads(previous)
    return aligned, agreement


class VerifiedPairMemo:
    """`verify_pairs` (and, through :meth:`register`, `scores.registration.registered_similarity`)
    that remembers: a pair's verdict depends only on its two thumbnails, so a pair verified in an
    earlier run (same samples, same verifier code) is not verified again. A 1% drop then verifies
    only the pairs it brings; everything else is read back.

    Keys are sample ids, each pair put in sample-id order before it is verified (the aligned
    verifier holds the first image's frame fixed), so a pair gives the same verdict whatever
    positions its samples hold in this run. `known`: rows (sample_a, sample_b, mirror, aligned,
    agreement[, registered, ...]) from earlier runs, a verdict NaN where it was not taken (a pair
    verified but not registered); `new_rows()` are the ones verified, registered or measured here, to
    be stored. Verdicts that do not depend on the mirror (`remembered`) are kept under mirror True,
    the verifiers' default, so that they share a pair's row with its verdicts.
    """

    # Verdicts besides the verifiers' (`remembered`): the crop evidence of `pair_evidence`
    # (`pixel_view.crop_distances`), leakage's crop search (`scores.near_exact.crop_differences`) and
    # the near-exact check's measures (`scores.near_exact.grid_measures`).
    _OTHER_VERDICTS = ("crop_distance", "whole_distance", "crop_difference", "grid_difference", "grid_relative")
    _VERDICTS = ("aligned", "agreement", "registered") + _OTHER_VERDICTS
    COLUMNS = ("sample_a", "sample_b", "mirror") + _VERDICTS
    _DTYPES = {"sample_a": object, "sample_b": object, "mirror": bool, **dict.fromkeys(_VERDICTS, np.float64)}

    @classmethod
    def _empty(cls) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in cls._DTYPES.items()})

    def __init__(self, sample_ids, known: pd.DataFrame | None = None, verify=None, register=None):
        self.sample_ids = np.asarray(sample_ids, dtype=object)
        self._verify = verify or verify_pairs
        self._register = register
        self._n = len(self.sample_ids)
        # Verdicts are looked up by an integer key of the pair's positions in this run (a sorted
        # array and a binary search), not by a merge on the two id strings: at 100k samples the
        # merge of a million asked pairs with a million stored ones took 4-5 s of a drop's re-score.
        self._position = pd.Index(self.sample_ids)
        self._keys = np.empty(0, dtype=np.int64)
        self._values = {name: np.empty(0) for name in self._VERDICTS}
        if known is not None and len(known):
            a = self._position.get_indexer(known["sample_a"].to_numpy(dtype=object))
            b = self._position.get_indexer(known["sample_b"].to_numpy(dtype=object))
            here = (a >= 0) & (b >= 0)  # verdicts of samples that left the manifest are not asked for
            self._remember(self._key(a[here], b[here], known["mirror"].to_numpy(dtype=bool)[here]), {
                name: (known[name].to_numpy(dtype=np.float64)[here] if name in known.columns
                       else np.full(int(here.sum()), np.nan)) for name in self._VERDICTS})
        self._new_keys: list[np.ndarray] = []
        self.n_reused = 0
        self.n_verified = 0
        self.n_registered = 0
        self.n_measured: dict[tuple[str, ...], int] = {}  # `remembered` verdicts taken here, by names

    def _key(self, first: np.ndarray, second: np.ndarray, mirror) -> np.ndarray:
        return (np.asarray(first, np.int64) * self._n + np.asarray(second, np.int64)) * 2 + np.asarray(mirror, np.int64)

    def _remember(self, keys: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Add verdicts, one row per key; a known value is kept where the new one is NaN or not given
        (a pair registered now keeps its stored pixel verdicts, and the other way round). The new keys
        are sorted and inserted into the kept ones (no sort of every key: a run calls this several
        times over a million stored pairs)."""
        added, inverse = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        at = np.searchsorted(self._keys, added)
        absent = ~self._found(added)
        # Where each added key sits once the absent ones are inserted before their search positions.
        place = at + np.cumsum(absent) - absent
        for name in self._VERDICTS:
            column = np.insert(self._values[name], at[absent], np.nan)
            new = np.asarray(values[name] if name in values else np.full(keys.size, np.nan), dtype=np.float64)
            for_key = np.full(added.size, np.nan)
            # Of repeated keys, the last value given that is not NaN wins (as the merge it replaces).
            given = np.flatnonzero(~np.isnan(new))
            for_key[inverse[given]] = new[given]
            column[place] = np.where(np.isnan(for_key), column[place], for_key)
            self._values[name] = column
        self._keys = np.insert(self._keys, at[absent], added[absent])

    def _where_kept(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's position among the kept keys (clipped into range) and whether it is kept."""
        if not self._keys.size:
            return np.zeros(keys.size, dtype=np.int64), np.zeros(keys.size, dtype=bool)
        at = np.searchsorted(self._keys, keys).clip(0, self._keys.size - 1)
        return at, self._keys[at] == keys

    def _found(self, keys: np.ndarray) -> np.ndarray:
        return self._where_kept(keys)[1]

    def _lookup(self, keys: np.ndarray, name: str) -> np.ndarray:
        if not self._keys.size:
            return np.full(keys.size, np.nan)
        at, kept = self._where_kept(keys)
        return np.where(kept, self._values[name][at], np.nan)

    def _read_or_take(self, names: tuple[str, ...], first: np.ndarray, second: np.ndarray, keys: np.ndarray,
                      compute: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
                      taken: Callable[[np.ndarray], np.ndarray]) -> tuple[tuple[np.ndarray, ...], int]:
        """The named verdicts per key, read back where ``taken`` says a stored value is one, the rest
        taken by ``compute(first, second)`` on the missing pairs and kept for `new_rows`; and how
        many were taken here."""
        values = [self._lookup(keys, name) for name in names]
        missing = np.flatnonzero(~np.logical_and.reduce([taken(v) for v in values]))
        if missing.size:
            for value, new in zip(values, compute(first[missing], second[missing])):
                value[missing] = np.asarray(new, dtype=np.float64)
            self._new_keys.append(keys[missing])
            self._remember(keys[missing], {name: value[missing] for name, value in zip(names, values)})
        return tuple(values), int(missing.size)

    def _ordered(self, i, j, mirror):
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        swap = self.sample_ids[i] > self.sample_ids[j]
        first, second = np.where(swap, j, i), np.where(swap, i, j)
        return first, second, self._key(first, second, bool(mirror))

    def __call__(self, thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, *, mirror: bool = True,
                 **kwargs) -> tuple[np.ndarray, np.ndarray]:
        first, second, keys = self._ordered(i, j, mirror)
        (aligned, agreement), taken = self._read_or_take(
            ("aligned", "agreement"), first, second, keys,
            lambda a, b: self._verify(thumbs, a, b, mirror=mirror, **kwargs), np.isfinite)
        self.n_verified += taken
        self.n_reused += int(first.size - taken)
        return aligned, agreement

    def register(self, thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, *, mirror: bool = True) -> np.ndarray:
        """`registered_similarity` of the pairs, read back where an earlier run registered them."""
        from quality_assets.scores.registration import registered_similarity

        first, second, keys = self._ordered(i, j, mirror)
        register = self._register or registered_similarity
        (similarity,), taken = self._read_or_take(
            ("registered",), first, second, keys, lambda a, b: (register(thumbs, a, b, mirror=mirror),),
            np.isfinite)
        self.n_registered += taken
        return similarity

    def remembered(self, names: tuple[str, ...], i: np.ndarray, j: np.ndarray,
                   compute: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """The named verdicts (of `_OTHER_VERDICTS`) per pair, read back where an earlier run took them;
        `compute(first, second)` takes the missing ones, on the pairs in sample-id order. The verdicts
        must not depend on which end comes first, and may be +inf but not NaN (NaN reads as not
        taken): a search that found nothing stores +inf."""
        unknown = set(names) - set(self._OTHER_VERDICTS)
        if unknown:
            raise ValueError(f"not a remembered verdict: {sorted(unknown)}")
        first, second, keys = self._ordered(i, j, True)

        def measured(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
            computed = tuple(np.asarray(v, dtype=np.float64) for v in compute(a, b))
            if any(np.isnan(v).any() for v in computed):
                raise ValueError("a remembered verdict is NaN: store +inf for 'searched, none found'")
            return computed

        values, taken = self._read_or_take(names, first, second, keys, measured, lambda v: ~np.isnan(v))
        self.n_measured[names] = self.n_measured.get(names, 0) + taken
        return values

    def new_rows(self) -> pd.DataFrame:
        if not self._new_keys:
            return self._empty()
        keys = np.unique(np.concatenate(self._new_keys))
        at = np.searchsorted(self._keys, keys)
        pair, mirror = np.divmod(keys, 2)
        first, second = np.divmod(pair, self._n)
        return pd.DataFrame({"sample_a": self.sample_ids[first], "sample_b": self.sample_ids[second],
                             "mirror": mirror.astype(bool),
                             **{name: self._values[name][at] for name in self._VERDICTS}})


_RATIO_ENDS = ("both", "better", "worse")


def ratio_to_next_best(dissimilarity: np.ndarray, i: np.ndarray, j: np.ndarray, n: int, *,
                       ends: str = "both") -> np.ndarray:
    """Each pair's dissimilarity over the next best one its ends have: the geometric mean of both
    ends' ratios (`ends="both"`), the ratio of the end where the pair stands out more
    (`ends="better"`, the smaller ratio), or of the end where it stands out less (`ends="worse"`,
    the larger: the pair must stand out at both ends).

    For end ``i`` the reference is the smallest dissimilarity among i's *other* pairs; an end
    with no other pair uses 1 (no crowd to stand out from). 0 / 0 (exact copies among exact
    copies) counts as 0: duplicate evidence. Values above 1 mean the pair is not even its
    ends' best. A NaN dissimilarity (unknown) gives NaN.

    Why "better": a copy is its own end's best match by far, while its source may have a natural
    twin nearer than the transformed copy (a "1" among "1"s); the geometric mean lets the source's
    crowd pull the pair down, the better end does not.
    """
    if ends not in _RATIO_ENDS:
        raise ValueError(f"ends must be one of {_RATIO_ENDS}, got {ends!r}")
    d = np.asarray(dissimilarity, dtype=np.float64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    m = d.size
    if m == 0:
        return np.zeros(0)
    if not np.isfinite(d).all():
        return _ratio_by_sort(d, i, j, n, ends)
    node = np.concatenate([i, j])
    value = np.concatenate([d, d])
    # The smallest of a node's *other* pairs is its smallest pair, except for the one entry that is
    # that smallest pair, whose reference is the node's second smallest. Two minima per node, not a
    # sort of all entries (the sort was 2 s a call at 100k samples).
    first = np.full(n, np.inf)
    np.minimum.at(first, node, value)
    holder = np.full(n, -1, dtype=np.int64)
    at_min = np.flatnonzero(value == first[node])
    holder[node[at_min]] = at_min  # one entry per node holds its minimum (ties: any, the result is the same)
    others = np.ones(2 * m, dtype=bool)
    others[holder[holder >= 0]] = False
    second = np.full(n, np.inf)
    np.minimum.at(second, node[others], value[others])
    first[np.isinf(first)] = 1.0
    second[np.isinf(second)] = 1.0  # a node with a single pair: no crowd

    entry = np.arange(2 * m)
    ref = np.where(holder[node] == entry, second[node], first[node])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = value / ref
    r = np.where(ref > 0, r, np.where(value > 0, np.inf, 0.0))
    return _combine_ends(r[:m], r[m:], ends)


def _combine_ends(ratio_i: np.ndarray, ratio_j: np.ndarray, ends: str) -> np.ndarray:
    if ends == "better":
        return np.minimum(ratio_i, ratio_j)
    if ends == "worse":
        return np.maximum(ratio_i, ratio_j)
    with np.errstate(invalid="ignore"):
        return np.sqrt(ratio_i * ratio_j)


def _ratio_by_sort(d: np.ndarray, i: np.ndarray, j: np.ndarray, n: int, ends: str) -> np.ndarray:
    """`ratio_to_next_best` by a sort of every entry: the order NaN and infinities need (NaN sorts
    last, so it is a node's reference only when nothing else is)."""
    m = d.size
    node = np.concatenate([i, j])
    value = np.concatenate([d, d])
    order = np.lexsort((value, node))
    node_sorted = node[order]
    value_sorted = value[order]
    counts = np.bincount(node, minlength=n)
    starts = np.searchsorted(node_sorted, np.arange(n))
    position = np.empty(2 * m, dtype=np.int64)
    position[order] = np.arange(2 * m) - starts[node_sorted]

    def smallest(q: int) -> np.ndarray:
        out = np.ones(n)
        has = counts > q
        out[has] = value_sorted[starts[has] + q]
        return out

    first, second = smallest(0), smallest(1)
    second[counts < 2] = 1.0

    def side(end: np.ndarray, pos: np.ndarray) -> np.ndarray:
        ref = np.where(pos == 0, second[end], first[end])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = d / ref
        return np.where(ref > 0, r, np.where(d > 0, np.inf, 0.0))

    ratio = _combine_ends(side(i, position[:m]), side(j, position[m:]), ends)
    ratio[np.isnan(d)] = np.nan  # an unknown dissimilarity is no evidence (not 0 / NaN read as a copy)
    return ratio
