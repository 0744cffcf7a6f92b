"""Cost of the crop evidence's distances (`pixel_view.crop_distances`) per pair, alternated in one
process so that every variant sees the same load.

    python benchmarks/bench_crop_distances.py --images 3000 --pairs 100000 --repeats 3
    python benchmarks/bench_crop_distances.py --images 3000 --pairs 100000 --repeats 5 --compare-gathers

By default: the copy search's 8x8 averages alone against the service's sizes
(`pixel_view.CROP_DISTANCE_SIZES`). With `--compare-gathers`: the service against the layout it
replaced on 2026-12-07 (each crop's rows gathered on their own, once per crop and direction: ten
gathers of both ends a shape, `one_gather_per_crop` below), at the service's sizes, with the largest
difference between the two paths' distances.

Thumbnails are random (the cost does not depend on what they show); pairs are drawn uniformly.
Prints the seconds of each repeat, the median and pairs per second, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from quality_assets.knn import pair_dot
from quality_assets.pixel_view import (
    CROP_CONTRAST_FLOOR, CROP_DISTANCE_SIZES, CROP_PLACES, CROP_SHAPES, SEARCH_SIZE, THUMBNAIL_SIZE,
    _crop_entries, _search_entries, contrast_weight, crop_distances,
)


def one_gather_per_crop(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                        sizes: tuple[int, ...] = CROP_DISTANCE_SIZES) -> tuple[np.ndarray, np.ndarray]:
    """`crop_distances` as it was computed before 2026-12-07: the crops crop-major (crop c of image i
    at row c * n + i) and one `pair_dot` per crop and direction."""
    images = np.unique(np.concatenate([a, b]))
    ra, rb = np.searchsorted(images, a), np.searchsorted(images, b)
    t = np.asarray(thumbs)[images]
    n = len(t)
    crop_sum, whole_sum = [], []
    for size in sizes:
        whole, whole_contrast = _search_entries(t, size=size)
        whole_weight = contrast_weight(whole_contrast, CROP_CONTRAST_FLOOR)
        best = np.full(ra.size, -1.0)
        for shape in CROP_SHAPES:
            crops, crop_contrast = _crop_entries(t, whole, whole_contrast, size=size, shapes=(shape,))
            entries = np.vstack([whole, crops])
            weight = np.concatenate([whole_weight, contrast_weight(crop_contrast, CROP_CONTRAST_FLOOR)])
            for c in range(1, CROP_PLACES + 1):
                for x, y in ((c * n + ra, rb), (ra, c * n + rb)):
                    best = np.maximum(best, pair_dot(entries, x, y) * weight[x] * weight[y])
        crop_sum.append(1.0 - best)
        whole_sum.append(1.0 - pair_dot(whole, ra, rb) * whole_weight[ra] * whole_weight[rb])
    return np.mean(crop_sum, axis=0), np.mean(whole_sum, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare-gathers", action="store_true",
                    help="the service against one gather per crop and direction (its layout before 2026-12-07)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, (args.images, THUMBNAIL_SIZE, THUMBNAIL_SIZE), dtype=np.uint8)
    a, b = rng.integers(0, args.images, args.pairs), rng.integers(0, args.images, args.pairs)
    if args.compare_gathers:
        variants = {"one gather per crop": lambda: one_gather_per_crop(thumbs, a, b),
                    "service": lambda: crop_distances(thumbs, a, b)}
        baseline = "one gather per crop"
    else:
        variants = {"8x8 only": lambda: crop_distances(thumbs, a, b, sizes=(SEARCH_SIZE,)),
                    "service": lambda: crop_distances(thumbs, a, b)}
        baseline = "8x8 only"
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    results = {}
    for _ in range(args.repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            results[name] = run()
            seconds[name].append(time.perf_counter() - started)
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    for name in variants:
        print(json.dumps({"variant": name, "images": args.images, "pairs": args.pairs,
                          "seconds": [round(s, 3) for s in seconds[name]], "median_s": round(medians[name], 3),
                          "pairs_per_s": round(args.pairs / medians[name])}))
    if args.compare_gathers:
        difference = max(float(np.max(np.abs(old - new))) for old, new in zip(results[baseline], results["service"]))
        print(json.dumps({"max_abs_difference": difference}))
        print(f"{baseline} / service: {medians[baseline] / medians['service']:.2f}x")
    else:
        print(f"service / {baseline}: {medians['service'] / medians[baseline]:.2f}x")


if __name__ == "__main__":
    main()
