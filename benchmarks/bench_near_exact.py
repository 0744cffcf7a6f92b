"""Throughput of the near-exact comparison and the crop search (`quality_assets.scores.near_exact`),
against the pixel verifier (`scores.pixel_copies.verify_pairs`) on the same pairs, in one process.

    python benchmarks/bench_near_exact.py [N_IMAGES] [N_PAIRS]

Grids: clip-art-like pictures (a few flat shapes on white) at 64 px, with a JPEG copy for a tenth
of the pairs, so the lower bound lets some pairs through as in real data. Prints pairs per second of
each and the ratios; the figures and the command go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import io
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

from quality_assets.pixel_view import THUMBNAIL_SIZE
from quality_assets.scores.near_exact import COLOUR_GRID_SIZE, crop_differences, grid_differences
from quality_assets.scores.pixel_copies import verify_pairs


def picture(rng: np.random.Generator) -> Image.Image:
    im = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(2, 34, size=2)
        box = (int(x0), int(y0), int(x0 + rng.integers(14, 28)), int(y0 + rng.integers(14, 28)))
        draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), outline=(20, 20, 20), width=2)
    return im


def jpeg(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=75)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def main(argv: list[str]) -> int:
    n_images = int(argv[0]) if argv else 4_000
    n_pairs = int(argv[1]) if len(argv) > 1 else 20_000
    rng = np.random.default_rng(0)
    pictures = [picture(rng) for _ in range(n_images // 2)]
    pictures += [jpeg(p) for p in pictures[: n_images - len(pictures)]]
    grids = np.stack([np.asarray(p.resize((COLOUR_GRID_SIZE,) * 2, Image.BOX)) for p in pictures])
    thumbs = np.stack([np.asarray(p.convert("L").resize((THUMBNAIL_SIZE,) * 2, Image.BILINEAR)) for p in pictures])
    half = n_images // 2
    i = rng.integers(0, half, n_pairs)
    j = np.where(rng.random(n_pairs) < 0.1, i + half, rng.integers(0, n_images, n_pairs))
    j = np.minimum(j, n_images - 1)

    timings = {}
    for name, run in (
        ("near-exact comparison", lambda: grid_differences(grids, None, i, j)),
        ("crop search (one way)", lambda: crop_differences(grids, None, i[: n_pairs // 10], j[: n_pairs // 10])),
        ("pixel verifier (peer)", lambda: verify_pairs(thumbs, i[: n_pairs // 10], j[: n_pairs // 10])),
    ):
        started = time.perf_counter()
        found = run()
        seconds = time.perf_counter() - started
        count = n_pairs if name.startswith("near") else n_pairs // 10
        timings[name] = count / seconds
        hits = np.isfinite(found).sum() if not isinstance(found, tuple) else "-"
        print(f"{name:24s} {count:>8,d} pairs in {seconds:6.2f} s: {count / seconds:>10,.0f} pairs/s (hits {hits})")
    peer = timings["pixel verifier (peer)"]
    for name, rate in timings.items():
        print(f"{name:24s} {rate / peer:6.2f}x the pixel verifier's throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
