"""Which engine runs the heavy stages, and the connection to a Ray cluster."""

from __future__ import annotations

import os

RAY_ADDRESS_ENV = "QUALITY_RAY_ADDRESS"
RAY_BATCH_SIZE_ENV = "QUALITY_RAY_BATCH_SIZE"
DEFAULT_BATCH_SIZE = 256
# Rows of the kNN graph each Ray task searches (`distributed.knn`); unset: from the cluster's CPUs.
RAY_KNN_SHARD_ROWS_ENV = "QUALITY_RAY_KNN_SHARD_ROWS"


# DINO on Ray Train (`distributed.ssl_train`): workers, and CPUs per CPU worker. Unset: one worker
# per GPU when the cluster has GPUs, else training stays in the run's process.
RAY_TRAIN_WORKERS_ENV = "QUALITY_RAY_TRAIN_WORKERS"
RAY_TRAIN_CPUS_ENV = "QUALITY_RAY_TRAIN_CPUS_PER_WORKER"


def ray_address() -> str | None:
    """The Ray cluster to run on, or None for the in-process engine (the default)."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return address or None


def _positive_int_setting(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def batch_size() -> int:
    value = _positive_int_setting(RAY_BATCH_SIZE_ENV)
    return DEFAULT_BATCH_SIZE if value is None else value


def knn_shard_rows() -> int | None:
    """Rows per kNN search task when set, else None (`distributed.knn` sizes shards by the cluster)."""
    return _positive_int_setting(RAY_KNN_SHARD_ROWS_ENV)


def connect(address: str):
    """Join the cluster at `address` (once per process) and return the `ray` module.

    Ray Data's progress bars and the workers' log echo are off: the caller reports progress.
    """
    import ray

    from quality_assets.data_roots import STORAGE_OPTIONS_ENV

    if not ray.is_initialized():
        # Workers read images from the same object store as the driver: its fsspec options go with
        # the job (credentials the nodes hold themselves, e.g. an instance role, need nothing).
        forwarded = {name: os.environ[name] for name in (STORAGE_OPTIONS_ENV,) if name in os.environ}
        ray.init(address=address, log_to_driver=False, logging_level="WARNING",
                 runtime_env={"env_vars": forwarded} if forwarded else None)
        ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def actor_slots(ray, cpus_per_actor: float) -> tuple[int, bool]:
    """(how many model actors fit, whether each gets a GPU): one per GPU when the cluster has GPUs,
    else one per `cpus_per_actor` CPUs."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, True
    return max(1, int(resources.get("CPU", 1) // max(cpus_per_actor, 1e-9))), False


def train_plan(ray) -> tuple[int, bool, int] | None:
    """(workers, whether each gets a GPU, CPUs per CPU worker) for DINO on Ray Train, or None to
    train in the run's process: asked for by QUALITY_RAY_TRAIN_WORKERS, or one worker per GPU."""
    workers = _positive_int_setting(RAY_TRAIN_WORKERS_ENV)
    cpus = _positive_int_setting(RAY_TRAIN_CPUS_ENV) or 1
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if workers is None:
        return (gpus, True, cpus) if gpus else None
    return workers, gpus >= workers, cpus
