"""Would a tier of "the same pixels" lift overlay copies without lifting natural twins? A lead for
#12, measured on benchmark-matrix cells and on the demo (`demo_cell.py`); nothing in the service
uses it.

    python benchmarks/exact_pixel_tier.py CELL_DIR [CELL_DIR ...]

An overlay copy (a watermark, a bar along an edge, a tile pasted in a corner: the demo's ARTE) is
its source's pixels everywhere but under the overlay. The service's `agreement` verifier measures
that (the share of informative pixels that differ by more than `AGREE_TOLERANCE`), but only as a
ratio to each end's next best at a small fusion weight. Here a pair's *textured* disagreement is
the share of the pixels with an edge in either thumbnail (a 4-neighbour step above the tolerance;
the flat inside of a silhouette or a stroke agrees between any two twins and says nothing) whose
values differ by more than the tolerance, unturned or mirrored, whichever is lower. Pairs at most
`tau` (and, in the second variant, standing out at both ends: the ratio to each end's next best
at most `rho`) are lifted into the near-exact tier of the captured pair table
(`pair_fusion.capture_pairs`), and the table is ranked and scored as `pair_fusion.py` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from quality_assets.scores.pixel_copies import AGREE_TOLERANCE, ratio_to_next_best
from quality_lab.bench.methods import thumbnails_for
from quality_lab.source_duplicates import source_duplicates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402

VARIANTS = ((0.15, None), (0.2, None), (0.2, 0.5), (0.2, 0.35))


def _edges(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's largest absolute step to a 4-neighbour, [B, H, W]."""
    step = torch.zeros_like(x)
    for dim in (1, 2):
        d = x.diff(dim=dim).abs()
        head = [slice(None)] * 3
        tail = [slice(None)] * 3
        head[dim], tail[dim] = slice(1, None), slice(None, -1)
        step[tuple(head)] = torch.maximum(step[tuple(head)], d)
        step[tuple(tail)] = torch.maximum(step[tuple(tail)], d)
    return step


def textured_disagreement(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Per pair: the share of edge pixels (in either image) whose values differ by more than the
    tolerance, the lower of j unturned and j mirrored."""
    out = np.ones(len(i))
    with torch.inference_mode():
        for start in range(0, len(i), batch):
            a = torch.from_numpy(thumbs[i[start:start + batch]]).float() / 255.0
            b = torch.from_numpy(thumbs[j[start:start + batch]]).float() / 255.0
            edge_a = _edges(a) > AGREE_TOLERANCE
            best = None
            for other in (b, b.flip(2)):
                edge = edge_a | (_edges(other) > AGREE_TOLERANCE)
                differ = ((a - other).abs() > AGREE_TOLERANCE) & edge
                share = differ.flatten(1).sum(1) / edge.flatten(1).sum(1).clamp(min=1)
                best = share if best is None else torch.minimum(best, share)
            out[start:start + len(a)] = best.double().numpy()
    return out


def measure(root: Path) -> None:
    pairs = capture_pairs(root)
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    disagreement = textured_disagreement(thumbnails_for(data), i, j)
    standing = ratio_to_next_best(disagreement, i, j, len(data.paths), ends="worse")
    print(f"{root}: {len(pairs)} pairs")
    print(f"  service: {ap_summary(pair_ap(pairs, data, excluded))}")
    for tau, rho in VARIANTS:
        lifted = disagreement <= tau
        if rho is not None:
            lifted &= standing <= rho
        label = f"tau {tau}" + ("" if rho is None else f", rho {rho}")
        print(f"  {label}: {int(lifted.sum())} pairs lifted; {ap_summary(pair_ap(pairs, data, excluded, lifted=lifted))}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for root in argv:
        measure(Path(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
