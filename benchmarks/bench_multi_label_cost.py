"""Cost of multi-label confident learning in the number of tags: one kernel matrix per fold shared by
every tag's model (the service, `confident_learning.out_of_sample_tag_probabilities`) against folds
and a kernel model computed per tag (the service before 2026-12-07, kept here as the peer), in the
same process, on the same synthetic features shaped like the service's (320 dimensions).

Each tag is a mixture of three sub-prototypes (no hyperplane separates it); a row carries one to
four tags drawn with Zipf-like popularity (so some tags are rare), its features the sum of one
sub-prototype of each plus noise; 5% of the rows have one tag added or removed. Prints seconds per
variant, their ratio, and each variant's AP of the flipped (row, tag) entries ranked by the tag's
self-confidence (the per-tag quality cleanlab reads), and of the flipped rows by cleanlab's
aggregate label quality.

    .venv/bin/python benchmarks/bench_multi_label_cost.py --sizes 5000 --tags 20 100
    .venv/bin/python benchmarks/bench_multi_label_cost.py --sizes 20000 --tags 40 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import average_precision_score

from quality_assets.scores import confident_learning as service


def synthetic(n: int, n_tags: int, dim: int, seed: int, noise: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, given tags [n, T], flipped entries [n, T])."""
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(0, 1.0, (n_tags, 3, dim))
    popularity = 1.0 / np.arange(1, n_tags + 1)
    popularity /= popularity.sum()
    truth = np.zeros((n, n_tags), dtype=bool)
    x = rng.normal(0, noise, (n, dim))
    for row in range(n):
        carried = rng.choice(n_tags, size=int(rng.integers(1, 5)), replace=False, p=popularity)
        truth[row, carried] = True
        x[row] += prototypes[carried, rng.integers(0, 3, carried.size)].sum(0)
    given = truth.copy()
    rows = np.flatnonzero(rng.random(n) < 0.05)
    columns = rng.integers(0, n_tags, rows.size)
    given[rows, columns] = ~given[rows, columns]
    return x.astype(np.float32), given, given != truth


def per_tag_probabilities(features: np.ndarray, present: np.ndarray, seed: int = 0) -> np.ndarray:
    """The service before: each tag its own stratified folds (seed + tag) and its own kernel matrices."""
    x = service._standardise(features, seed)
    probs = np.zeros(present.shape)
    for t in range(present.shape[1]):
        y = present[:, t].astype(np.int64)
        if y.min() == y.max():
            probs[:, t] = float(y[0])
            continue
        probs[:, t] = service._out_of_fold(x, y, 2, folds=None, seed=seed + t, anchor=None)[:, 1]
    return np.clip(probs, 0.0, 1.0)


def scores(probs: np.ndarray, given: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    confidence = np.where(given, probs, 1.0 - probs)
    quality = get_label_quality_scores([list(np.flatnonzero(r)) for r in given], probs, method="self_confidence")
    return {"entry_ap": round(float(average_precision_score(flipped.ravel(), -confidence.ravel())), 4),
            "row_ap": round(float(average_precision_score(flipped.any(1), -np.asarray(quality))), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[5000])
    p.add_argument("--tags", nargs="+", type=int, default=[20, 100])
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--skip-peer", action="store_true", help="the shared variant alone (large runs)")
    args = p.parse_args()
    for n in args.sizes:
        for n_tags in args.tags:
            for seed in args.seeds:
                x, given, flipped = synthetic(n, n_tags, args.dim, seed)
                row = {"n": n, "tags": n_tags, "seed": seed, "flipped_entries": int(flipped.sum())}
                start = time.perf_counter()
                shared = service.out_of_sample_tag_probabilities(x, given, seed=seed)
                row["shared_s"] = round(time.perf_counter() - start, 1)
                row["shared"] = scores(shared, given, flipped)
                if not args.skip_peer:
                    start = time.perf_counter()
                    own = per_tag_probabilities(x, given, seed=seed)
                    row["per_tag_s"] = round(time.perf_counter() - start, 1)
                    row["per_tag"] = scores(own, given, flipped)
                    row["speed_up"] = round(row["per_tag_s"] / max(row["shared_s"], 1e-9), 2)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
