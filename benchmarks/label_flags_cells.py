"""How many samples the label-error flags hold, against the truth, on benchmark-matrix cells.

    python benchmarks/label_flags_cells.py CELL_DIR [CELL_DIR ...] [--config JSON] [--issue-type T]

--issue-type: another per-sample issue type's flags instead (`off_topic`, `leakage`); default `label_error`.

--config: a score configuration (`ScoreConfig` sections), e.g. '{"label_error": {"flag_rule": "cut"}}'
for SelfClean's fraction cut instead of the default flag (a confident other label).

CELL_DIR is a cell's `contaminated` or `clean` folder kept by `python -m quality_lab.matrix
--keep-images` (see `benchmarks/rescore_cell.py`, whose loader this uses: the cell's own DINO
checkpoint, vectors cached in the folder). Prints, per cell, the flagged count, the injected label
errors and the flags' precision and recall. The ranking's AP is the matrix's business; this is about
the cut: how many samples the cleaned split would act on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rescore_cell import load_cell  # noqa: E402
from quality_assets.knn import build_knn_graph  # noqa: E402
from quality_assets.scoring import ScoreConfig, compute_scores  # noqa: E402
from quality_lab.bench.methods import thumbnails_for  # noqa: E402

# Per-sample issue types whose injected samples the cells' ground truth lists.
PER_SAMPLE_TYPES = ("label_error", "off_topic", "leakage")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cells", nargs="+", metavar="CELL_DIR")
    parser.add_argument("--config", type=json.loads, default={}, help="a ScoreConfig as JSON")
    parser.add_argument("--issue-type", default="label_error", choices=PER_SAMPLE_TYPES)
    args = parser.parse_args(argv)
    config, issue_type, cells = args.config, args.issue_type, args.cells
    for cell in cells:
        root = Path(cell)
        data, vectors = load_cell(root)
        ids = data.manifest["sample_id"].to_numpy(dtype=object)
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        started = time.perf_counter()
        out = compute_scores(list(ids), build_knn_graph(v, k=16), data.manifest, ScoreConfig(config), vectors=v,
                             thumbnails=thumbnails_for(data))
        rows = out.issue_rows[out.issue_rows.issue_type == issue_type]
        position = pd.Series(np.arange(len(ids)), index=ids)
        flagged = set(position.loc[rows[rows.is_issue.astype(bool)].sample_id].tolist())
        truth = data.truth
        bad = set(truth[truth.issue_type == issue_type]["index"].astype(int)) if len(truth) else set()
        hits = len(flagged & bad)
        print(f"{root.parent.name}/{root.name}: n={len(ids)} injected={len(bad)} flagged={len(flagged)} "
              f"({len(flagged) / len(ids):.2%}) precision={hits / max(1, len(flagged)):.2f} "
              f"recall={hits / max(1, len(bad)):.2f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
