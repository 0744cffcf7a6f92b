"""Shared fixtures: a temporary quality home and a Dagster instance for tests.

The test process never uses a real home: whatever QUALITY_HOME and DAGSTER_HOME the shell (or
`make`) set, they point at a temporary folder of this process (removed at exit), so test runs never
show up in the demo's or a developer's Dagster UI. A test that needs its own home sets it itself.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

TEST_HOMES = Path(tempfile.mkdtemp(prefix="quality_tests_"))
atexit.register(shutil.rmtree, TEST_HOMES, ignore_errors=True)
os.environ["QUALITY_HOME"] = str(TEST_HOMES / "home")
os.environ["DAGSTER_HOME"] = str(TEST_HOMES / "home" / "dagster")
(TEST_HOMES / "home" / "dagster").mkdir(parents=True)
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


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 for the whole session (quality_lab/object_store.py)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from quality_lab.object_store import start_s3_server

    # In a process of its own: no server threads (werkzeug, moto's imports) inside the test process.
    server, endpoint = start_s3_server(own_process=True)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, request):
    """A fresh, empty bucket as an `s3://` URL, with QUALITY_STORAGE_OPTIONS pointing at the server."""
    import uuid

    from quality_assets.data_roots import STORAGE_OPTIONS_ENV
    from quality_lab.object_store import s3

    monkeypatch.setenv(STORAGE_OPTIONS_ENV, s3_endpoint.storage_options)
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3().mkdir(name)
    return f"s3://{name}"
