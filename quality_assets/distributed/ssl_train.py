"""DINO training on a Ray cluster with Ray Train: data-parallel across workers (GPUs when present).

`TorchTrainer` starts W workers and a `torch.distributed` process group among them (gloo on CPU,
NCCL on GPUs); each runs the same `ssl.train.train_dino`, which reads the group and trains its slice
of every step (see that module). The images reach the workers as the decode cache's memory-mapped
file on the shared filesystem (`<home>/artifacts/decode_cache/`, opened by path), or, when they were
decoded into RAM, once through Ray's object store. Worker 0 reports the trained teacher backbone as a
Ray Train checkpoint; the caller saves and registers it exactly as after in-process training.

When: `QUALITY_RAY_ADDRESS` is set and the cluster has GPUs (one worker each), or
`QUALITY_RAY_TRAIN_WORKERS` asks for a number of workers (CPU workers get
`QUALITY_RAY_TRAIN_CPUS_PER_WORKER` CPUs, default 1, and as many torch threads). Otherwise DINO
trains in the run's process, as by default.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from quality_assets.distributed.engine import connect
from quality_assets.ssl.config import DinoConfig
from quality_assets.ssl.data import ImageSource, MemmapImages, TensorImages, as_source

RESULT_FILE = "dino_result.pkl"


def _images_for_workers(ray, images: ImageSource) -> dict[str, Any]:
    """How the workers get the images: the memory-mapped file by path, else the array by reference."""
    if isinstance(images, MemmapImages) and images.path is not None and Path(images.path).is_file():
        return {"memmap": str(images.path), "rows": None if images.rows is None else images.rows.tolist()}
    array = images.tensor.numpy() if isinstance(images, TensorImages) else images.take(slice(None)).numpy()
    return {"array": ray.put(np.ascontiguousarray(array))}


def _worker_images(spec: dict[str, Any]) -> ImageSource:
    import ray
    import torch

    if "memmap" in spec:
        source = MemmapImages.open(spec["memmap"])
        return source if spec["rows"] is None else source.select(np.asarray(spec["rows"], dtype=np.int64))
    return TensorImages(torch.from_numpy(np.array(ray.get(spec["array"]))))


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: train its share; worker 0 reports the result as the checkpoint."""
    import ray.train
    import torch

    from quality_assets.ssl.train import train_dino

    context = ray.train.get_context()
    config = DinoConfig.from_dict(loop_config["config"])
    if loop_config["threads"]:
        torch.set_num_threads(loop_config["threads"])
    result = train_dino(_worker_images(loop_config["images"]), config)
    metrics = {"workers": context.get_world_size(), "steps": result.steps, "final_loss": result.final_loss,
               "teachers_identical": _teachers_identical(result.backbone)}
    if context.get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        with open(Path(folder) / RESULT_FILE, "wb") as f:
            pickle.dump(result, f)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _teachers_identical(backbone) -> bool:
    """Whether every worker ended with the same teacher weights (data parallelism kept them in step)."""
    import torch
    import torch.distributed as dist

    checksum = torch.stack([p.detach().double().sum() for p in backbone.parameters()]).sum().reshape(1)
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return True
    high, low = checksum.clone(), checksum.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return bool(high.item() == low.item())


def train_dino_on_ray(address: str, images, config: DinoConfig, *, workers: int, use_gpu: bool,
                      cpus_per_worker: float = 1.0, storage: str | Path,
                      say: Callable[[str], None] = lambda _: None):
    """Train DINO on `workers` Ray Train workers on `images` (a uint8 tensor or an `ImageSource`);
    returns worker 0's `DinoResult` (the teachers of all workers are checked to be the same model)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    ray = connect(address)
    images = as_source(images)
    if workers < 1:
        raise ValueError(f"Ray Train needs at least one worker, got {workers}")
    run_name = f"dino-{uuid.uuid4().hex[:12]}"
    device_config = config.to_dict()
    device_config["device"] = "cuda" if use_gpu else "cpu"
    say(f"training DINO on Ray Train: {workers} worker(s), {'a GPU' if use_gpu else f'{cpus_per_worker:g} CPU(s)'} each")
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"config": device_config, "images": _images_for_workers(ray, images),
                           "threads": 0 if use_gpu else max(1, int(cpus_per_worker))},
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu,
            resources_per_worker=None if use_gpu else {"CPU": cpus_per_worker}),
        run_config=ray.train.RunConfig(storage_path=str(storage), name=run_name),
    )
    try:
        result = _fitted_result(trainer)
        # The workers ran the config with its device resolved; the model is the caller's config's
        # (its hash keys the retrain policy), trained on `result.device`.
        result.config = config
        return result
    finally:
        # The result lives on in the caller's checkpoint file; Ray Train's copy would pile up per retrain.
        shutil.rmtree(Path(storage) / run_name, ignore_errors=True)


def _fitted_result(trainer):
    outcome = trainer.fit()
    if outcome.error is not None:
        raise RuntimeError(f"DINO training on Ray failed: {outcome.error}") from outcome.error
    if outcome.checkpoint is None:
        raise RuntimeError("DINO training on Ray reported no checkpoint from worker 0")
    if not outcome.metrics.get("teachers_identical", False):
        raise RuntimeError(f"DINO training on Ray: the workers' teachers differ ({outcome.metrics})")
    with outcome.checkpoint.as_directory() as folder:
        with open(Path(folder) / RESULT_FILE, "rb") as f:
            result = pickle.load(f)  # noqa: S301 - written by this run's own worker 0, just now
    return result
