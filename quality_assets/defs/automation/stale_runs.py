"""Runs whose process is gone (SIGKILL, OOM kill, power cut): mark them failed, free their pool slots.

A killed run stays STARTED in the instance and keeps its `duckdb` pool slot, so every later step
that needs the pool, and every queued run behind `max_concurrent_runs: 1`, would wait for it
forever. Dagster's run monitoring cannot see these runs: `qaudit audit` executes in process (no run
launcher to ask), and the default run launcher does not report worker health either. So each run's
process is identified (our tags on CLI runs; the pid in the executor's engine events on runs the
daemon launched), and a run whose process no longer exists is failed and its slots released. The
CLI does this before it starts, the drops sensor on every tick.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

PID_TAG = "quality/pid"
HOST_TAG = "quality/host"
PROCESS_START_TAG = "quality/process_start"
IN_PROGRESS = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
# A run the daemon launched but whose worker never reported a pid: failed after this long (Dagster's
# own run monitoring uses 180 s for a start that never happens).
STARTING_TIMEOUT_S = 300.0
# Messages of the engine events that carry the run worker's pid (in-process and multiprocess executors,
# the default run launcher).
_PID_EVENT_PREFIXES = ("Started process for run", "Executing steps")


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), which tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields and fields[0] == b"Z":
        return "zombie"
    return fields[19].decode() if len(fields) > 19 else None


def process_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this one is still alive."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: _process_start(pid) or ""}


def process_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    current = _process_start(pid)
    if current == "zombie":
        return False
    return not (started and current is not None and current != started)


@dataclass
class RunOwner:
    run_id: str
    status: str
    pid: int | None
    host: str | None
    alive: bool | None  # None: cannot tell from here (another host, or no pid reported yet)
    started_at: float | None

    def describe(self) -> str:
        where = f"pid {self.pid}" + (f" on {self.host}" if self.host else "") if self.pid else "no process yet"
        since = time.strftime("%H:%M:%S", time.localtime(self.started_at)) if self.started_at else "?"
        return f"run {self.run_id} ({self.status.lower()}, {where}, since {since})"


def _engine_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    pid = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        message = (event.message if event is not None else None) or entry.user_message or ""
        if not message.startswith(_PID_EVENT_PREFIXES):
            continue
        data = event.event_specific_data if event is not None else None
        value = getattr(data, "metadata", {}).get("pid") if data is not None else None
        text = getattr(value, "value", value)
        if text is not None and str(text).isdigit():
            pid = int(str(text))
    return pid


def run_owner(instance: dg.DagsterInstance, record) -> RunOwner:
    run = record.dagster_run
    started = record.start_time or (record.create_timestamp.timestamp() if record.create_timestamp else None)
    status = run.status.value
    if PID_TAG in run.tags:
        pid, host = int(run.tags[PID_TAG]), run.tags.get(HOST_TAG)
        alive = process_alive(pid, run.tags.get(PROCESS_START_TAG)) if host == socket.gethostname() else None
        return RunOwner(run.run_id, status, pid, host, alive, started)
    # Launched by the daemon of this (local) instance: the worker runs on this machine.
    pid = _engine_pid(instance, run.run_id)
    if pid is not None:
        return RunOwner(run.run_id, status, pid, None, process_alive(pid), started)
    created = record.create_timestamp.timestamp() if record.create_timestamp else time.time()
    never_started = run.status == dg.DagsterRunStatus.STARTING and time.time() - created > STARTING_TIMEOUT_S
    return RunOwner(run.run_id, status, None, None, False if never_started else None, started)


def active_runs(instance: dg.DagsterInstance, exclude: str | None = None) -> list[RunOwner]:
    records = instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS))
    return [run_owner(instance, r) for r in records if r.dagster_run.run_id != exclude]


def reap_stale_runs(instance: dg.DagsterInstance, say: Callable[[str], None] | None = None) -> list[str]:
    """Fail every in-progress run whose process is gone and free its slots; returns their run ids.

    Also frees pool slots still claimed by runs that have already finished.
    """
    reaped = []
    for owner in active_runs(instance):
        if owner.alive is not False:
            continue
        record = instance.get_run_record_by_id(owner.run_id)
        if record is None or record.dagster_run.is_finished:
            continue
        message = (f"The process of this run ({'pid ' + str(owner.pid) if owner.pid else 'never started'}) "
                   "is gone: marked failed and its concurrency slots released.")
        instance.report_run_failed(record.dagster_run, message=message)
        instance.event_log_storage.free_concurrency_slots_for_run(owner.run_id)
        reaped.append(owner.run_id)
        if say:
            say(f"{owner.describe()}: its process is gone; marked it failed and released its pool slots")
    storage = instance.event_log_storage
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        for run_id in info.active_run_ids | info.pending_run_ids | info.assigned_run_ids:
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
    return reaped


def wait_for_active_runs(instance: dg.DagsterInstance, say: Callable[[str], None],
                         poll_s: float = 2.0, exclude: str | None = None) -> None:
    """Block until no other run is in progress, saying once what it waits for; reaps dead ones.

    Interruptible: the sleep ends on Ctrl-C (KeyboardInterrupt) or whatever the caller maps
    SIGTERM to.
    """
    announced: set[str] = set()
    while True:
        reap_stale_runs(instance, say)
        blocking = active_runs(instance, exclude)
        if not blocking:
            return
        for owner in blocking:
            if owner.run_id not in announced:
                say(f"waiting for {owner.describe()} to finish: one audit writes the database at a time "
                    "(Ctrl-C to stop waiting)")
                announced.add(owner.run_id)
        time.sleep(poll_s)
