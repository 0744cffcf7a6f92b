"""Does DINO trained past its stability stop give better label-error evidence? (#13: "an SSL model
trained until it is good".)

    python benchmarks/bench_ssl_epochs.py CELL_DIR [--epochs 20 40 60] [--seed 0]

CELL_DIR is a benchmark-matrix cell kept with `--keep-images`. DINO trains on the cell's images
with the service's CPU default (`ssl.dino.default_config`: its 60-epoch schedule) but without the
stability stop, and the teacher is kept at each of `--epochs` (the run the stability stop ends at
epoch E is this run's snapshot at E: same schedule, same seed). Each snapshot embeds the cell the
way the service does (`SSLCheckpointEmbedder`, its vectors saved as `vectors_eE.npy` in the cell
for `rescore_cell.py`), then:

- out-of-sample accuracy of the representation's classifier (`out_of_sample_probabilities`) and
  leave-one-out kNN accuracy (k = 10) against the given labels;
- label-error AP of the representation's evidence alone (cleanlab self-confidence), and fused with
  the cell's cached pixel-classifier evidence where `bench_label_dynamics.py` left one
  (`sqrt(q_repr x sqrt(q_pixel x sigmoid(margin)))`, the service's weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_label_cnn import label_error_table  # noqa: E402
from bench_ssl import knn_accuracy  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def train_snapshots(data, epochs: list[int], seed: int) -> tuple[dict[int, object], object]:
    """The teacher backbone at each of `epochs` of one default-config run without the stability stop."""
    import copy

    from quality_assets.ssl.data import load_image_tensor
    from quality_assets.ssl.dino import default_config, train_dino

    cfg = default_config(int(max(data.images[0].shape[:2])), data.n, "cpu")
    cfg.seed = seed
    cfg.time_budget_s = None
    cfg.epochs = float(max(cfg.epochs, max(epochs)))
    # The monitor still runs at every epoch (its agreement is `result.stability`), but never stops.
    cfg.stability_threshold = 2.0
    cfg.stability_every = 1
    cfg.min_epochs = 1.0
    snapshots: dict[int, object] = {}

    def keep(epoch: int, backbone) -> None:
        if epoch in epochs and epoch < max(epochs):
            snapshots[epoch] = copy.deepcopy(backbone).cpu().eval()
            print(f"  snapshot at epoch {epoch}", flush=True)

    tensor = load_image_tensor([str(data.image_dir / p) for p in data.paths], cfg.image_size)
    result = train_dino(tensor, dataclasses.replace(cfg, epochs=float(max(epochs))), on_epoch_end=keep)
    snapshots[max(epochs)] = result.backbone   # the last one as the service keeps it (BatchNorm recalibrated)
    return snapshots, result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[20, 40, 60])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from cleanlab.rank import get_label_quality_scores

    from quality_assets.embedders import SSLCheckpointEmbedder
    from quality_assets.scores.confident_learning import out_of_sample_probabilities
    from quality_assets.ssl.dino import save_checkpoint

    data, stored = load_cell(args.cell)
    classes, codes = np.unique(data.labels, return_inverse=True)
    paths = [str(data.image_dir / p) for p in data.paths]
    vectors = {"stored": stored}
    missing = [e for e in args.epochs if not (args.cell / f"vectors_e{e}.npy").exists()]
    if missing:
        started = time.perf_counter()
        snapshots, result = train_snapshots(data, sorted(args.epochs), args.seed)
        print(f"DINO {max(args.epochs)} epochs in {time.perf_counter() - started:.0f} s, stability {result.stability}")
        for epoch, backbone in snapshots.items():
            checkpoint = args.cell / f"ssl_checkpoint_e{epoch}.pt"
            save_checkpoint(dataclasses.replace(result, backbone=backbone), checkpoint)
            np.save(args.cell / f"vectors_e{epoch}.npy", SSLCheckpointEmbedder(checkpoint).embed(paths))
    for epoch in args.epochs:
        vectors[f"e{epoch}"] = np.load(args.cell / f"vectors_e{epoch}.npy")

    dynamics = args.cell / "dynamics_e15_s0.npz"
    pixel = None
    if dynamics.exists():
        kept = np.load(dynamics)
        pixel = np.sqrt(get_label_quality_scores(codes, kept["probs"]) * expit(kept["aum"]))
    rankings, accuracy = {}, []
    for name, x in vectors.items():
        probs = out_of_sample_probabilities(x, codes, len(classes), seed=args.seed)
        quality = get_label_quality_scores(codes, probs)
        accuracy.append(f"{name}: classifier {(probs.argmax(1) == codes).mean():.3f}, "
                        f"kNN {knn_accuracy(x, codes):.3f}")
        rankings[f"{name} repr"] = np.argsort(quality, kind="stable")
        if pixel is not None:
            rankings[f"{name} repr+pixel"] = np.argsort(np.sqrt(quality * pixel), kind="stable")
    print("\n".join(accuracy))
    table = label_error_table(rankings, data)
    print(table[table.kind == "all"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
