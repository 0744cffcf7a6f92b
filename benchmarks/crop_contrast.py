"""The crop evidence under other contrast floors, on one benchmark-matrix cell's captured pair table.

    python benchmarks/crop_contrast.py CELL_DIR [FLOOR ...]

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`); the pair table is
captured once by `pair_fusion.py` (`near_duplicate_pairs.pkl`). For each floor the crop distances
of every verified pair are measured again (`pixel_view.crop_distances(contrast_floor=...)`; 0 is
the plain cosine), turned into the crop ratio as `scores.pair_evidence` does, and the table is
re-ranked with the service's fusion (`pair_fusion.fused_order`): pair AP per kind under the
protocol's truth and without the source's own duplicates. The other views stay as captured, so
only the crop evidence moves. The first line is the ranking as captured (by the code of the capture).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from quality_assets.pixel_view import CROP_CONTRAST_FLOOR, crop_distances
from quality_assets.scores.pair_evidence import crop_evidence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    from quality_lab.bench.methods import thumbnails_for
    from quality_lab.source_duplicates import source_duplicates

    root, floors = Path(argv[0]), [float(f) for f in argv[1:]] or [0.0, CROP_CONTRAST_FLOOR]
    pairs = capture_pairs(root)
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    thumbs = np.asarray(thumbnails_for(data))
    measured = pairs["crop_ratio"].notna().to_numpy()
    i, j = pairs["i"].to_numpy()[measured], pairs["j"].to_numpy()[measured]
    print(f"{root}: {len(pairs)} pairs, {int(measured.sum())} with crop evidence")
    print(f"as captured: {ap_summary(pair_ap(pairs, data, excluded))}")
    for floor in floors:
        crop, whole = crop_distances(thumbs, i, j, contrast_floor=floor)
        crop = np.clip(crop, 0.0, 2.0)
        ratio = crop_evidence(crop, whole, i, j, len(thumbs))
        column = pairs["crop_ratio"].to_numpy().copy()
        column[measured] = ratio
        print(f"floor {floor}: {ap_summary(pair_ap(pairs.assign(crop_ratio=column), data, excluded))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
