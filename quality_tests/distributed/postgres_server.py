"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start on a free
loopback port, stop and remove on exit.

The server refuses to run as root, so under root every server command runs as the `postgres`
system user (created by Debian's postgresql package) through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None when one can."""
    if postgres_bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install -y postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    dbname: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=self.dbname)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server(dbname: str = "dagster", user: str = "quality") -> Iterator[PostgresServer]:
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bin_dir = postgres_bin_dir()
    as_server_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="quality_pg_"))
    if os.geteuid() == 0:
        as_server_user = ["runuser", "-u", "postgres", "--"]
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, log = base / "data", base / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*as_server_user, *args], check=True, capture_output=True, text=True, timeout=120)

    started = False
    try:
        # Trust on loopback only, and no fsync: a test database that lives for seconds.
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--encoding=UTF8",
            "--no-sync", "--no-instructions")
        port = _free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
        started = True
        server = PostgresServer("127.0.0.1", port, user, "postgres")
        conn = server.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            conn.close()
        yield PostgresServer("127.0.0.1", port, user, dbname)
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(f"{exc.cmd[len(as_server_user):][:1]} failed: {exc.stderr}\n{server_log}") from exc
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
