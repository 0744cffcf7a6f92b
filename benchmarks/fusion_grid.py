"""Choose the near-duplicate fusion weights on the whole matrix, not on one cell: a grid of weights
re-ranked on every cell's captured pair evidence, scored under both truths and by a leakage proxy,
summarised as means over datasets (each dataset's mean over its seeds), and with each dataset held
out in turn (the weights chosen on the other three, scored on it).

    python benchmarks/fusion_grid.py OUT_DIR CELL_DIR...

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`); its name is read
from the folder above it (`.../work/mnist-s1/contaminated`: dataset mnist, seed 1). The pair table
is captured once per cell as `pair_fusion.py` captures it; each cell's grid results are cached in
OUT_DIR/<cell>.json, so cells can be added later. Per cell and weights: the protocol's pair AP, the
pair AP without the source's own duplicates, and the leakage proxy: each eval image scored by its
best train pair's fused score (the service's leakage ranking without its light-crop search, which
ranks by its own tier) and ranked against the protocol's leaks, other injected kinds left in. The
proxy compares weights; the matrix's leakage AP comes from `rescore_cell.py`.

`--old-population` ranks as the service did before 2026-12-06 (4): the near-exact pairs counted in
the other pairs' p-values, and the first row under that service's weights (a comparison only).
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import capture_pairs, fused_order, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


# The weights of the service before 2026-12-06 (4), for `--old-population`'s first row.
OLD_FUSION_WEIGHTS = {"aligned": 0.1, "agreement": 0.1, "registered": 0.7, "embedding": 0.1, "crop": 0.1}
GRID = [{}] + [
    {"registered": r, "crop": c, "embedding": e, "aligned": a, "agreement": a}
    for r, c, e, a in itertools.product([1.0, 1.5, 2.0, 3.0, 4.0], [0.2, 0.3, 0.4, 0.6, 0.8],
                                        [0.025, 0.05, 0.1], [0.025, 0.05, 0.1])
]


def _leakage_proxy(pairs: pd.DataFrame, splits: np.ndarray, leaks: np.ndarray, score: np.ndarray) -> float:
    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    train_i, train_j = splits[i] == "train", splits[j] == "train"
    cross = train_i ^ train_j
    eval_end = np.where(train_i, j, i)[cross]
    best = np.full(splits.size, 2.0)   # above any score: eval images without a train pair rank last
    np.minimum.at(best, eval_end, score[cross])
    is_eval = splits != "train"
    return float(average_precision_score(leaks[is_eval], -best[is_eval]))


def score_cell(cell: Path, old_population: bool) -> list[list]:
    """[weights, protocol pair AP, pair AP without the source's duplicates, leakage proxy] per grid point."""
    from quality_lab.source_duplicates import source_duplicates

    data, _ = load_cell(cell)
    pairs = capture_pairs(cell)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    splits = np.asarray(data.splits).astype(str)
    truth = pd.read_csv(cell / "ground_truth.csv", keep_default_na=False)
    leaks = np.zeros(splits.size, dtype=bool)
    leaks[truth.loc[truth["issue_type"] == "leakage", "index"].astype(int).to_numpy()] = True
    out = []
    for weights in GRID:
        fused_with = {**OLD_FUSION_WEIGHTS, **weights} if old_population else weights
        ap = pair_ap(pairs, data, excluded, fused_with, near_exact_apart=not old_population)
        score, _ = fused_order(pairs, fused_with, near_exact_apart=not old_population)
        out.append([weights, ap[("protocol", "all")], ap[("without_source_duplicates", "all")],
                    _leakage_proxy(pairs, splits, leaks, score)])
    return out


def summarise(results: dict[str, list[list]]) -> None:
    by_dataset: dict[str, list[str]] = defaultdict(list)
    for name in results:
        by_dataset[name.rsplit("-s", 1)[0]].append(name)

    def means(g: int, datasets) -> np.ndarray:   # [protocol, without source duplicates, leakage proxy]
        return np.mean([np.mean([results[c][g][1:] for c in by_dataset[d]], axis=0) for d in datasets], axis=0)

    datasets = sorted(by_dataset)
    print(f"cells: {', '.join(sorted(results))}")
    default = means(0, datasets)
    print(f"first row (the default weights): pair AP {default[0]:.4f}, without the source's duplicates "
          f"{default[1]:.4f}, leakage proxy {default[2]:.4f}")
    table = sorted(range(1, len(GRID)), key=lambda g: -means(g, datasets)[:2].mean())
    print("best by the mean of both pair APs:")
    for g in table[:10]:
        m = means(g, datasets)
        print(f"  {m[0]:.4f} {m[1]:.4f} leakage {m[2]:.4f}  {json.dumps(GRID[g])}")
    if len(datasets) < 2:
        return
    print("each dataset held out (weights chosen on the others by the mean of both pair APs):")
    held = []
    for d in datasets:
        rest = [x for x in datasets if x != d]
        g = max(range(1, len(GRID)), key=lambda k: means(k, rest)[:2].mean())
        m = means(g, [d])
        held.append(m)
        print(f"  {d}: {m[0]:.4f} {m[1]:.4f} leakage {m[2]:.4f} (default {means(0, [d])[0]:.4f} "
              f"{means(0, [d])[1]:.4f}) with {json.dumps(GRID[g])}")
    h = np.mean(held, axis=0)
    print(f"  held-out mean: {h[0]:.4f} {h[1]:.4f} leakage {h[2]:.4f}")


def main(argv: list[str]) -> int:
    old_population = "--old-population" in argv
    argv = [a for a in argv if a != "--old-population"]
    if len(argv) < 2:
        print(__doc__)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for cell in map(Path, argv[1:]):
        name = cell.resolve().parent.name
        cached = out_dir / f"{name}{'-old' if old_population else ''}.json"
        if not cached.exists():
            cached.write_text(json.dumps(score_cell(cell, old_population)))
            print(f"scored {name}", flush=True)
        results[name] = json.loads(cached.read_text())
    summarise(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
