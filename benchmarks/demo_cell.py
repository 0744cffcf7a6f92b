"""Lay out a finished `qaudit demo` home as a benchmark-matrix cell folder, so that the cell tools
(`rescore_cell.py`, `pair_fusion.py`, `exact_pixel_tier.py`) measure the demo as they measure the
matrix.

    python benchmarks/demo_cell.py HOME OUT

Writes OUT/contaminated/ with `images` (a link to HOME/demo/data: the same split/label/img_N.png
tree the matrix writes), `ssl_checkpoint.pt` (the home's DINO checkpoint) and `ground_truth.csv`
(the demo's truth with the matrix's `index` / `partner_index` / `detail` columns: positions in
the order of the files' numbers, as `rescore_cell.load_cell` reads them). The home keeps every
artifact; nothing in it changes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import cell_paths  # noqa: E402


def demo_cell(home: Path, out: Path) -> Path:
    data = home / "demo" / "data"
    truth_file = home / "demo" / "ground_truth.csv"
    checkpoints = sorted((home / "artifacts" / "ssl").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not data.is_dir() or not truth_file.is_file() or not checkpoints:
        raise SystemExit(f"{home} is not a finished demo home (demo/data, demo/ground_truth.csv, artifacts/ssl/*.pt)")
    cell = out / "contaminated"
    cell.mkdir(parents=True, exist_ok=True)
    images = cell / "images"
    if not images.exists():
        images.symlink_to(data.resolve(), target_is_directory=True)
    shutil.copyfile(checkpoints[-1], cell / "ssl_checkpoint.pt")
    position = {p: k for k, p in enumerate(cell_paths(data))}   # the positions `load_cell` gives
    truth = pd.read_csv(truth_file, keep_default_na=False)
    truth["index"] = [position[p] for p in truth["path"]]
    truth["partner_index"] = [position[p] if p else -1 for p in truth["partner_path"]]
    truth["detail"] = truth["kind"]
    truth.to_csv(cell / "ground_truth.csv", index=False)
    return cell


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    print(demo_cell(Path(argv[0]), Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
