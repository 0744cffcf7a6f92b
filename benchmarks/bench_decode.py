"""What decoding photographs costs an audit: `ssl.data.decode_views` (JPEGs drafted: decoded at 1/2-1/8
scale inside the DCT, still at least `DRAFT_MARGIN` times the largest view) against the same function
asked for no draft (every pixel decoded, as before), alternated in one process.

    python benchmarks/bench_decode.py [--count 24] [--repeats 3]

The photographs are scikit-learn's two sample pictures (shipped with it: no download), resized to a
VGA frame, full HD and a 12-megapixel phone frame and saved as JPEG (quality 90) and, as the control
that drafting leaves alone, PNG. Each is decoded to the views an audit on a CPU asks for: the SSL
model's 64 px RGB (also the pixel classifier's), and the thumbnails' 28 px grayscale with the 32 px
colour grid. Printed per frame and format: ms an image for each path, their ratio, and the largest
and mean difference of the pixels (0-255), and what ingest's `inspect_image` (which must decode
whole: it hashes every pixel) costs beside them: one file after another, and as ingest now runs it
(`scan._inspect_all`: on threads when the files are large, `scan.THREADED_INSPECT_MIN_BYTES`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import quality_assets.scan as scan
import quality_assets.ssl.data as ssl_data
from quality_assets.imaging import inspect_image
from quality_assets.ssl.data import decode_views

FRAMES = {"VGA 640x480": (640, 480), "full HD 1920x1080": (1920, 1080), "phone 4032x3024": (4032, 3024)}
# (name, views) as the audit asks for them on a CPU: the SSL model's images, then the thumbnails.
VIEWS = {"SSL 64 px RGB": [(64, 3, Image.BILINEAR)],
         "thumbnails 28 px + 32 px grid": [(28, 1, Image.BILINEAR), (32, 3, Image.BOX)]}


def whole_decode_views(path, views):
    """`decode_views` before drafting: every pixel decoded, then resized (the service's function with
    its draft margin at 0, which asks for no draft)."""
    kept = ssl_data.DRAFT_MARGIN
    ssl_data.DRAFT_MARGIN = 0
    try:
        return decode_views(path, views)
    finally:
        ssl_data.DRAFT_MARGIN = kept


def _photos(folder: Path, frame: tuple[int, int], fmt: str, count: int) -> list[Path]:
    pictures = [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]
    paths = []
    for k in range(count):
        # Each file its own picture: another crop of a sample, so no decoder cache helps.
        base = pictures[k % 2]
        top, left = (k * 7) % 40, (k * 11) % 60
        image = Image.fromarray(base[top:top + 380, left:left + 560]).resize(frame, Image.BICUBIC)
        path = folder / f"{frame[0]}x{frame[1]}_{k}.{fmt}"
        image.save(path, quality=90) if fmt == "jpg" else image.save(path)
        paths.append(path)
    return paths


def _ms_per_image(decode, paths, views) -> float:
    start = time.perf_counter()
    for path in paths:
        decode(path, views)
    return (time.perf_counter() - start) / len(paths) * 1000.0


def _ingest_ms(paths) -> float:
    """ms an image for ingest's inspection of `paths` as a drop's candidates."""
    candidates = [scan._Candidate(path=p.name, full_path=p, split="train", label="a", labels=["a"]) for p in paths]
    start = time.perf_counter()
    scan._inspect_all(candidates, 40_000_000, 256 * 2**20, 1, None)
    return (time.perf_counter() - start) / len(paths) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="files per frame and format")
    parser.add_argument("--repeats", type=int, default=3, help="alternations; medians are printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("| frame, format | views | whole decode, ms/image | drafted (service), ms/image | ratio "
              "| largest / mean pixel difference | ingest `inspect_image`, ms/image: one after another, as ingest runs it "
              f"({scan.INSPECT_THREADS} threads for files of {scan.THREADED_INSPECT_MIN_BYTES // 1024} KB and more) |")
        print("|---|---|---|---|---|---|---|")
        for frame_name, frame in FRAMES.items():
            for fmt in ("jpg", "png"):
                paths = _photos(Path(tmp), frame, fmt, args.count)
                one_by_one, as_ingest = [], []
                for _ in range(args.repeats):
                    one_by_one.append(_ms_per_image(lambda p, _: inspect_image(p), paths, None))
                    as_ingest.append(_ingest_ms(paths))
                inspect_ms, ingest_ms = statistics.median(one_by_one), statistics.median(as_ingest)
                for views_name, views in VIEWS.items():
                    whole, drafted = [], []
                    for _ in range(args.repeats):
                        whole.append(_ms_per_image(whole_decode_views, paths, views))
                        drafted.append(_ms_per_image(decode_views, paths, views))
                    diffs = [np.abs(a.astype(np.int16) - b)
                             for p in paths for a, b in zip(whole_decode_views(p, views), decode_views(p, views))]
                    largest = max(int(d.max()) for d in diffs)
                    mean = float(np.mean([d.mean() for d in diffs]))
                    w, d = statistics.median(whole), statistics.median(drafted)
                    print(f"| {frame_name}, {fmt.upper()} | {views_name} | {w:.1f} | {d:.1f} | {w / d:.1f}x "
                          f"| {largest} / {mean:.2f} | {inspect_ms:.1f} / {ingest_ms:.1f} |")


if __name__ == "__main__":
    main()
