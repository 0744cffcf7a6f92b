"""Near-exact copies: pairs whose colour grids agree cell by cell, such as a re-encoded (JPEG) or
resized copy of an image, and lightly cropped copies, found by searching the crop.

Each image's colour grid is its RGB picture averaged over a COLOUR_GRID_SIZE x COLOUR_GRID_SIZE
grid of cells (`representation` stores it beside the grayscale thumbnail); pairs are compared on
COMPARED_GRID_SIZE cells (the stored grid pooled). A pair's difference is the largest absolute
difference of any cell in any channel, in [0, 1]. Compression noise averages
out inside a cell; a different picture, a recoloured variant or a shifted crop changes some cell by
a lot. A small caption may not: an icon theme's one icon with two file-type labels is near-exact
too, which is why the tier ranks and does not flag. A pair at most NEAR_EXACT_MAX_DIFF apart is a
near-exact copy.

Why this rule (measured on the benchmark matrix's cells, every candidate pair of the service,
`docs/benchmarks/matrix.md`, "Update 2026-12-03 (3)"): the protocol's JPEG leaks (PIL quality 75)
differ by 0.04-0.12 on 64 px clip art and 0.04-0.09 on 28 px digits. Of the 154,000 candidate
pairs of a clip-art cell, 2 that the truth does not list come within 0.15, beside 38 pairs of one
picture the source holds twice; natural MNIST twins come no closer than 0.18. Only the protocol's
heavily blurred (off-topic) digits, featureless blobs, pair closer. The grayscale thumbnails cannot
do this: a red and a green arrow are one picture to them, and on clip art those variants outrank
the JPEG leaks.

The cell mean is bounded by the cell maximum, so a coarser grid (cells pooled 4 x 4) gives a lower
bound of the difference; the full grid is compared only for the pairs that pass it.

Lightly cropped copies (`crop_differences`): a crop of 85-95% of the area resized back (the
protocol's LEAK-crop) moves every cell. The search box-resamples the other image's stored grid over
each of CROP_SIDES x CROP_OFFSETS^2 crop boxes and keeps the box whose cells come closest; the pair is
a cropped copy when that box is within CROP_MAX_DIFF and CROP_MAX_RELATIVE. On the three clip-art
cells of the matrix, 24 of the 30 crop leaks pass against their sources (27 at a relative limit of
0.2, which also let a pair of plain "1" strokes on MNIST through, ahead of that cell's crop leaks). A stored grid of 16 px put crop leaks at 0.14-0.33, among natural variants.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["COLOUR_GRID_SIZE", "COMPARED_GRID_SIZE", "CROP_MAX_DIFF", "CROP_MAX_RELATIVE", "NEAR_EXACT_MAX_DIFF",
           "NEAR_EXACT_MAX_RELATIVE", "NEAR_EXACT_SCORE", "check_colour_grids", "compared_grids", "crop_differences",
           "grid_differences", "grid_measures"]

COLOUR_GRID_SIZE = 32      # stored: fine enough to resample a crop from
COMPARED_GRID_SIZE = 16    # compared: JPEG noise averages out in a cell of 4 x 4 px at 64 px
# Above the JPEG-75 leaks' 0.12 and below the nearest natural pairs (0.18 on MNIST; on clip art the
# unlisted pairs within 0.15 are 2 of 154,000). See the module docstring.
NEAR_EXACT_MAX_DIFF = 0.15
# A near-exact pair's score is this times its score without the tier (`near_duplicate.lift_near_exact`):
# below any fused p-value of fewer than 10^9 candidate pairs (the smallest is 1 / (M x the leading
# view's weight)), above exact (0).
NEAR_EXACT_SCORE = 1e-9
# The grids' RMS difference over their own standard deviation (over cells and channels): JPEG leaks
# reach 0.03-0.09 (two at 0.30 / 0.56 on near-blank clip art), two near-blank drawings with small
# different marks 0.7-1.4, a small dot against a small star of the same colour 0.13-0.39.
NEAR_EXACT_MAX_RELATIVE = 0.11
# A lightly cropped copy: crop boxes of these sides (of the picture's side; 85-96% of the area) at
# CROP_OFFSETS x CROP_OFFSETS positions each. Resampling the stored grid adds to the JPEG-like
# noise, hence the looser limits (see the module docstring).
CROP_SIDES = (0.92, 0.94, 0.96, 0.98)
CROP_OFFSETS = 5
CROP_MAX_DIFF = 0.16
CROP_MAX_RELATIVE = 0.15
_POOL = 4            # the lower bound's cells: 4 x 4 cells of the compared grid
_CHUNK = 65_536      # pairs compared at once (a chunk of compared grids is 2 x 50 MB of float32)
_CROP_BATCH = 64     # pairs resampled at once (x every crop box: ~20 MB of float32)


def check_colour_grids(grids: np.ndarray, n: int) -> np.ndarray:
    """The grids as uint8 [n, G, G, 3], or a ValueError that says what is wrong."""
    g = np.asarray(grids)
    if g.ndim != 4 or g.shape[0] != n or g.shape[1] != g.shape[2] or g.shape[3] != 3:
        raise ValueError(f"colour grids must be [{n}, G, G, 3], got {list(g.shape)}")
    if g.dtype != np.uint8:
        raise ValueError(f"colour grids must be uint8, got {g.dtype}")
    return g


def compared_grids(grids: np.ndarray) -> np.ndarray:
    """float32 [N, C, C, 3] in 0-255: the stored grids pooled to COMPARED_GRID_SIZE cells (as they are
    when the stored side is not a multiple of it)."""
    g = check_colour_grids(grids, len(grids))
    n, side = g.shape[0], g.shape[1]
    if side % COMPARED_GRID_SIZE:
        return g.astype(np.float32)
    f = side // COMPARED_GRID_SIZE
    return g.reshape(n, COMPARED_GRID_SIZE, f, COMPARED_GRID_SIZE, f, 3).mean(axis=(2, 4), dtype=np.float32)


def _measures(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of rows of x and y (flattened grids, 0-255): the largest cell difference / 255, and the RMS
    difference over the pictures' own spread."""
    full = np.abs(x - y).max(axis=1) / 255.0
    # Against the pictures' own contrast: two near-blank images with different small marks differ
    # little in every cell, but by as much as they vary at all.
    spread = np.sqrt((x.var(axis=1) + y.var(axis=1)) / 2.0)
    return full, np.sqrt(((x - y) ** 2).mean(axis=1)) / np.maximum(spread, 1e-6)


def _verdict(x: np.ndarray, y: np.ndarray, limit: float, max_relative: float) -> tuple[np.ndarray, np.ndarray]:
    """(largest cell difference / 255, and whether the pair is within both limits) of rows of x and y."""
    full, relative = _measures(x, y)
    return full, (full <= limit + 1e-9) & (relative <= max_relative)


def _coarse_grids(grids: np.ndarray) -> np.ndarray:
    """float32 [N, c, c, 3]: the compared grids pooled to _POOL x _POOL cells (the lower bound's), taken
    from the stored grids in one pass where the sides allow (pooling the whole set's compared grids
    first was most of a 100k drop's near-exact check)."""
    g = check_colour_grids(grids, len(grids))
    n, side = g.shape[0], g.shape[1]
    if side % COMPARED_GRID_SIZE == 0 and COMPARED_GRID_SIZE % _POOL == 0:
        f = side * _POOL // COMPARED_GRID_SIZE
        out = np.empty((n, side // f, side // f, 3), dtype=np.float32)
        for start in range(0, n, _CHUNK):
            part = g[start:start + _CHUNK]
            out[start:start + len(part)] = part.reshape(len(part), side // f, f, side // f, f, 3).mean(
                axis=(2, 4), dtype=np.float32)
        return out
    compared = compared_grids(g)
    c = compared.shape[1]
    pool = _POOL if c % _POOL == 0 else 1
    return compared.reshape(n, c // pool, pool, c // pool, pool, 3).mean(axis=(2, 4))


def grid_measures(grids: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: (the largest cell difference of the two compared grids in [0, 1], the RMS difference
    over the grids' own spread). Only the pairs' own grids are read: a pair's measures do not depend
    on the pairs asked with it, so a later run can keep them (`VerifiedPairMemo.remembered`)."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    full, relative = np.empty(i.size), np.empty(i.size)
    if not i.size:
        return full, relative
    images = np.unique(np.concatenate([i, j]))
    compared = compared_grids(np.asarray(grids)[images]).reshape(images.size, -1)
    a, b = np.searchsorted(images, i), np.searchsorted(images, j)
    for start in range(0, i.size, _CHUNK):
        x, y = compared[a[start:start + _CHUNK]], compared[b[start:start + _CHUNK]]
        full[start:start + len(x)], relative[start:start + len(x)] = _measures(x, y)
    return full, relative


MeasureFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def grid_differences(grids: np.ndarray, known: np.ndarray | None, i: np.ndarray, j: np.ndarray,
                     limit: float = NEAR_EXACT_MAX_DIFF,
                     max_relative: float = NEAR_EXACT_MAX_RELATIVE, *,
                     measures: MeasureFn | None = None) -> np.ndarray:
    """Per pair (i[p], j[p]): the largest cell difference of the two compared grids, in [0, 1], where the
    pair is near-exact (at most ``limit``, and the grids' RMS difference at most ``max_relative`` of
    their own spread); NaN where it is not (then maybe not computed in full) or either grid is unknown.

    ``measures(a, b)``: `grid_measures` of the pairs that pass the coarse lower bound (the service
    passes one that reads back an earlier run's); by default `grid_measures` itself."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    out = np.full(i.size, np.nan)
    ok = np.ones(i.size, dtype=bool) if known is None else np.asarray(known, bool)[i] & np.asarray(known, bool)[j]
    if not ok.any():
        return out
    coarse = _coarse_grids(grids)
    rows = np.flatnonzero(ok)
    lower = np.empty(rows.size, dtype=np.float32)
    for start in range(0, rows.size, _CHUNK):
        part = rows[start:start + _CHUNK]
        lower[start:start + part.size] = np.abs(coarse[i[part]] - coarse[j[part]]).reshape(part.size, -1).max(axis=1)
    rows = rows[lower <= limit * 255.0 + 1e-3]
    if not rows.size:
        return out
    full, relative = (measures or (lambda a, b: grid_measures(grids, a, b)))(i[rows], j[rows])
    close = (full <= limit + 1e-9) & (relative <= max_relative)
    out[rows[close]] = full[close]
    return out


def _box_weights(side: float, offset: float, stored: int) -> np.ndarray:
    """[C, stored] area weights: row u averages the stored cells under the u-th of C equal slices of the
    interval [offset, offset + side] (in units of the picture's side): a box resize of the crop."""
    edges = (offset + side * np.arange(COMPARED_GRID_SIZE + 1) / COMPARED_GRID_SIZE) * stored
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(stored)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def crop_differences(grids: np.ndarray, known: np.ndarray | None, source: np.ndarray, copy: np.ndarray,
                     limit: float = CROP_MAX_DIFF, max_relative: float = CROP_MAX_RELATIVE) -> np.ndarray:
    """Per pair: is ``copy[p]`` a lightly cropped copy of ``source[p]``? The largest cell difference, in
    [0, 1], between the copy's compared grid and the source's stored grid box-resampled from the crop box
    that comes closest (CROP_SIDES x CROP_OFFSETS^2 boxes), where that box is within ``limit`` and
    ``max_relative``; NaN where no box is, or either grid is unknown.

    A crop box is axis-aligned, so its resampling is separable: rows then columns, one small matrix
    product per side and offset for a whole batch of pairs."""
    source = np.asarray(source, dtype=np.int64)
    copy = np.asarray(copy, dtype=np.int64)
    out = np.full(source.size, np.nan)
    ok = np.ones(source.size, dtype=bool) if known is None else \
        np.asarray(known, bool)[source] & np.asarray(known, bool)[copy]
    if not ok.any():
        return out
    stored = check_colour_grids(grids, len(grids))
    size, c = stored.shape[1], COMPARED_GRID_SIZE
    offsets = {side: np.linspace(0.0, 1.0 - side, CROP_OFFSETS) for side in CROP_SIDES}
    # [sides, offsets, C, stored] weights; a box (side, x0, y0) is rows W[side, y0] and columns W[side, x0].
    weights = np.stack([np.stack([_box_weights(side, o, size) for o in offsets[side]]) for side in CROP_SIDES])
    rows = np.flatnonzero(ok)
    for start in range(0, rows.size, _CROP_BATCH):
        part = rows[start:start + _CROP_BATCH]
        src = stored[source[part]].astype(np.float32).transpose(0, 3, 1, 2)          # [P, 3, S, S]
        # Columns first: [P, 3, S, sides, offsets, C]; then rows: [P, 3, sides, y0, x0, C, C].
        cols = np.einsum("pcyx,koux->pcykou", src, weights, optimize=True)
        warped = np.einsum("kavy,pcykou->pkaovuc", weights, cols, optimize=True)    # v, u: row and column cell
        warped = warped.reshape(part.size, -1, c * c * 3)
        # Only this batch's copies are pooled: the whole set's compared grids would be 3 KB per image.
        tgt = compared_grids(stored[copy[part]]).reshape(part.size, 1, -1)
        best = np.abs(warped - tgt).max(axis=2).argmin(axis=1)   # the box whose cells come closest
        chosen = warped[np.arange(part.size), best]
        full, close = _verdict(chosen, tgt[:, 0], limit, max_relative)
        out[part[close]] = full[close]
    return out
