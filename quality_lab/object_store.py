"""A real S3 endpoint for tests and benchmarks: moto's S3 server on 127.0.0.1, reached through s3fs over HTTP.

The audit talks to it exactly as to a cloud bucket (fsspec URLs, ranged reads, listings); only the
endpoint and the dummy credentials, given through QUALITY_STORAGE_OPTIONS, differ.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from quality_assets.data_roots import STORAGE_OPTIONS_ENV, filesystem


@dataclass
class S3Endpoint:
    endpoint_url: str

    @property
    def storage_options(self) -> str:
        """The QUALITY_STORAGE_OPTIONS value that points s3:// URLs at this endpoint."""
        return json.dumps({"s3": {"endpoint_url": self.endpoint_url, "key": "testing", "secret": "testing",
                                  "client_kwargs": {"region_name": "eu-west-1"}}})


def start_s3_server(own_process: bool = False):
    """(the running moto server, its endpoint); the caller calls the server's `stop()`.

    In a thread of this process by default (cheap to start, for tests); `own_process` runs it as a
    separate process, so that a benchmark's client threads do not share a GIL with the server."""
    if not own_process:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return server, S3Endpoint(f"http://{host}:{port}")
    return _ServerProcess.start()


class _ServerProcess:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    @classmethod
    def start(cls) -> tuple["_ServerProcess", S3Endpoint]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        return cls(process), S3Endpoint(f"http://127.0.0.1:{port}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def s3():
    """The s3 filesystem the audit itself uses, under the options the test set."""
    assert STORAGE_OPTIONS_ENV in os.environ, "set the endpoint's storage options first"
    return filesystem("s3")


def upload_tree(local: Path, url: str) -> list[str]:
    """Every regular file below `local` written as an object under `url` (links are not followed:
    an object store has none). Returns the relative paths uploaded, sorted."""
    fs = s3()
    base = url.split("://", 1)[1].rstrip("/")
    uploaded = []
    for path in sorted(Path(local).rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(local).as_posix()
        fs.pipe_file(f"{base}/{rel}", path.read_bytes())
        uploaded.append(rel)
    return uploaded


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 that holds each chunk the server sends back for `latency_s`: a cloud
    store's first-byte latency in front of the loopback server (responses here fit one chunk)."""

    def __init__(self, upstream_url: str, latency_s: float) -> None:
        import asyncio
        import threading
        from urllib.parse import urlparse

        target = urlparse(upstream_url)
        self.upstream = (target.hostname, target.port)
        self.latency_s = latency_s
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(serve()), daemon=True)
        self.thread.start()
        ready.wait(10)
        self.endpoint = S3Endpoint(f"http://127.0.0.1:{self.port}")

    async def _handle(self, client_reader, client_writer) -> None:
        import asyncio

        upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(reader, writer, delay: float) -> None:
            try:
                while chunk := await reader.read(1 << 16):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, upstream_writer, 0.0),
                             pipe(upstream_reader, client_writer, self.latency_s))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
