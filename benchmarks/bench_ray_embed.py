"""Embedding throughput: the Ray engine at 1 and 2 worker nodes against the in-process engine with
as many torch threads (the same number of cores busy).

Both engines do the embedding stage's work per image: read the file through its recorded hash,
decode, run the model. Ray runs `distributed.embedding.embed_on_ray` (what `embed_missing` runs when
QUALITY_RAY_ADDRESS is set); in-process runs the same embedder batch by batch. Each case runs a warm-up
batch, then twice, on a quarter of the images and on all of them; reported: the full run's total time (model loading,
Ray actor start included) and the steady rate, the slope between the two runs (start-up costs
cancel); the ratios compare steady rates. DuckDB writes are left out (the same in both engines).

The model is a timm resnet18 with random weights from a local file (`timm_checkpoint` embedder) at
`--image-size` px; speed does not depend on what the weights learned. Every Ray worker node is a real
`ray start` process on 127.0.0.1 with one CPU (one model actor, one torch thread), beside a head node
with none; the cluster's start is not timed.

Usage:
    .venv/bin/python benchmarks/bench_ray_embed.py                     # 1,200 images, 64 px
    .venv/bin/python benchmarks/bench_ray_embed.py --images 4000 --image-size 96 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from quality_assets.distributed.local_cluster import local_ray_cluster  # noqa: E402
from quality_assets.ingest import ingest_drop  # noqa: E402
from quality_assets.representation import ModelOptions, ensure_model  # noqa: E402
from quality_assets.store import Store  # noqa: E402


def _write_digits(data: Path, n_images: int) -> None:
    """`data/train/<digit>/<i>.png`: MNIST digits (shipped in a package, see quality_lab.demo_data)
    as 28 px RGB PNGs, repeated with a random tint when more are asked for than it holds."""
    import numpy as np
    from PIL import Image

    from quality_lab.demo_data import load_mnist_5k

    images, labels = load_mnist_5k()
    rng = np.random.default_rng(0)
    for i in range(n_images):
        j = i % len(images)
        rgb = np.clip(images[j][..., None] * rng.uniform(0.5, 1.0, 3), 0, 255).astype(np.uint8)
        folder = data / "train" / str(labels[j])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(folder / f"{i:06d}.png")


def _prepared_home(work: Path, n_images: int, image_size: int) -> tuple[Store, object]:
    import quality_assets.ssl  # noqa: F401  (the torchvision compat shim before timm loads)
    import timm
    import torch

    data = work / "data"
    _write_digits(data, n_images)
    torch.manual_seed(0)
    weights = work / "resnet18_random.pth"
    torch.save(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(), weights)
    store = Store(work / "base")
    with store.connect() as conn:
        ingest_drop(conn, data, data)
        model = ensure_model(conn, store, ModelOptions(embedder="timm_checkpoint", arch="resnet18",
                                                       image_size=image_size, checkpoint_file=str(weights)))
    return store, model


def _missing(store: Store, model):
    from quality_assets.store import run_query

    with store.connect(read_only=True) as conn:
        return run_query(conn, "samples_missing_embeddings", model_version=model.model_version)


def _row(engine: str, cores: int, small: tuple[int, float], full: tuple[int, float]) -> dict:
    """The rate is the slope between a small and the full run on the same engine: model loading and
    actor start cost both runs the same and cancel, and nothing depends on when results reach the
    driver (Ray Data buffers finished batches)."""
    (n_small, t_small), (n_full, t_full) = small, full
    return {"engine": engine, "cores": cores, "images": n_full, "total_s": round(t_full, 2),
            "small_images": n_small, "small_total_s": round(t_small, 2),
            "images_per_s_total": round(n_full / t_full, 1),
            # A load spike on a shared machine can make the small run the slower one: no slope then.
            "images_per_s_steady": round((n_full - n_small) / (t_full - t_small), 1) if t_full > t_small
            else float("nan")}


def _in_process(store: Store, model, threads: int, batch_size: int, n_small: int) -> dict:
    """The in-process engine's work for `embed_missing`, batch by batch, with `threads` torch threads."""
    import torch

    from quality_assets.imaging import VerifiedFiles
    from quality_assets.representation import make_embedder_for

    missing = _missing(store, model)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)

    def timed(n: int) -> tuple[int, float]:
        started = time.perf_counter()
        embedder = make_embedder_for(model.row, store)
        files = VerifiedFiles.from_frame(missing.iloc[:n])
        for start in range(0, len(files), batch_size):
            embedder.embed(files[start:start + batch_size], batch_size=batch_size)
        return n, time.perf_counter() - started

    try:
        timed(batch_size)  # warm-up: imports and file caches are then the same for both runs
        return _row("in-process", threads, timed(n_small), timed(len(missing)))
    finally:
        torch.set_num_threads(previous)


def _on_ray(store: Store, model, workers: int, batch_size: int, n_small: int, shards: bool = False) -> dict:
    """The Ray engine's `embed_on_ray` (what `embed_missing` runs with QUALITY_RAY_ADDRESS set) on a
    head plus `workers` one-CPU worker nodes; with `shards`, as in a home with Parquet row storage:
    the actors write the vectors as shard files and only their names come back."""
    import ray

    from quality_assets.distributed.embedding import embed_on_ray
    from quality_assets.row_shards import shard_folder

    missing = _missing(store, model)
    shards_to = shard_folder("embeddings", f"bench-{workers}") if shards else None

    def timed(address: str, n: int) -> tuple[int, float]:
        started = time.perf_counter()
        done = sum(len(chunk) for _, chunk, *_ in embed_on_ray(
            address, missing.iloc[:n], model.row, store.home, chunk_rows=4096, batch_size=batch_size,
            shards_to=shards_to))
        return done, time.perf_counter() - started

    with local_ray_cluster(n_workers=workers, cpus_per_worker=1) as cluster:
        try:
            timed(cluster.address, batch_size * workers)  # warm-up: the first actors start colder
            return _row("ray", workers, timed(cluster.address, n_small), timed(cluster.address, len(missing)))
        finally:
            ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch, both engines")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--shards", action="store_true",
                        help="Ray actors write Parquet shard files (Parquet row storage) instead of returning vectors")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_ray_embed_"))
    try:
        base, model = _prepared_home(work, args.images, args.image_size)
        rows = []
        for cores in (1, 2):
            rows.append(_in_process(base, model, cores, args.batch_size, args.images // 4))
            print(json.dumps(rows[-1]), flush=True)
            rows.append(_on_ray(base, model, cores, args.batch_size, args.images // 4, args.shards))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = {(r["engine"], r["cores"]): r["images_per_s_steady"] for r in rows}
    ratios = {
        "ray_2_workers_over_1": rate[("ray", 2)] / rate[("ray", 1)],
        "in_process_2_threads_over_1": rate[("in-process", 2)] / rate[("in-process", 1)],
        "ray_over_in_process_1_core": rate[("ray", 1)] / rate[("in-process", 1)],
        "ray_over_in_process_2_cores": rate[("ray", 2)] / rate[("in-process", 2)],
    }
    print("ratios of the steady rates (images/s between the small and the full run):")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
