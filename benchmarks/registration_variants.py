"""Re-register one benchmark-matrix cell's registered pairs under other registration settings, or on
other pictures of the same images, and re-rank its pair table, in a minute instead of a scoring run
per variant.

    python benchmarks/registration_variants.py CELL_DIR '{}' '{"COARSE_KEEP": 3}' '{"POLISH_STEPS": 6, "POLISH_LR": 0.03}'
    python benchmarks/registration_variants.py CELL_DIR '{}' '{"pictures": "28"}' '{"pictures": "grid"}' '{"pictures": "rgb"}'

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`, as for
`rescore_cell.py`); its pair table is captured once by `pair_fusion.capture_pairs` (cached in the
folder). Each argument is a JSON object of `quality_assets.scores.registration` module constants
(`COARSE_ANGLES`, `COARSE_ZOOMS`, `FINE_ANGLES`, `FINE_ZOOMS`, `COARSE_KEEP`, `POLISH_STEPS`,
`POLISH_LR`, `FINE_BLUR_PX`) set for that variant and reset after it, and optionally `pictures`,
what is registered instead of the service's thumbnails: a side in pixels (grayscale, decoded from the
cell's PNG files as the thumbnails are; the registration's blur scales with the side against the
service's thumbnail size), `grid` (the stored 32 px colour grids in gray, PIL's "L" weights; they are
box-averaged where the thumbnails are bilinear), `grad` (the Sobel gradient magnitude of a 48 px gray
picture, pooled to the thumbnail side) or `rgb` (R, G and B registered each on its own at the thumbnail side, the three
dissimilarities averaged: three searches). The pairs the service
registered are registered again with `registered_similarity` on the service's thumbnails, their
ratio to the next best recomputed as `pair_evidence` computes it, and the table re-ranked by
`pair_fusion.fused_order`. Which pairs are registered stays the capture's. The first argument should
be `'{}'`: with the service's settings the ratios must reproduce the captured ones (printed as
`reproduces`), or the registration or the ratio changed since the capture.

Prints per variant the registration's seconds and pairs per second (one process, the machine's
load included: compare variants of one call, not across calls) and the protocol's pair AP, all kinds
and by kind, under the protocol's truth and without the source's own duplicates.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import quality_assets.scores.registration as registration
from quality_assets.scores.pair_evidence import ratio_ends
from quality_assets.scores.pixel_copies import ratio_to_next_best

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402

SETTINGS = ("COARSE_ANGLES", "COARSE_ZOOMS", "FINE_ANGLES", "FINE_ZOOMS", "COARSE_KEEP", "POLISH_STEPS", "POLISH_LR",
            "FINE_BLUR_PX")


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """Each picture stretched to 0-255 (gradient magnitudes have no fixed range)."""
    x = x - x.amin(dim=(-2, -1), keepdim=True)
    x = x / x.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def pictures_for(data, kind: str | None, thumbnails: np.ndarray) -> list[np.ndarray]:
    """The pictures a variant registers (uint8 [N, S, S] each; several are registered apart and their
    dissimilarities averaged): the service's `thumbnails` when `kind` is None."""
    from quality_assets.pixel_view import THUMBNAIL_SIZE
    from quality_assets.ssl.data import load_image_tensor

    if kind is None:
        return [thumbnails]
    paths = [str(data.image_dir / p) for p in data.paths]
    if kind.isdigit():
        return [load_image_tensor(paths, int(kind), channels=1).numpy()[:, 0]]
    if kind == "grid":
        from quality_lab.bench.methods import colour_grids_for

        gray = torch.from_numpy(colour_grids_for(data)).float() @ torch.tensor([0.299, 0.587, 0.114])
        return [gray.round().clamp(0, 255).to(torch.uint8).numpy()]
    if kind == "grad":
        gray = load_image_tensor(paths, 48, channels=1)[:, :1].float()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
        magnitude = (F.conv2d(gray, sobel, padding=1) ** 2 + F.conv2d(gray, sobel.transpose(-1, -2), padding=1) ** 2).sqrt()
        magnitude[..., [0, -1], :] = 0.0   # the zero padding's edge is no edge of the picture
        magnitude[..., :, [0, -1]] = 0.0
        return [_to_uint8(F.interpolate(magnitude, size=(THUMBNAIL_SIZE, THUMBNAIL_SIZE), mode="area")[:, 0])]
    if kind == "rgb":
        rgb = load_image_tensor(paths, THUMBNAIL_SIZE, channels=3).numpy()
        return [np.ascontiguousarray(rgb[:, c]) for c in range(3)]
    raise SystemExit(f"unknown pictures {kind!r}: a side in pixels, 'grid', 'grad' or 'rgb'")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    from quality_lab.bench.methods import thumbnails_for
    from quality_lab.source_duplicates import source_duplicates

    root, variants = Path(argv[0]), [json.loads(v) for v in argv[1:]] or [{}]
    unknown = sorted({k for v in variants for k in v} - set(SETTINGS) - {"pictures"})
    if unknown:
        raise SystemExit(f"unknown registration settings {unknown}; known: {', '.join(SETTINGS)}")
    pairs = capture_pairs(root)
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    thumbnails = thumbnails_for(data)
    registered = pairs["registered_ratio"].notna().to_numpy()
    i, j = pairs["i"].to_numpy()[registered], pairs["j"].to_numpy()[registered]
    captured = pairs["registered_ratio"].to_numpy()[registered]
    print(f"{root}: {len(pairs)} pairs, {int(registered.sum())} registered")
    defaults = {name: getattr(registration, name) for name in SETTINGS}
    for variant in variants:
        pictures = pictures_for(data, variant.get("pictures"), thumbnails)
        for name, value in variant.items():
            if name != "pictures":
                setattr(registration, name, tuple(value) if isinstance(value, list) else value)
        try:
            start = time.perf_counter()
            dissimilarity = np.mean([(1.0 - registration.registered_similarity(p, i, j, mirror=True)) / 2.0
                                     for p in pictures], axis=0)
            seconds = time.perf_counter() - start
        finally:
            for name, value in defaults.items():
                setattr(registration, name, value)
        ratio = ratio_to_next_best(dissimilarity, i, j, data.n, ends=ratio_ends("registered_ratio"))
        table = pairs.copy()
        table.loc[registered, "registered_ratio"] = ratio
        ap = pair_ap(table, data, excluded)
        reproduces = bool(np.allclose(ratio, captured, rtol=1e-4, equal_nan=True))
        print(f"{json.dumps(variant)}: {seconds:.1f} s, {i.size / seconds:.0f} pairs/s, reproduces {reproduces}; "
              f"{ap_summary(ap)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
