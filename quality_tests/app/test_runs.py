"""The apply run's bookkeeping: a status left 'running' by a dead process never spins forever."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quality_assets.app.runs import ApplyRuns


def test_stale_running_status_reads_as_failed(tmp_path: Path) -> None:
    runs = ApplyRuns(tmp_path)
    assert runs.status() is None and not runs.running()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    runs.status_path.parent.mkdir(parents=True)
    runs.status_path.write_text(json.dumps({"state": "running", "pid": dead_pid}))
    assert runs.status()["state"] == "failed" and "interrupted" in runs.status()["error"]
    runs.status_path.write_text(json.dumps({"state": "succeeded", "run_id": "r1", "checks": []}))
    assert runs.status() == {"state": "succeeded", "run_id": "r1", "checks": []}


@pytest.mark.slow
def test_a_failing_run_reports_why(tmp_path: Path) -> None:
    runs = ApplyRuns(tmp_path / "empty_home")  # no audit: cleaned_split has nothing to clean
    assert runs.start()
    assert not runs.start()  # one run at a time (Dagster alone takes seconds to import)
    deadline = time.monotonic() + 300
    while runs.running() and time.monotonic() < deadline:
        time.sleep(0.5)
    status = runs.status()
    assert status["state"] == "failed" and status["error"], status
