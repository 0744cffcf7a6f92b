"""Label-error evidence from the pixel classifier's training dynamics, against its out-of-fold
probabilities.

The service's pixel classifier (`scores.pixel_classifier`) ranks label errors by cleanlab's
self-confidence on out-of-fold probabilities. Its fold networks also see every row while they
train: the area under the margin (AUM, Pleiss et al., NeurIPS 2020; `consumer_cnn.train_cnn`'s
`margins`) reads how soon a row's given label wins, averaged over the epochs and the folds that
trained on it. This bench trains the five fold networks once and ranks a benchmark-matrix cell
(kept with `--keep-images`) by

- `oof`: self-confidence on the out-of-fold probabilities (the service's pixel evidence);
- `aum`: the area under the margin (lowest first);
- `oof*aum`: both, by the mean of their ranks;
- `repr`, `repr+...`: the representation classifiers' out-of-sample probabilities, alone and with them.

    python benchmarks/bench_label_dynamics.py CELL_DIR [--epochs 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_label_cnn import label_error_table  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def _lowest_first(score: np.ndarray) -> np.ndarray:
    return np.argsort(score, kind="stable").astype(np.int64)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from cleanlab.rank import get_label_quality_scores

    from quality_assets.consumer_cnn import CnnConfig, load_images
    from quality_assets.scores.confident_learning import out_of_sample_probabilities
    from quality_assets.scores.pixel_classifier import MAX_TRAIN_ROWS, _fit_folds

    data, vectors = load_cell(args.cell)
    classes, codes = np.unique(data.labels, return_inverse=True)
    cache = args.cell / f"dynamics_e{args.epochs}_s{args.seed}.npz"
    started = time.perf_counter()
    if cache.exists():
        kept = np.load(cache)
        probs, aum = kept["probs"], kept["aum"]
    else:
        paths = [str(data.image_dir / p) for p in data.paths]
        aum = np.zeros(len(codes))
        probs = _fit_folds(load_images(paths), codes, len(classes), folds=args.folds, seed=args.seed, anchor=None,
                           order_key=None, config=CnnConfig(epochs=args.epochs), max_train_rows=MAX_TRAIN_ROWS,
                           margins=aum)[0]
        np.savez(cache, probs=probs, aum=aum)
    seconds = time.perf_counter() - started
    repr_probs = out_of_sample_probabilities(vectors, codes, len(classes), seed=args.seed)

    oof = get_label_quality_scores(codes, probs)
    rep = get_label_quality_scores(codes, repr_probs)
    both = get_label_quality_scores(codes, (probs + repr_probs) / 2)
    rankings = {
        "oof": _lowest_first(oof),
        "aum": _lowest_first(aum),
        "oof*aum": _lowest_first(rankdata(oof) + rankdata(aum)),
        "repr": _lowest_first(rep),
        "repr+oof": _lowest_first(both),
        "repr+oof*aum": _lowest_first(rankdata(both) + rankdata(aum)),
        "repr*oof*aum": _lowest_first(rankdata(rep) + rankdata(oof) + rankdata(aum)),
    }
    table = label_error_table(rankings, data)
    print(f"{args.cell}: fold networks {seconds:.0f} s, out-of-fold accuracy {(probs.argmax(1) == codes).mean():.3f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.assign(cell=str(args.cell), epochs=args.epochs, seed=args.seed).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
