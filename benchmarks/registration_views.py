"""What the registered view would rank like if the registration read other pictures of the same pairs:
larger or smaller thumbnails, gradient magnitude, or each colour channel registered on its own. (#12)

    python benchmarks/registration_views.py CELL_DIR 24 16 20 32 48 64 grad rgb

CELL_DIR is a benchmark-matrix cell's `contaminated` folder (`quality_lab.matrix --keep-images`) whose
pair table `benchmarks/pair_fusion.py` has captured. Every pair the service registered there is
registered again (`scores.registration.registered_similarity`, the service's code) on the variant's
pictures, decoded from the cell's PNG files; the registered ratio is taken again over those pairs
(`ratio_to_next_best`, the better end, as the service reads it), the table re-fused by
`pair_fusion.pair_ap` and scored under both truths. A number is a thumbnail side (the service's,
`pixel_view.THUMBNAIL_SIZE`, must give the captured ratios back to the bit, which is checked; the
registration's blur scales with the side against that size, so another side is not the service of
another size exactly); `grid` is the gray (PIL's "L" weights) of the
32 px colour grids the service stores beside the thumbnails (`quality_lab.bench.methods.colour_grids_for`:
box-averaged, where the thumbnails are bilinear); `grad` is the Sobel gradient magnitude of a 48 px
gray picture pooled to 24 px; `rgb` registers R, G and B each on its own and averages the three
dissimilarities (three searches). Each variant's correlations are cached in CELL_DIR
(`registration_view_<variant>.npy`). Only the registered view moves; which pairs are registered and
every other view stay as captured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pair_fusion import PAIR_FILE, ap_summary, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """Each picture stretched to 0-255 (gradient magnitudes have no fixed range)."""
    x = x - x.amin(dim=(-2, -1), keepdim=True)
    x = x / x.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def variant_dissimilarity(variant: str, data, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(1 - correlation) / 2 of the pairs registered on the variant's pictures of the cell `data`."""
    from quality_assets.scores.registration import registered_similarity
    from quality_assets.ssl.data import load_image_tensor

    paths = [str(data.image_dir / p) for p in data.paths]
    if variant.isdigit():
        thumbs = load_image_tensor(paths, int(variant), channels=1).numpy()[:, 0]
        return (1.0 - registered_similarity(thumbs, i, j)) / 2.0
    if variant == "grid":
        from quality_lab.bench.methods import colour_grids_for

        grids = torch.from_numpy(colour_grids_for(data)).float()
        gray = grids @ torch.tensor([0.299, 0.587, 0.114])
        return (1.0 - registered_similarity(gray.round().clamp(0, 255).to(torch.uint8).numpy(), i, j)) / 2.0
    if variant == "grad":
        gray = load_image_tensor(paths, 48, channels=1)[:, :1].float()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
        magnitude = (F.conv2d(gray, sobel, padding=1) ** 2 + F.conv2d(gray, sobel.transpose(-1, -2), padding=1) ** 2).sqrt()
        magnitude[..., [0, -1], :] = 0.0   # the zero padding's edge is no edge of the picture
        magnitude[..., :, [0, -1]] = 0.0
        thumbs = _to_uint8(F.interpolate(magnitude, size=(24, 24), mode="area")[:, 0])
        return (1.0 - registered_similarity(thumbs, i, j)) / 2.0
    if variant == "rgb":
        rgb = load_image_tensor(paths, 24, channels=3).numpy()
        return np.mean([(1.0 - registered_similarity(np.ascontiguousarray(rgb[:, c]), i, j)) / 2.0 for c in range(3)],
                       axis=0)
    raise ValueError(f"unknown variant {variant!r}: a thumbnail side, 'grid', 'grad' or 'rgb'")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    from quality_assets.pixel_view import THUMBNAIL_SIZE
    from quality_assets.scores.pixel_copies import ratio_to_next_best
    from quality_lab.source_duplicates import source_duplicates

    root, variants = Path(argv[0]), argv[1:]
    if not (root / PAIR_FILE).exists():
        print(f"{root / PAIR_FILE} is missing: run benchmarks/pair_fusion.py {root} first")
        return 2
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    pairs = pd.read_pickle(root / PAIR_FILE)
    registered = np.flatnonzero(pairs["registered_ratio"].notna().to_numpy())
    i, j = pairs["i"].to_numpy()[registered], pairs["j"].to_numpy()[registered]
    print(f"{root.parent.name}: {len(pairs)} pairs, {registered.size} registered; service: "
          f"{ap_summary(pair_ap(pairs, data, excluded))}", flush=True)
    for variant in variants:
        cache = root / f"registration_view_{variant}.npy"
        if cache.exists():
            dissimilarity = np.load(cache)
        else:
            started = time.perf_counter()
            dissimilarity = variant_dissimilarity(variant, data, i, j)
            print(f"{variant}: {registered.size / (time.perf_counter() - started):.0f} pairs/s", flush=True)
            np.save(cache, dissimilarity)
        ratio = pairs["registered_ratio"].to_numpy().copy()
        ratio[registered] = ratio_to_next_best(dissimilarity, i, j, data.n, ends="better")
        if variant == str(THUMBNAIL_SIZE) and not np.allclose(ratio[registered], pairs["registered_ratio"].to_numpy()[registered],
                                               rtol=1e-6):
            print(f"{THUMBNAIL_SIZE} px does not give the captured ratios back: the service changed since the capture")
            return 1
        print(f"{variant}: {ap_summary(pair_ap(pairs.assign(registered_ratio=ratio), data, excluded))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
