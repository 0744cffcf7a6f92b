"""What the CPU default DINO costs when it trains to its stability stop, on a lab dataset.

    python benchmarks/bench_ssl_stop.py --dataset animal_mnist [--n 10000] [--size 64]

The service's `default_config` for the images' size and number (CPU: at least 10, at most 60 epochs,
stopped when the teacher's neighbour lists are stable; no time budget), trained on the dataset's
images (pixel-identical repeats dropped), then the epochs reached, wall time, throughput and the
leave-one-out kNN accuracy (k = 10) of the embedding against the dataset's labels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ssl import knn_accuracy  # noqa: E402

from quality_assets.ssl.data import array_to_tensor  # noqa: E402
from quality_assets.ssl.dino import default_config, embed_images, train_dino  # noqa: E402
from quality_lab.datasets import load_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="animal_mnist")
    ap.add_argument("--n", type=int, default=10_000, help="at most this many images (seeded draw)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=None,
                    help="resize the images to this side first (the cost at another size; the content stays)")
    args = ap.parse_args(argv)
    images, labels = load_dataset(args.dataset)
    digests = [hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest() for im in images]
    _, first = np.unique(np.asarray(digests, dtype=object).astype("S32"), return_index=True)
    keep = np.sort(first)
    rng = np.random.default_rng(args.seed)
    keep = np.sort(rng.choice(keep, size=min(args.n, keep.size), replace=False))
    images = np.stack([images[i] for i in keep])
    if args.size:
        from PIL import Image

        images = np.stack([np.asarray(Image.fromarray(im).resize((args.size, args.size), Image.Resampling.BILINEAR))
                           for im in images])
    codes = np.unique(np.asarray(labels)[keep], return_inverse=True)[1]
    tensor = array_to_tensor(images)
    size = int(max(images.shape[1:3]))
    cfg = default_config(size, len(images), "cpu")
    cfg.seed = args.seed
    started = time.perf_counter()
    result = train_dino(tensor, cfg)
    train_s = time.perf_counter() - started
    emb = embed_images(result.backbone, tensor, batch_size=512, device="cpu")
    print(json.dumps({
        "dataset": args.dataset, "n_images": len(images), "image_size": size, "arch": cfg.arch,
        "max_epochs": cfg.epochs, "epochs_completed": round(result.epochs_completed, 2),
        "stopped_by_budget": result.stopped_by_budget, "train_wall_s": round(train_s, 1),
        "train_images_per_s": round(result.images_per_s, 1), "knn_ssl": round(knn_accuracy(emb, codes), 4),
        "final_loss": round(result.final_loss, 4),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
