"""Readers during a run: read-only SQL, `qaudit export` and the review queue work while an audit
trains its model and embeds, because the write lock is held only for short write transactions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from quality_assets.exporting import export_views
from quality_assets.runner import prepare_environment
from quality_assets.store import Store
from quality_tests.imagefolders import make_imagefolder

pytestmark = pytest.mark.slow

TRAIN_SECONDS = 12.0


def _read_once(db: Path) -> bool:
    try:
        conn = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException:
        return False  # the writer holds the lock
    try:
        conn.execute("SELECT count(*) FROM raw_manifest").fetchone()
        return True
    finally:
        conn.close()


def test_a_reader_polling_during_an_audit_is_never_locked_out_for_long(tmp_path, monkeypatch):
    data, home = tmp_path / "data", tmp_path / "home"
    make_imagefolder(data, {"train": {"a": 12, "b": 12}, "test": {"a": 3, "b": 3}})
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    dagster_home = prepare_environment(home)
    env = {**os.environ, "QUALITY_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    db = home / "quality.duckdb"
    audit = subprocess.Popen(
        [sys.executable, "-m", "quality_tests.fault_driver", str(home), str(data), "--train-seconds",
         str(TRAIN_SECONDS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    polls: list[tuple[float, bool]] = []  # (monotonic time, the read-only connection opened)
    exported = queued = 0
    try:
        while audit.poll() is None:
            if db.exists():
                now = time.monotonic()
                ok = _read_once(db)
                polls.append((now, ok))
                # Whole commands a person would run, a few times during the run.
                if ok and len(polls) % 25 == 0:
                    try:
                        export_views(Store(home), tmp_path / f"export_{len(polls)}")
                        exported += 1
                        Store(home).query("review_queue", issue_type="label_error", limit=5)
                        queued += 1
                    except duckdb.IOException:
                        pass  # a write transaction happened to start: retried at the next turn
            time.sleep(0.1)
        output = audit.stdout.read()
    finally:
        if audit.poll() is None:
            audit.kill()
    assert audit.returncode == 0, output[-3000:]

    assert polls and polls[-1][0] - polls[0][0] > TRAIN_SECONDS, "the run must outlast its training"
    windows = _step_windows(dagster_home)
    for step in ("raw_manifest_manifest_expectations", "ssl_model", "embeddings"):
        start, end = windows[step]
        inside = [(at, ok) for at, ok in polls if start <= at <= end]
        # Before: these steps held the write lock from start to end (the model step >= TRAIN_SECONDS).
        assert inside and _longest_lockout(inside) < 2.0, (step, _longest_lockout(inside), end - start)
    assert windows["ssl_model"][1] - windows["ssl_model"][0] >= TRAIN_SECONDS
    assert exported >= 2 and queued >= 2


def _longest_lockout(polls: list[tuple[float, bool]]) -> float:
    longest, since = 0.0, None
    for at, ok in polls:
        if ok:
            since = None
        elif since is None:
            since = at
        else:
            longest = max(longest, at - since)
    return longest


def _step_windows(dagster_home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) of each step of the run, on this process's monotonic clock."""
    import dagster as dg

    offset = time.monotonic() - time.time()
    windows: dict[str, list[float]] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [record] = instance.get_run_records()
        for entry in instance.get_records_for_run(record.dagster_run.run_id, limit=10_000).records:
            event = entry.event_log_entry.dagster_event
            if event is not None and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                windows.setdefault(event.step_key, []).append(entry.event_log_entry.timestamp + offset)
    return {step: (min(times), max(times)) for step, times in windows.items()}
