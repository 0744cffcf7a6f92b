"""The engine settings read from the environment: a bad value is a clear error, not a crash later."""

import pytest

from quality_assets.distributed.engine import (
    DEFAULT_BATCH_SIZE, RAY_ADDRESS_ENV, RAY_BATCH_SIZE_ENV, RAY_KNN_SHARD_ROWS_ENV, RAY_TRAIN_CPUS_ENV,
    RAY_TRAIN_WORKERS_ENV, batch_size, knn_shard_rows, ray_address, train_plan,
)


def test_no_address_means_the_in_process_engine(monkeypatch):
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert ray_address() is None
    monkeypatch.setenv(RAY_ADDRESS_ENV, "   ")
    assert ray_address() is None
    monkeypatch.setenv(RAY_ADDRESS_ENV, " head:6379 ")
    assert ray_address() == "head:6379"


@pytest.mark.parametrize("value", ["0", "-8", "eight", "1.5"])
def test_a_malformed_batch_size_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(RAY_BATCH_SIZE_ENV, value)
    with pytest.raises(ValueError, match=RAY_BATCH_SIZE_ENV):
        batch_size()


def test_batch_size_default_and_override(monkeypatch):
    monkeypatch.delenv(RAY_BATCH_SIZE_ENV, raising=False)
    assert batch_size() == DEFAULT_BATCH_SIZE
    monkeypatch.setenv(RAY_BATCH_SIZE_ENV, "64")
    assert batch_size() == 64


@pytest.mark.parametrize("value", ["0", "-100", "many", "1e5"])
def test_a_malformed_knn_shard_size_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(RAY_KNN_SHARD_ROWS_ENV, value)
    with pytest.raises(ValueError, match=RAY_KNN_SHARD_ROWS_ENV):
        knn_shard_rows()


def test_knn_shard_size_unset_or_set(monkeypatch):
    monkeypatch.delenv(RAY_KNN_SHARD_ROWS_ENV, raising=False)
    assert knn_shard_rows() is None
    monkeypatch.setenv(RAY_KNN_SHARD_ROWS_ENV, " 50000 ")
    assert knn_shard_rows() == 50_000


class _Cluster:
    """What `train_plan` reads of a connected `ray` module: the cluster's resources."""

    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return dict(self.resources)


def test_dino_trains_on_ray_train_only_with_gpus_or_when_asked(monkeypatch):
    monkeypatch.delenv(RAY_TRAIN_WORKERS_ENV, raising=False)
    monkeypatch.delenv(RAY_TRAIN_CPUS_ENV, raising=False)
    assert train_plan(_Cluster(CPU=64)) is None  # CPUs only: the run's process trains, as by default
    assert train_plan(_Cluster(CPU=64, GPU=8)) == (8, True, 1)
    monkeypatch.setenv(RAY_TRAIN_WORKERS_ENV, "4")
    monkeypatch.setenv(RAY_TRAIN_CPUS_ENV, "8")
    assert train_plan(_Cluster(CPU=64)) == (4, False, 8)
    assert train_plan(_Cluster(CPU=64, GPU=2)) == (4, False, 8)  # fewer GPUs than workers: CPU workers


@pytest.mark.parametrize("name", [RAY_TRAIN_WORKERS_ENV, RAY_TRAIN_CPUS_ENV])
@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_malformed_train_setting_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        train_plan(_Cluster(CPU=2))
