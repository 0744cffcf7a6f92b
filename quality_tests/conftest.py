"""Shared fixtures: a temporary quality home and a Dagster instance for tests."""

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# Tests share 2 cores with each other's subprocesses; more torch threads only add contention.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import dagster as dg
import pytest

from quality_assets.store import Store


@pytest.fixture
def quality_home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def store(quality_home):
    return Store(quality_home)


@pytest.fixture
def dagster_instance():
    with dg.instance_for_test() as instance:
        yield instance
