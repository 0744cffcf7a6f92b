"""Near-exact copies: pairs whose colour grids agree cell by cell, such as a re-encoded (JPEG) or
resized copy of an image.

Each image's colour grid is its RGB picture averaged over a COLOUR_GRID_SIZE x COLOUR_GRID_SIZE
grid of cells (`representation` stores it beside the grayscale thumbnail). A pair's difference is
the largest absolute difference of any cell in any channel, in [0, 1]. Compression noise averages
out inside a cell; a different picture, a recoloured variant, another caption or a shifted crop
changes some cell by a lot. A pair at most NEAR_EXACT_MAX_DIFF apart is a near-exact copy.

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
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOUR_GRID_SIZE", "NEAR_EXACT_MAX_DIFF", "NEAR_EXACT_MAX_RELATIVE", "check_colour_grids", "grid_differences"]

COLOUR_GRID_SIZE = 16
# Above the JPEG-75 leaks' 0.12 and below the nearest natural pairs (0.18 on MNIST; on clip art the
# unlisted pairs within 0.15 are 2 of 154,000). See the module docstring.
NEAR_EXACT_MAX_DIFF = 0.15
# The grids' RMS difference over their own standard deviation (over cells and channels): JPEG leaks
# reach 0.03-0.09 (two at 0.30 / 0.56 on near-blank clip art), two near-blank drawings with small
# different marks 0.7-1.4, a small dot against a small star of the same colour 0.13-0.39.
NEAR_EXACT_MAX_RELATIVE = 0.11
_POOL = 4            # the lower bound's cells: 4 x 4 cells of the grid
_CHUNK = 65_536      # pairs compared at once (a chunk of full grids is 2 x 50 MB of uint8)


def check_colour_grids(grids: np.ndarray, n: int) -> np.ndarray:
    """The grids as uint8 [n, G, G, 3], or a ValueError that says what is wrong."""
    g = np.asarray(grids)
    if g.ndim != 4 or g.shape[0] != n or g.shape[1] != g.shape[2] or g.shape[3] != 3:
        raise ValueError(f"colour grids must be [{n}, G, G, 3], got {list(g.shape)}")
    if g.dtype != np.uint8:
        raise ValueError(f"colour grids must be uint8, got {g.dtype}")
    return g


def grid_differences(grids: np.ndarray, known: np.ndarray | None, i: np.ndarray, j: np.ndarray,
                     limit: float = NEAR_EXACT_MAX_DIFF,
                     max_relative: float = NEAR_EXACT_MAX_RELATIVE) -> np.ndarray:
    """Per pair (i[p], j[p]): the largest cell difference of the two colour grids, in [0, 1], where the
    pair is near-exact (at most ``limit``, and the grids' RMS difference at most ``max_relative`` of
    their own spread); NaN where it is not (then maybe not computed in full) or either grid is unknown."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    grids = check_colour_grids(grids, len(grids))
    n, side = grids.shape[0], grids.shape[1]
    ok = np.ones(i.size, dtype=bool) if known is None else np.asarray(known, bool)[i] & np.asarray(known, bool)[j]
    out = np.full(i.size, np.nan)
    if not ok.any() or n == 0:
        return out
    bound_limit = int(np.floor(limit * 255.0 + 1e-9))
    pool = _POOL if side % _POOL == 0 else 1
    coarse = grids.reshape(n, side // pool, pool, side // pool, pool, 3).mean(axis=(2, 4), dtype=np.float32)
    rows = np.flatnonzero(ok)
    for start in range(0, rows.size, _CHUNK):
        part = rows[start:start + _CHUNK]
        lower = np.abs(coarse[i[part]] - coarse[j[part]]).reshape(part.size, -1).max(axis=1)
        part = part[lower <= bound_limit + 1e-3]
        if not part.size:
            continue
        x = grids[i[part]].reshape(part.size, -1).astype(np.float32)
        y = grids[j[part]].reshape(part.size, -1).astype(np.float32)
        full = np.abs(x - y).max(axis=1)
        # Against the pictures' own contrast: two near-blank images with different small marks differ
        # little in every cell, but by as much as they vary at all.
        spread = np.sqrt((x.var(axis=1) + y.var(axis=1)) / 2.0)
        relative = np.sqrt(((x - y) ** 2).mean(axis=1)) / np.maximum(spread, 1e-6)
        close = (full <= bound_limit) & (relative <= max_relative)
        out[part[close]] = full[close] / 255.0
    return out
