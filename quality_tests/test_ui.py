"""`qaudit ui` (dagster dev) stops on SIGTERM within 10 s, after a run has executed in it and while the
next one executes, and leaves no process behind (webserver, daemon, code servers, run workers).

SIGTERM alone: `qaudit`'s SIGTERM handler raises SIGINT in its own process (`cli._terminate_like_interrupt`),
so a SIGTERM takes Ctrl-C's whole way out after one step, and a second `dagster dev` started only to
send it SIGINT cost CI another 90 s (`test_crash_safety` stops a waiting `qaudit audit` by SIGTERM).

Slow (a real `dagster dev`, a drop ingested by its sensor in a run worker), so marked `slow`; CI
runs it via `make test-slow`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from quality_tests.imagefolders import make_imagefolder, mark_complete

QAUDIT = str(Path(sys.executable).with_name("qaudit"))
STOP_WITHIN_S = 10.0

RUNS_QUERY = """
query {
  runsOrError { ... on Runs { results { runId jobName status } } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid, _pgrp, session = stat[stat.rindex(")") + 2:].split()[:4]
            table[int(entry.name)] = (int(ppid), int(session), state)
    return table


def _tree(root: int) -> set[int]:
    table = _processes()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def _alive(pids: set[int], sessions: set[int]) -> list[int]:
    """Running (not zombie) processes among `pids` or in one of `sessions`."""
    return sorted(pid for pid, (_, session, state) in _processes().items()
                  if (pid in pids or session in sessions) and state not in ("Z", "X"))


def _kill_all(pids: set[int], sessions: set[int]) -> None:
    for pid in _alive(pids, sessions):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(what: str, predicate, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"{what} did not happen in {timeout:.0f} s:\n" + log.read_text()[-4000:])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_qaudit_ui_stops_with_its_whole_process_tree_after_a_run(tmp_path):
    sig = signal.SIGTERM
    home, drops, log_path = tmp_path / "home", tmp_path / "drops", tmp_path / "ui.log"
    drops.mkdir()
    port = _free_port()
    env = {**os.environ, "QUALITY_HOME": str(home), "QUALITY_DROPS_DIR": str(drops)}
    env.pop("DAGSTER_HOME", None)  # the home's own instance, HOME/dagster
    with open(log_path, "w") as log:
        # Its own session: everything it starts is in it unless it starts a session of its own.
        ui = subprocess.Popen([QAUDIT, "ui", "--home", str(home), "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    sessions, tree = {ui.pid}, {ui.pid}
    try:
        def webserver_answers():
            assert ui.poll() is None, log_path.read_text()[-4000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                return True
            except OSError:
                return False

        _wait_for("the webserver answering", webserver_answers, 180, log_path)
        # A run executes in it: the drops sensor ingests a drop in a run worker.
        make_imagefolder(drops / "drop_001", {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}})
        mark_complete(drops / "drop_001")

        def runs():
            return _graphql(port, RUNS_QUERY)["data"]["runsOrError"]["results"]

        def ingest_finished():
            return [r for r in runs() if r["jobName"] == "ingest_drop_job" and r["status"] in ("SUCCESS", "FAILURE")]

        [run] = _wait_for("the ingest run", ingest_finished, 300, log_path)
        assert run["status"] == "SUCCESS", log_path.read_text()[-4000:]
        # Automation then starts the rest of the graph (the SSL model trains for a while): stop it
        # while that run executes, the case that took a minute and more.
        _wait_for("the automation run", lambda: [r for r in runs() if r["status"] == "STARTED"], 180, log_path)

        tree = _tree(ui.pid)
        table = _processes()
        sessions |= {table[pid][1] for pid in tree if pid in table}
        assert len(tree) >= 4, tree  # qaudit, dagster dev, webserver, daemon, code server(s)

        sent = time.monotonic()
        os.kill(ui.pid, sig)
        while time.monotonic() - sent < STOP_WITHIN_S:
            if ui.poll() is not None and not _alive(tree, sessions):
                break
            time.sleep(0.1)
        took = time.monotonic() - sent
        left = _alive(tree, sessions)
        assert ui.poll() is not None and not left, (
            f"after {took:.1f} s still running: qaudit={ui.poll() is None}, "
            + "; ".join(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:150] for pid in left if
                        Path(f"/proc/{pid}/cmdline").exists()))
        assert ui.returncode == 130, log_path.read_text()[-3000:]
        print(f"qaudit ui and its {len(tree) - 1} descendants stopped {took:.1f} s after {sig.name}")
    finally:
        _kill_all(tree, sessions)
        if ui.poll() is None:
            ui.kill()
            ui.wait(10)
