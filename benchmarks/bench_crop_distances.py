"""Cost of the crop evidence's distances (`pixel_view.crop_distances`) per pair, on the copy search's
8x8 averages alone against the service's sizes (`pixel_view.CROP_DISTANCE_SIZES`), alternated in one
process so that both see the same load.

    python benchmarks/bench_crop_distances.py --images 3000 --pairs 100000 --repeats 3

Thumbnails are random (the cost does not depend on what they show); pairs are drawn uniformly.
Prints the seconds of each repeat, the median and pairs per second, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from quality_assets.pixel_view import CROP_DISTANCE_SIZES, SEARCH_SIZE, THUMBNAIL_SIZE, crop_distances


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, (args.images, THUMBNAIL_SIZE, THUMBNAIL_SIZE), dtype=np.uint8)
    a, b = rng.integers(0, args.images, args.pairs), rng.integers(0, args.images, args.pairs)
    variants = {"8x8 only": (SEARCH_SIZE,), "service": CROP_DISTANCE_SIZES}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, sizes in variants.items():
            started = time.perf_counter()
            crop_distances(thumbs, a, b, sizes=sizes)
            seconds[name].append(time.perf_counter() - started)
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    for name, sizes in variants.items():
        print(json.dumps({"variant": name, "sizes": list(sizes), "images": args.images, "pairs": args.pairs,
                          "seconds": [round(s, 3) for s in seconds[name]], "median_s": round(medians[name], 3),
                          "pairs_per_s": round(args.pairs / medians[name])}))
    print(f"service / 8x8 only: {medians['service'] / medians['8x8 only']:.2f}x")


if __name__ == "__main__":
    main()
