"""DINO training throughput on Ray Train (`distributed.ssl_train`) against the run's own process.

    python benchmarks/bench_ray_train.py [--n 4096] [--epochs 2] [--json OUT]

The service's CPU default config for MNIST digits (28 px, `default_config`), a fixed number of epochs
(no stability stop, so every case trains the same number of images), on the same images:
- in process, 1 and 2 torch threads;
- Ray Train on a real local cluster (`local_ray_cluster`: a head with no CPUs and one worker node of
  2 CPUs), 1 worker of 1 CPU, then 2 workers of 1 CPU each (data-parallel, gloo all-reduce).
Throughput is the training loop's images per second as `DinoResult` reports it (all workers
together); wall time includes Ray Train's start-up (worker processes, the process group, the
result's transfer). On a GPU cluster the same code trains one worker per GPU (NCCL).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_assets.ssl.data import array_to_tensor  # noqa: E402
from quality_assets.ssl.dino import default_config, train_dino  # noqa: E402
from quality_lab.datasets import load_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    images, _ = load_dataset("mnist")
    tensor = array_to_tensor(np.stack(images[: args.n]))
    config = default_config(int(tensor.shape[-1]), len(tensor), "cpu")
    config.epochs, config.stop_when_stable, config.time_budget_s = args.epochs, False, None
    rows = []

    def record(case: str, workers: int, run) -> None:
        started = time.perf_counter()
        result = run()
        rows.append({"case": case, "workers": workers, "wall_s": round(time.perf_counter() - started, 1),
                     "loop_images_per_s": round(result.images_per_s, 1), "steps": result.steps,
                     "final_loss": round(result.final_loss, 4)})
        print(json.dumps(rows[-1]), flush=True)

    for threads in (1, 2):
        config.threads = threads
        record(f"in-process, {threads} torch thread(s)", 1, lambda: train_dino(tensor, config))
    import ray

    from quality_assets.distributed.local_cluster import local_ray_cluster
    from quality_assets.distributed.ssl_train import train_dino_on_ray

    config.threads = 0
    with local_ray_cluster(n_workers=1, cpus_per_worker=2) as cluster, tempfile.TemporaryDirectory() as storage:
        try:
            for workers in (1, 2):
                record(f"Ray Train, {workers} worker(s) of 1 CPU", workers,
                       lambda: train_dino_on_ray(cluster.address, tensor, config, workers=workers, use_gpu=False,
                                                 storage=storage))
        finally:
            ray.shutdown()
    out = {"n_images": len(tensor), "image_size": int(tensor.shape[-1]), "arch": config.arch,
           "batch_size_per_worker": config.batch_size, "epochs": args.epochs, "rows": rows}
    ray_rates = {r["workers"]: r["loop_images_per_s"] for r in rows if r["case"].startswith("Ray")}
    out["ray_2_over_1"] = round(ray_rates[2] / ray_rates[1], 3)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
