"""Re-score one benchmark-matrix cell with the service's current scoring code, on the cell's own
DINO checkpoint, under one or more score configurations (JSON, `ScoreConfig` sections).

    python benchmarks/rescore_cell.py CELL_DIR '{}' '{"off_topic": {"property_view": false}}'

CELL_DIR is a cell's `contaminated` folder as `quality_lab.matrix` writes it (`images/`,
`ground_truth.csv`, `ssl_checkpoint.pt`). The matrix deletes `images/` when a full-size cell ends;
copy the folder while the cell runs (or run a quick matrix) to keep it. Vectors and the inspected
manifest are cached in CELL_DIR. Prints AP / AUROC / recall at the number injected per issue type
and kind, as the matrix's metrics compute them (near duplicates and leakage also under the matrix's
second truth, without the source's own duplicates), and the label-error flag's precision and recall, and the rates the two blocking gates read.
Configurations whose label-error pixel classifier has the same settings share its fit (trained once).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from quality_assets.imaging import inspect_image
from quality_assets.scoring import ScoreConfig
from quality_lab.bench.data import BenchData
from quality_lab.bench.methods import (
    MethodResult, colour_grids_for, pixel_image_loader, selfclean_rankings, ssl_model_loader, thumbnails_for,
)
from quality_lab.bench.metrics import evaluate_method
from quality_lab.source_duplicates import source_duplicates

COLUMNS = ("truth", "issue_type", "kind", "AP", "AUROC", "recall@n")


def cell_paths(image_dir: Path) -> np.ndarray:
    """The cell's image paths relative to `image_dir`, in position order: by the files' img_NNNNNN
    numbers (the truth's `index` and `partner_index` are these positions)."""
    paths = np.asarray([str(p.relative_to(image_dir)) for p in image_dir.rglob("*.png")], dtype=object)
    return paths[np.argsort([int(p.rsplit("_", 1)[1][:6]) for p in paths])]


def load_cell(root: Path) -> tuple[BenchData, np.ndarray]:
    """The cell's data (positions follow the files' img_NNNNNN numbers) and its SSL vectors."""
    truth = pd.read_csv(root / "ground_truth.csv", keep_default_na=False)
    image_dir = root / "images"
    paths = cell_paths(image_dir)
    labels = np.asarray([p.split("/")[1] for p in paths])
    splits = np.asarray([p.split("/")[0] for p in paths])
    cache = root / "manifest.pkl"
    if cache.exists():
        manifest = pd.read_pickle(cache)
    else:
        manifest = pd.DataFrame.from_records([inspect_image(image_dir / p) for p in paths])
        for i, (col, values) in enumerate((("sample_id", paths), ("path", paths), ("label", labels), ("split", splits))):
            manifest.insert(i, col, values)
        manifest["phash"] = manifest["phash"].astype(np.int64)
        manifest.to_pickle(cache)
    images = [np.asarray(Image.open(image_dir / p)) for p in paths]
    data = BenchData(root.name, root, image_dir, paths, images, labels, splits, truth, manifest)
    vector_file = root / "vectors.npy"
    if vector_file.exists():
        vectors = np.load(vector_file)
    else:
        from quality_assets.embedders import SSLCheckpointEmbedder

        vectors = SSLCheckpointEmbedder(root / "ssl_checkpoint.pt").embed([str(image_dir / p) for p in paths])
        np.save(vector_file, vectors)
    return data, vectors


class FitsInMemory:
    """The label-error pixel classifier's fit kept between the configurations of one call (the
    service keeps it in its store): configurations that train it under the same settings train it
    once (`ScoringInputs.pixel_classifier_fits`)."""

    def __init__(self):
        self._fits: list = []

    def latest(self, settings: dict):
        return next((fit for fit in reversed(self._fits) if fit.settings == settings), None)

    def keep(self, fit) -> None:
        self._fits.append(fit)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    root, configs = Path(argv[0]), argv[1:] or ["{}"]
    data, vectors = load_cell(root)
    thumbs, grids = thumbnails_for(data), colour_grids_for(data)
    excluded = source_duplicates(data.images, data.splits, data.truth)   # the matrix's second truth
    fits = FitsInMemory()
    for config in configs:
        started = time.perf_counter()
        rankings, extra, _ = selfclean_rankings(vectors, data.manifest, k=16, config=ScoreConfig(json.loads(config)),
                                                thumbnails=thumbs, images=pixel_image_loader(data),
                                                colour_grids=grids, pixel_classifier_fits=fits,
                                                ssl_model=ssl_model_loader(data))
        result = MethodResult("ours", config, rankings, 0.0)
        rows = pd.DataFrame(evaluate_method(result, data) + evaluate_method(result, data, excluded))
        print(f"{root.name} {config} ({time.perf_counter() - started:.1f} s)")
        if len(rows):   # a clean cell has nothing to rank
            print(rows[list(COLUMNS)].to_string(index=False))
        print(label_error_flags(extra["flags"].get("label_error", np.empty(0, np.int64)), data))
        summary = extra["summary"]
        print(f"gates: near-duplicate rate {summary.get('near_duplicate_rate', float('nan')):.2%}, "
              f"leakage rate {summary.get('leakage_rate', float('nan')):.2%}")
    return 0


def label_error_flags(flagged: np.ndarray, data: BenchData) -> str:
    """The label-error flag against the injected flips (LBL, LBLC): how many, how precise, how
    complete, and the share of the other samples it flags (on a clean cell: all of them)."""
    truth = data.truth[data.truth["issue_type"] == "label_error"]["index"].to_numpy(dtype=np.int64)
    flips = np.zeros(data.n, dtype=bool)
    flips[truth] = True
    hit = flips[flagged]
    precision = f"{hit.mean():.3f}" if flagged.size else "-"
    recall = f"{hit.sum() / flips.sum():.3f}" if flips.any() else "-"
    return (f"label_error flags: {flagged.size} ({flagged.size / data.n:.2%}), precision {precision}, recall "
            f"{recall}, other samples flagged {(~hit).sum() / max(1, (~flips).sum()):.2%}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
