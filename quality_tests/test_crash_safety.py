"""A run whose process is gone never blocks the next one; a CLI that has to wait says for what and
stops on SIGTERM. Real Dagster instances (sqlite storage, the project's dagster.yaml) and real
processes: a dead pid is a process that has exited, a live one a process that sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from quality_assets.defs.automation.stale_runs import (
    HOST_TAG, PID_TAG, PROCESS_START_TAG, _process_start, active_runs, reap_stale_runs,
)
from quality_assets.runner import prepare_environment
from quality_tests.imagefolders import make_imagefolder

QAUDIT = str(Path(sys.executable).with_name("qaudit"))


@pytest.fixture
def home_instance(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    dagster_home = prepare_environment(home)  # the project's dagster.yaml, as `qaudit` installs it
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("QUALITY_HOME", str(home))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield home, instance


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _tags(pid: int) -> dict[str, str]:
    import socket

    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: _process_start(pid) or ""}


def _claim(instance, run_id: str, step: str = "ssl_model") -> None:
    storage = instance.event_log_storage
    if "duckdb" not in storage.get_concurrency_keys():
        storage.set_concurrency_slots("duckdb", 1)
    assert storage.claim_concurrency_slot("duckdb", run_id, step).is_claimed


def test_a_dead_run_is_failed_and_frees_its_slot_a_live_one_is_kept(home_instance):
    _, instance = home_instance
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED,
                                   tags=_tags(_dead_pid()))
        _claim(instance, dead.run_id)
        live = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED,
                                   tags=_tags(sleeper.pid))
        # A finished run that still holds a slot (a crash between its last step and the release).
        finished = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.SUCCESS)
        info = instance.event_log_storage.get_concurrency_info("duckdb")
        assert info.active_run_ids == {dead.run_id}
        storage = instance.event_log_storage
        storage.set_concurrency_slots("duckdb", 2)
        _claim(instance, finished.run_id, "embeddings")

        said: list[str] = []
        reaped = reap_stale_runs(instance, said.append)

        assert reaped == [dead.run_id]
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        assert storage.get_concurrency_info("duckdb").active_run_ids == set()
        assert [owner.run_id for owner in active_runs(instance)] == [live.run_id]
        assert len(said) == 1 and dead.run_id in said[0] and "released" in said[0]
        # A reused pid (same number, another process start time) is not the run's process.
        reused = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED,
                                     tags={**_tags(sleeper.pid), PROCESS_START_TAG: "1"})
        assert reap_stale_runs(instance) == [reused.run_id]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_daemon_launched_run_is_judged_by_its_engine_pid(home_instance):
    _, instance = home_instance
    run = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED)
    from dagster._core.events import EngineEventData

    instance.report_engine_event(f"Started process for run (pid: {_dead_pid()}).", run,
                                 EngineEventData.in_process(_dead_pid()))
    assert reap_stale_runs(instance) == [run.run_id]


def test_the_cli_says_what_it_waits_for_and_stops_on_sigterm(home_instance, tmp_path):
    home, instance = home_instance
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 2, "b": 2}})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = create_run_for_test(instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED,
                                   tags=_tags(sleeper.pid))
        log = tmp_path / "audit.err"
        with open(log, "w") as err:
            audit = subprocess.Popen([QAUDIT, "audit", str(data), "--home", str(home)], stdout=subprocess.DEVNULL,
                                     stderr=err, env=os.environ.copy())
        deadline, seen = time.monotonic() + 120, ""
        while time.monotonic() < deadline and "waiting for" not in seen:
            time.sleep(0.5)
            seen = log.read_text()
            assert audit.poll() is None, seen
        assert f"waiting for run {live.run_id}" in seen and f"pid {sleeper.pid}" in seen
        started = time.monotonic()
        audit.send_signal(signal.SIGTERM)
        audit.wait(timeout=30)
        seen = log.read_text()
        assert audit.returncode == 130 and "interrupted" in seen
        assert time.monotonic() - started < 30
        # Nothing was started behind the live run's back.
        assert not (home / "quality.duckdb").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_export_waiting_for_the_database_lock_says_so_then_completes(tmp_path):
    home, log = tmp_path / "home", tmp_path / "export.err"
    # Holds the write lock until told to let go (a line on stdin).
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom quality_assets.store import Store\n"
         f"with Store({str(home)!r}).connect():\n    print('held', flush=True)\n    sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with open(log, "w") as err:
            export = subprocess.Popen([QAUDIT, "export", "--home", str(home), "--out", str(tmp_path / "out")],
                                      stdout=subprocess.DEVNULL, stderr=err,
                                      env={**os.environ, "QUALITY_HOME": str(home)})
        deadline = time.monotonic() + 120
        while "held by another process" not in log.read_text() and time.monotonic() < deadline:
            assert export.poll() is None, log.read_text()
            time.sleep(0.2)
        assert f"held by another process (PID {holder.pid})" in log.read_text()
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert export.wait(timeout=120) == 0, log.read_text()
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "out/issues.csv").is_file()
