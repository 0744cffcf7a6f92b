"""The engine settings read from the environment: a bad value is a clear error, not a crash later."""

import pytest

from quality_assets.distributed.engine import (
    DEFAULT_BATCH_SIZE, RAY_ADDRESS_ENV, RAY_BATCH_SIZE_ENV, RAY_KNN_SHARD_ROWS_ENV, batch_size, knn_shard_rows,
    ray_address,
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
