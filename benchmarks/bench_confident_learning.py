"""Cost of confident learning's out-of-fold classifier: the linear model alone against the linear
and kernel models averaged (the default), in the same process, on synthetic features shaped like
the service's (320 dimensions: the SSL embedding and the pixel view).

Each class is a mixture of sub-clusters (so no line separates the classes), 5% of the labels are
flipped to another class; both variants see the same data and folds. Prints seconds per variant,
their ratio, each variant's label-quality AP on the flips, and the process's peak resident memory
after each variant (the kernel variant runs second, so its figure is the run's peak).

    .venv/bin/python benchmarks/bench_confident_learning.py --sizes 10000 100000 --classes 10
    .venv/bin/python benchmarks/bench_confident_learning.py --sizes 10000 50000 --classes 100
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from sklearn.metrics import average_precision_score

from quality_assets.scores.confident_learning import MAX_TRAIN_ROWS, confident_learning


def synthetic(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_class = 4
    centres = rng.normal(0, 1.0, (classes * per_class, dim))
    component = rng.integers(0, classes * per_class, n)
    x = centres[component] + rng.normal(0, 1.2, (n, dim))
    truth = component % classes
    given = truth.copy()
    flipped = rng.random(n) < 0.05
    given[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    return x.astype(np.float32), given, flipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for n in args.sizes:
        x, given, flipped = synthetic(n, args.classes, args.dim, args.seed)
        keys = np.asarray([f"{i:012d}" for i in np.random.default_rng(1).permutation(n)])
        out = {"n": n, "classes": args.classes, "dim": args.dim, "max_train_rows": MAX_TRAIN_ROWS}
        for name, kernel in (("linear", False), ("linear+kernel", True)):
            started = time.perf_counter()
            learned = confident_learning(x, given, args.classes, order_key=keys, kernel=kernel)
            out[f"{name}_s"] = round(time.perf_counter() - started, 2)
            out[f"{name}_ap"] = round(float(average_precision_score(flipped, -learned.quality)), 4)
            out[f"{name}_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)
        out["ratio"] = round(out["linear+kernel_s"] / out["linear_s"], 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
