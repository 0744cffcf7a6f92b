"""Throughput of the pixel verifiers (`scores.pixel_copies.verify_pairs`) against the way they ran
before 2026-12-07 (every pair warped its second image's 18 canonical frames itself; now a batch's
pairs come by their second image and each second image is warped once), alternated in one process
on the same pairs, with the largest difference between the two paths' verdicts.

    python benchmarks/bench_verify_pairs.py --n 10000 --repeats 3

Thumbnails are jittered MNIST digits (`bench_pixel_copies.jittered_digits`); the pairs are the
pixel view's copy candidates (`pixel_candidate_pairs`, 8 an image and view, as the service finds
them), all of them (as the service verifies them up to `max_verified_pairs`, 2M: up to ~50k
images) and a sample of 2 an image (what the 2M budget leaves an image at 1M images).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pixel_copies import jittered_digits  # noqa: E402

from quality_assets.pixel_view import BLUR_SIGMA_PX, THUMBNAIL_SIZE, frames, gaussian_blur, pixel_candidate_pairs, warp  # noqa: E402
from quality_assets.scores.pixel_copies import (  # noqa: E402
    ROTATIONS_DEG, _agreement_dissimilarity, _unit, verify_pairs,
)


def verify_each_pair_warped(t: np.ndarray, i: np.ndarray, j: np.ndarray, *, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """`verify_pairs` (mirror on, CPU) as it ran before 2026-12-07: batches in the pairs' order, each
    pair blurring and warping both of its images."""
    aligned, agreement = np.ones(i.size), np.ones(i.size)
    sigma = BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    thetas = [math.radians(a) for a in ROTATIONS_DEG]
    with torch.inference_mode():
        images = np.unique(np.concatenate([i, j]))
        slot = np.full(len(t), -1, dtype=np.int64)
        slot[images] = np.arange(images.size)
        x = torch.from_numpy(t[images]).float()[:, None] / 255.0
        frame = torch.stack(frames(gaussian_blur(x, sigma)), dim=1)
        median = x.flatten(1).median(1).values
        for start in range(0, i.size, batch):
            ia, jb = i[start:start + batch], j[start:start + batch]
            sa, sb = torch.from_numpy(slot[ia]), torch.from_numpy(slot[jb])
            xa = torch.from_numpy(t[ia]).float()[:, None] / 255.0
            xb = torch.from_numpy(t[jb]).float()[:, None] / 255.0
            ba, bb = gaussian_blur(xa, sigma), gaussian_blur(xb, sigma)
            ua = _unit(ba)
            best = (ua * _unit(bb)).sum(1)
            med_a, med_b = median[sa], median[sb]
            agree = _agreement_dissimilarity(xa, xb, med_a, med_b)
            best = torch.maximum(best, (ua * _unit(torch.flip(bb, dims=[3]))).sum(1))
            agree = torch.minimum(agree, _agreement_dissimilarity(xa, torch.flip(xb, dims=[3]), med_a, med_b))
            fa, fb = frame[sa].unbind(1), frame[sb].unbind(1)
            ca = _unit(warp(ba, *fa, 0.0, False))
            for flip in (False, True):
                for theta in thetas:
                    best = torch.maximum(best, (ca * _unit(warp(bb, *fb, theta, flip))).sum(1))
            stop = start + len(ia)
            aligned[start:stop] = ((1.0 - best.clamp(-1.0, 1.0)) / 2.0).double().numpy()
            agreement[start:stop] = agree.double().numpy()
    return aligned, agreement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    thumbs = jittered_digits(args.n)
    ci, cj, _ = pixel_candidate_pairs(thumbs, 8)
    rng = np.random.default_rng(1)
    sample = np.sort(rng.choice(ci.size, min(ci.size, 2 * args.n), replace=False))
    for name, (i, j) in {"all candidates": (ci, cj), "2 an image": (ci[sample], cj[sample])}.items():
        seconds: dict[str, list[float]] = {"each pair warped": [], "service": []}
        verdicts = {}
        for _ in range(args.repeats):
            for variant, run in (("each pair warped", verify_each_pair_warped), ("service", verify_pairs)):
                started = time.perf_counter()
                verdicts[variant] = run(thumbs, i, j)
                seconds[variant].append(time.perf_counter() - started)
        medians = {variant: float(np.median(s)) for variant, s in seconds.items()}
        difference = max(float(np.max(np.abs(a - b))) for a, b in zip(verdicts["each pair warped"], verdicts["service"]))
        print(json.dumps({"pairs": name, "n_pairs": int(i.size), "images": args.n,
                          "pairs_per_image_second": round(i.size / np.unique(j).size, 1),
                          **{f"{v}_pairs_per_s": round(i.size / m) for v, m in medians.items()},
                          "seconds": {v: [round(x, 2) for x in s] for v, s in seconds.items()},
                          "speed_up": round(medians["each pair warped"] / medians["service"], 2),
                          "max_abs_difference": difference}), flush=True)


if __name__ == "__main__":
    main()
