"""Running a long-lived child service (`dagster dev`) so that Ctrl-C and SIGTERM stop all of it.

`qaudit ui` used to `exec` into `dagster dev`. That process maps SIGTERM to its own interrupt, then
asks its webserver and daemon to shut down through a pipe and waits up to 60 s for each; its code
servers and any run worker only notice after their heartbeat times out (30-45 s later). After
runs had executed, a SIGTERM therefore took a minute or more, and processes outlived it.

Here the service runs in its own process group, and a stop signals the whole group: SIGINT first
(what Ctrl-C in a terminal sends to every process of the foreground group), SIGKILL to whatever is
left after a grace period. The whole tree is gone within `grace_s + KILL_WAIT_S` seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

STOP_GRACE_S = 6.0   # the services' own orderly shutdown (under 2 s when the machine is idle)
KILL_WAIT_S = 2.0
POLL_S = 0.1


def live_group_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies waiting for their reaper excluded)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT to the process group of `process`, SIGKILL to what is left after `grace_s` (or at once
    on another Ctrl-C); returns when no member runs any more or KILL_WAIT_S after the SIGKILL."""
    pgid = process.pid
    deadline = time.monotonic() + grace_s
    try:
        _signal_group(pgid, signal.SIGINT)
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader, so it does not count as a zombie member
            if not live_group_members(pgid):
                return
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C or SIGTERM: no more waiting
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        process.poll()
        if not live_group_members(pgid):
            return
        time.sleep(POLL_S)


def run_service(command: Sequence[str], *, grace_s: float = STOP_GRACE_S,
                say=lambda message: print(message, file=sys.stderr, flush=True)) -> int:
    """Run `command` in a new process group until it exits or KeyboardInterrupt arrives (Ctrl-C, or
    SIGTERM where the caller maps it to SIGINT, as `qaudit` does); then stop the whole group.

    The child starts with default SIGINT/SIGTERM handling even if ours were ignored (a shell that
    started us in the background): handled signals are reset by exec, ignored ones are not."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ignored = [sig for sig, handler in previous.items() if handler == signal.SIG_IGN]

    def _defaults() -> None:
        for sig in ignored:
            signal.signal(sig, signal.SIG_DFL)

    process = subprocess.Popen(list(command), process_group=0, preexec_fn=_defaults if ignored else None)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        say(f"stopping {Path(command[0]).name} (process group {process.pid}) ...")
        stop_group(process, grace_s)
        raise
    # It ended by itself: leftover members (code servers wait for a heartbeat) go with it.
    if live_group_members(process.pid):
        stop_group(process, grace_s=min(grace_s, 2.0))
    return code
