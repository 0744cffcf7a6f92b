"""A real Ray cluster on this machine, for tests and benchmarks: a head node (no CPUs of its own,
so all work lands on workers) and N worker nodes, each a separate `ray start --block` process group
started and stopped here (never `ray stop`, which would end every Ray process on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


def _node_ports() -> list[str]:
    # Every node on one host needs its own agent ports; the defaults are fixed numbers.
    return ["--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port()), "--metrics-export-port", str(_free_port()),
            "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port())]


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the node's processes
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@dataclass
class LocalRayCluster:
    address: str
    temp_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        # SIGTERM lets each `ray start --block` take its node down; the head can take longer than a
        # test should wait, so whatever is left of each node's process group then gets SIGKILL.
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(process)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


_PROBE = """
import sys, time, ray
address, n_nodes, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:  # the head's GCS may not answer yet
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(1.0)
while sum(1 for node in ray.nodes() if node["Alive"]) < n_nodes:
    if time.monotonic() > deadline:
        sys.exit(f"the Ray cluster at {address} did not reach {n_nodes} nodes")
    time.sleep(0.5)
"""


class NodeExited(RuntimeError):
    """The `ray start` being waited for exited before its node joined."""


def _wait_for_nodes(address: str, n_nodes: int, timeout_s: float, temp_dir: Path,
                    node: subprocess.Popen) -> None:
    # In a child process: a driver connected here would pin this process to the cluster.
    with open(temp_dir / "probe.log", "w+") as probe_log:
        probe = subprocess.Popen([sys.executable, "-c", _PROBE, address, str(n_nodes), str(timeout_s)],
                                 stdout=probe_log, stderr=subprocess.STDOUT)
        while probe.poll() is None:
            if node.poll() is not None:
                probe.kill()
                probe.wait()
                raise NodeExited(f"a Ray node's `ray start` exited with {node.returncode}")
            time.sleep(0.5)
        probe_log.seek(0)
        probe_output = probe_log.read()
    if probe.returncode != 0:
        logs = "".join(log.read_text(errors="replace")[-2000:] for log in sorted(temp_dir.glob("node-*.log")))
        raise RuntimeError(f"the local Ray cluster did not come up: {probe_output[-2000:]}\n{logs}")


@contextmanager
def local_ray_cluster(n_workers: int = 1, cpus_per_worker: int = 1, object_store_mb: int = 128,
                      timeout_s: float = 240.0) -> Iterator[LocalRayCluster]:
    """Start a head and `n_workers` worker nodes on 127.0.0.1; yield the cluster; stop them all."""
    temp_dir = Path(tempfile.mkdtemp(prefix="qray_", dir="/tmp"))  # short: Ray's socket paths have a limit
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
    store_bytes = str(object_store_mb * 2**20)
    cluster = LocalRayCluster(address, temp_dir)

    def start(args: list[str]) -> None:
        with open(temp_dir / f"node-{len(cluster.processes)}.log", "wb") as log:
            cluster.processes.append(subprocess.Popen(
                [_ray_cli(), "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
                 "--object-store-memory", store_bytes, *_node_ports(), *args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start(["--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard", "false",
               "--ray-client-server-port", str(_free_port()), "--temp-dir", str(temp_dir)])
        _wait_for_nodes(address, 1, timeout_s, temp_dir, cluster.processes[0])
        # One worker at a time, and again if it gave up: on a loaded machine a raylet can miss
        # Ray's fixed 30 s start deadline, and then its `ray start` exits.
        for n_up in range(1, n_workers + 1):
            for attempt in range(3):
                start(["--address", address, "--num-cpus", str(cpus_per_worker)])
                try:
                    _wait_for_nodes(address, 1 + n_up, timeout_s, temp_dir, cluster.processes[-1])
                    break
                except NodeExited:
                    if attempt == 2:
                        raise
                    _kill_group(cluster.processes.pop())
        yield cluster
    finally:
        cluster.stop()
