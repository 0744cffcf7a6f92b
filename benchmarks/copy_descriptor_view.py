"""Does the learned copy descriptor (`quality_assets.copy_detection`, not in the service's default)
add to the service's near-duplicate ranking once it is trained long enough? (#12)

    python benchmarks/copy_descriptor_view.py CELL_DIR [--steps 2000] [--weights 0.1 0.2 0.35]
    python benchmarks/copy_descriptor_view.py CELL_DIR --warm [--steps N]

CELL_DIR is a benchmark-matrix cell's `contaminated` folder (`quality_lab.matrix --keep-images`). The
descriptor trains on the cell's images with `copy_detection.default_config` and `--steps` optimiser
steps (the default rule gives about 20 epochs: ~230 steps at 3,000 images), or is read from
`CELL_DIR/copydesc_STEPS.npy`, which the first run writes (8 dihedral descriptors per image).
`--warm` starts it from the cell's DINO backbone (`CELL_DIR/ssl_checkpoint.pt`) with
`copy_detection.warm_start_config` (its step rule unless `--steps` is given; cached as
`copydesc_warmSTEPS.npy`). Then:

1. the descriptor alone: `copy_pairs` (each image's 10 nearest, scored against its background)
   ranked and scored with the matrix's metrics (pair AP per kind, both truths);
2. candidate recall: how many AUG / ARTE copy pairs are among the service's candidate pairs (the
   pair table `pair_fusion.py` captures) and among the descriptor's 10 nearest of either end;
3. the descriptor as one more view of the service's captured pair table: its dihedral
   dissimilarity over the next best at the end where the pair stands out more
   (`pair_evidence.descriptor_ratio`, the service's `copy_descriptor` view), fused at each of
   `--weights` by `pair_fusion.fused_order` (the service's views keep their ratios within 1 - w).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def trained_descriptors(root: Path, images: list[np.ndarray], steps: int | None, warm: bool = False) -> np.ndarray:
    """The cell's dihedral descriptors [N, 8, d] after `steps` steps (trained once, then read), from
    scratch or (`warm`) from the cell's DINO backbone."""
    from quality_assets.copy_detection import default_config, embed_copies, train_copy_descriptor, warm_start_config
    from quality_assets.ssl.checkpoints import load_checkpoint

    side, n = int(np.asarray(images[0]).shape[1]), len(images)
    backbone = None
    if warm:
        backbone, meta = load_checkpoint(root / "ssl_checkpoint.pt")
        cfg = warm_start_config(meta, side, n)
    else:
        cfg = default_config(side, n)
    cfg.steps = int(steps) if steps is not None else cfg.steps if warm else 2000
    cached = root / f"copydesc_{'warm' if warm else ''}{cfg.steps}.npy"
    if cached.exists():
        return np.load(cached)
    started = time.perf_counter()
    model = train_copy_descriptor(images, cfg, init_backbone=backbone)
    print(f"trained {cfg.steps} steps{' from the DINO backbone' if warm else ''} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    desc = embed_copies(model, images)
    np.save(cached, desc)
    return desc


def pair_keys(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    return np.minimum(i, j) * n + np.maximum(i, j)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: 2000, or the warm rule)")
    parser.add_argument("--warm", action="store_true", help="start from the cell's DINO backbone")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 0.2, 0.35])
    args = parser.parse_args(argv)
    if not all(0.0 < w < 1.0 for w in args.weights):
        parser.error(f"--weights must lie strictly between 0 and 1, got {args.weights}")

    from quality_assets.copy_detection import copy_candidates, copy_pairs
    from quality_assets.scores.pair_evidence import descriptor_ratio
    from quality_lab.bench.methods import MethodResult
    from quality_lab.bench.metrics import evaluate_method
    from quality_lab.source_duplicates import source_duplicates

    data, _ = load_cell(args.cell)
    n = len(data.images)
    desc = trained_descriptors(args.cell, data.images, args.steps, args.warm)
    excluded = source_duplicates(data.images, data.splits, data.truth)

    alone = copy_pairs(desc)   # most likely copy first
    ranking = (alone["i"].to_numpy(), alone["j"].to_numpy())
    what = f"{'warm, ' if args.warm else ''}{args.steps or 'default'} steps"
    result = MethodResult("descriptor", what, {"near_duplicate": ranking}, 0.0)
    rows = evaluate_method(result, data) + evaluate_method(result, data, excluded)
    ap = {(r["truth"], r["kind"]): r["AP"] for r in rows if r["issue_type"] == "near_duplicate"}
    print(f"descriptor alone ({what}): {ap_summary(ap)}")

    pairs = capture_pairs(args.cell)
    service_keys = set(pair_keys(pairs["i"], pairs["j"], n).tolist())
    neighbours, _ = copy_candidates(desc)
    rows_i = np.repeat(np.arange(n), neighbours.shape[1])
    listed = neighbours.ravel() >= 0
    descriptor_keys = set(pair_keys(rows_i[listed], neighbours.ravel()[listed], n).tolist())
    for kind in ("AUG", "ARTE"):
        truth = data.truth[data.truth["kind"] == kind]
        keys = pair_keys(truth["index"].to_numpy(), truth["partner_index"].to_numpy(), n).tolist()
        in_service = sum(k in service_keys for k in keys)
        in_descriptor = sum(k in descriptor_keys for k in keys)
        only = sum(k in descriptor_keys and k not in service_keys for k in keys)
        print(f"{kind}: {len(keys)} copy pairs, {in_service} among the service's candidates, {in_descriptor} among "
              f"the descriptor's 10 nearest, {only} only there")

    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    view = descriptor_ratio(desc, i, j, n)
    print(f"service: {ap_summary(pair_ap(pairs, data, excluded))}")
    for w in args.weights:
        print(f"+ descriptor view at weight {w}: {ap_summary(pair_ap(pairs, data, excluded, extra_view=(view, w)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
