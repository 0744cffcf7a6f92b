"""Label-error evidence from a network trained on the pixels, out of fold, against the service's.

The service reads label errors from classifiers fitted on the frozen SSL representation
(`quality_assets.scores.confident_learning`). cleanlab's own recipe fits the model on the data:
K-fold, every sample's probabilities from a network that never saw it. This bench measures, on a
benchmark-matrix cell kept with `--keep-images`, the label-error AP (the matrix's metric) of

- `service`: the service's ranking (its default scoring on the cell's DINO vectors);
- `cnn_scratch`: the service's pixel classifier, a small CNN trained from scratch per fold
  (`scores.pixel_classifier`, the consumer's `consumer_cnn.train_cnn`);
- `cnn_dino`: the cell's DINO backbone with a linear head, fine-tuned per fold;
- `repr`: the service's representation classifiers alone (`out_of_sample_probabilities`);
- fusions: probabilities averaged, then cleanlab's label quality;
- `<arm>_truth`: the same model fitted on the ground-truth labels (the protocol's flips undone), its
  out-of-fold probabilities read against the given labels: how well this model family could rank
  the flips if the other samples' labels were all right, a ceiling for confident learning on it.

    python benchmarks/bench_label_cnn.py CELL_DIR [--arms cnn_scratch cnn_dino] [--epochs 15]
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

from rescore_cell import load_cell  # noqa: E402

from quality_assets.scoring import ScoreConfig  # noqa: E402
from quality_lab.bench.methods import MethodResult, thumbnails_for  # noqa: E402
from quality_lab.bench.metrics import evaluate_method  # noqa: E402


def _softmax_predict(model, x, batch_size: int = 256) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            out.append(torch.softmax(model(x[start:start + batch_size]).float(), 1).numpy())
    return np.concatenate(out)


def _folds(codes: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The service's stratified folds (`confident_learning.deal_folds`), no anchors."""
    from quality_assets.scores.confident_learning import deal_folds

    fold_of, _ = deal_folds(codes, np.zeros(len(codes), dtype=bool), int(codes.max()) + 1, folds=k, seed=seed)
    return fold_of


def cnn_dino_probs(checkpoint: Path, image_paths: list[str], codes: np.ndarray, n_classes: int, *, k: int,
                   epochs: int, seed: int, lr: float = 1e-3) -> np.ndarray:
    """The DINO backbone and a linear head fine-tuned per fold (AdamW, one-cycle, shift augmentation)."""
    import copy
    import math

    import torch
    import torch.nn as nn

    from quality_assets.consumer_cnn import _shift
    from quality_assets.ssl.augment import normalize
    from quality_assets.ssl.checkpoints import load_checkpoint
    from quality_assets.ssl.data import load_image_tensor

    backbone, meta = load_checkpoint(checkpoint)
    pre = meta["preprocessing"]
    x = load_image_tensor(image_paths, pre["image_size"], channels=3).float().div_(255.0)
    x = normalize(x, tuple(pre["mean"]), tuple(pre["std"]))
    fold_of = _folds(codes, k, seed)
    probs = np.zeros((len(codes), n_classes))
    y = torch.from_numpy(codes.astype(np.int64))
    torch.set_num_threads(2)
    for fold in range(k):
        torch.manual_seed(seed + fold)
        gen = torch.Generator().manual_seed(seed + fold)
        model = nn.Sequential(copy.deepcopy(backbone), nn.Linear(int(meta["embedding_dim"]), n_classes))
        model = model.to(memory_format=torch.channels_last)
        train = np.flatnonzero(fold_of != fold)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        steps = max(1, math.ceil(len(train) / 64))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps * epochs)
        model.train()
        pad = max(1, x.shape[-1] // 8)
        for _ in range(epochs):
            order = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                if batch.numel() < 2:
                    continue
                loss = nn.functional.cross_entropy(model(_shift(x[batch], gen, pad)), y[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        held = np.flatnonzero(fold_of == fold)
        probs[held] = _softmax_predict(model, x[held])
    return probs


def service_label_scores(vectors: np.ndarray, data, config: ScoreConfig) -> np.ndarray:
    """The service's label-error score per position (lower = likelier an error); NaN where it
    scores nothing (off-topic samples, unlabelled ones)."""
    from quality_assets.knn import build_knn_graph
    from quality_assets.scoring import compute_scores

    ids = data.manifest["sample_id"].to_numpy(dtype=object)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    out = compute_scores(list(ids), build_knn_graph(vectors, k=16), data.manifest, config, vectors=vectors,
                         thumbnails=thumbnails_for(data))
    rows = out.issue_rows[out.issue_rows["issue_type"] == "label_error"]
    score = np.full(len(ids), np.nan)
    pos = pd.Series(np.arange(len(ids)), index=ids)
    score[pos.loc[rows["sample_id"].to_numpy()].to_numpy()] = rows["score"].to_numpy(dtype=float)
    return score


def _order(score: np.ndarray) -> np.ndarray:
    """Positions by score, lowest first; NaN scores are left off the ranking."""
    finite = np.flatnonzero(np.isfinite(score))
    return finite[np.argsort(score[finite], kind="stable")].astype(np.int64)


def ranking_from_probs(codes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(codes, probs)
    return np.argsort(quality, kind="stable").astype(np.int64)


def label_error_table(rankings: dict[str, np.ndarray], data) -> pd.DataFrame:
    """The matrix's label-error metrics (AP, AUROC, recall at the number injected; all flips and per
    kind) of each ranking (positions, likeliest error first)."""
    rows = []
    for name, order in rankings.items():
        for row in evaluate_method(MethodResult(name, "-", {"label_error": order}, 0.0), data):
            rows.append({"method": name, "kind": row["kind"], "AP": row["AP"], "AUROC": row["AUROC"],
                         "recall@n": row["recall@n"]})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path)
    parser.add_argument("--arms", nargs="+", default=["cnn_scratch", "cnn_dino"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-service", action="store_true",
                        help="leave out the service's own ranking (a full scoring run) and its fusions")
    args = parser.parse_args(argv)

    data, vectors = load_cell(args.cell)
    classes, codes = np.unique(data.labels, return_inverse=True)
    n_classes = len(classes)
    rankings: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    service_score = None
    if not args.skip_service:
        started = time.perf_counter()
        service_score = service_label_scores(vectors, data, ScoreConfig({}))
        rankings["service"] = _order(service_score)
        seconds["service"] = time.perf_counter() - started

    from quality_assets.scores.confident_learning import out_of_sample_probabilities

    started = time.perf_counter()
    probs["repr"] = out_of_sample_probabilities(vectors, codes, n_classes, seed=args.seed)
    seconds["repr"] = time.perf_counter() - started

    truth = data.truth[data.truth["issue_type"] == "label_error"]
    true_labels = data.labels.copy()
    true_labels[truth["index"].to_numpy()] = truth["true_label"].to_numpy()
    true_codes = np.searchsorted(classes, true_labels)
    assert (classes[true_codes] == true_labels).all()

    paths = [str(data.image_dir / p) for p in data.paths]
    for arm in args.arms:
        fit_codes = true_codes if arm.endswith("_truth") else codes
        model = arm.removesuffix("_truth")
        started = time.perf_counter()
        cache = args.cell / f"probs_{arm}_e{args.epochs}_s{args.seed}.npy"
        if cache.exists():
            probs[arm] = np.load(cache)
        elif model == "repr":
            probs[arm] = out_of_sample_probabilities(vectors, fit_codes, n_classes, seed=args.seed)
        elif model == "cnn_scratch":
            from quality_assets.consumer_cnn import load_images

            from quality_assets.consumer_cnn import CnnConfig
            from quality_assets.scores.pixel_classifier import out_of_fold_pixel_probabilities

            # The service's pixel classifier itself, at this bench's folds and epochs.
            probs[arm] = out_of_fold_pixel_probabilities(load_images(paths), fit_codes, n_classes, folds=args.folds,
                                                         seed=args.seed, config=CnnConfig(epochs=args.epochs))
        elif model == "cnn_dino":
            probs[arm] = cnn_dino_probs(args.cell / "ssl_checkpoint.pt", paths, fit_codes, n_classes, k=args.folds,
                                        epochs=args.epochs, seed=args.seed)
        else:
            raise SystemExit(f"unknown arm {arm}")
        np.save(cache, probs[arm])
        seconds[arm] = time.perf_counter() - started
    for arm, p in probs.items():
        print(f"{arm}: {seconds[arm]:.0f} s, out-of-fold accuracy on the given labels "
              f"{(p.argmax(1) == codes).mean():.3f}, on the true labels {(p.argmax(1) == true_codes).mean():.3f}")

    for name, p in list(probs.items()):
        rankings[name] = ranking_from_probs(codes, p)
    for arm in [a for a in args.arms if not a.endswith("_truth") and a != "repr"]:
        rankings[f"repr+{arm}"] = ranking_from_probs(codes, (probs["repr"] + probs[arm]) / 2)

    from cleanlab.rank import get_label_quality_scores

    for arm in [a for a in args.arms if service_score is not None and not a.endswith("_truth") and a != "repr"]:
        quality = get_label_quality_scores(codes, probs[arm])
        for w in (0.5, 0.33):
            rankings[f"service*{arm}^{w}"] = _order(service_score ** (1 - w) * quality ** w)

    table = label_error_table(rankings, data)
    print(args.cell, json.dumps({k: round(v, 1) for k, v in seconds.items()}))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.assign(cell=str(args.cell)).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
