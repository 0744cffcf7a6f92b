"""A drop lands in the drops folder of a running `dagster dev`; the scores for its images appear.

Slow (a real webserver + daemon, subprocess runs), so marked `slow`; CI runs it via `make test-slow`.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from quality_tests.imagefolders import make_imagefolder, mark_complete

REPO = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 480

ASSET_QUERY = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { runId timestamp } }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _restore_default_signals() -> None:
    # A background shell may hand us an ignored SIGINT; dagster dev maps SIGTERM to its SIGINT handler,
    # so it would then ignore both and could never be stopped.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_a_new_drop_is_scored_by_the_running_service(tmp_path):
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    drops = home / "drops"
    dagster_home.mkdir(parents=True)
    drops.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "QUALITY_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "QUALITY_DROPS_DIR": str(drops), "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}
    log = open(tmp_path / "dagster_dev.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(REPO / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_restore_default_signals,
    )
    started = time.monotonic()
    try:
        while True:
            assert process.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            assert time.monotonic() - started < 120, "dagster dev did not come up in 120 s"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                time.sleep(1)

        # Copy the drop first, mark it complete last, as a producer would.
        paths = make_imagefolder(drops / "drop_001", {"train": {"a": 12, "b": 12}, "test": {"a": 4, "b": 4}})
        mark_complete(drops / "drop_001")

        materialized = None
        while time.monotonic() - started < DEADLINE_SECONDS:
            assert process.poll() is None, (tmp_path / "dagster_dev.log").read_text()[-3000:]
            result = _graphql(port, ASSET_QUERY, {"path": ["issue_scores"]})
            asset = result.get("data", {}).get("assetOrError") or {}
            if asset.get("assetMaterializations"):
                materialized = asset["assetMaterializations"][0]
                break
            time.sleep(5)
        assert materialized, "issue_scores was not materialized in time:\n" + (tmp_path / "dagster_dev.log").read_text()[-5000:]
    finally:
        _stop(process)
        log.close()
    assert process.poll() is not None, "dagster dev is still running"

    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        scored = {row[0] for row in conn.execute(
            "SELECT DISTINCT path FROM issues WHERE issue_type = 'off_topic'").fetchall()}
    finally:
        conn.close()
    assert scored == {f"drop_001/{p}" for p in paths}
