"""Diagnosis: how much of one matrix cell's near-duplicate and leakage AP the source's own near
duplicates cost the service, without re-running the matrix (which now measures every method by
both truths: :mod:`quality_lab.source_duplicates`).

Prints the number of pairs and eval images that the second truth leaves out, and the service's AP
under each truth.

    .venv/bin/python benchmarks/diagnose_source_duplicates.py CELL/contaminated [RMS]

CELL is a matrix cell kept with `--keep-images` (read as `benchmarks/rescore_cell.py` reads it);
RMS defaults to ``quality_lab.source_duplicates.SOURCE_DUPLICATE_RMS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import load_cell  # noqa: E402

from quality_lab.bench.methods import MethodResult, selfclean_rankings, thumbnails_for  # noqa: E402
from quality_lab.bench.metrics import evaluate_method  # noqa: E402
from quality_lab.source_duplicates import SOURCE_DUPLICATE_RMS, source_duplicates  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    root = Path(argv[0])
    rms = float(argv[1]) if len(argv) > 1 else SOURCE_DUPLICATE_RMS
    data, vectors = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth, rms)
    print(f"{root.parent.name}: {excluded.n_pairs} pairs of one source picture at RMS <= {rms}, "
          f"{excluded.eval_images.size} eval images with a twin in train")
    rankings, _, _ = selfclean_rankings(vectors, data.manifest, k=16, thumbnails=thumbnails_for(data))
    result = MethodResult("ours", "service", rankings, 0.0)
    rows = pd.DataFrame(evaluate_method(result, data) + evaluate_method(result, data, excluded))
    rows = rows[rows.issue_type.isin(["near_duplicate", "leakage"])]
    print(rows.pivot_table(index=["issue_type", "kind"], columns="truth", values="AP").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
