"""The "apply" run of the review app: one child process re-materialising `cleaned_split`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ApplyRuns:
    """Starts at most one apply run at a time and reports its state from the status file."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.status_path = self.home / "app" / "apply_status.json"
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> bool:
        """Start a run; False when one is already running."""
        with self._lock:
            if self.running():
                return False
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            self.status_path.write_text(json.dumps({"state": "starting"}), encoding="utf-8")
            log = open(self.status_path.with_suffix(".log"), "wb")
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "quality_assets.app.apply_run", "--home", str(self.home),
                     "--status", str(self.status_path)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            finally:
                log.close()
            return True

    def status(self) -> dict[str, Any] | None:
        if not self.status_path.is_file():
            return None
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"state": "running"} if self.running() else None
        if status.get("state") in ("starting", "running") and not self.running():
            if self._process is not None:
                # The child died without writing its outcome (killed, out of memory).
                status = {"state": "failed", "error": f"the run's process exited with {self._process.returncode}; "
                                                      f"see {self.status_path.with_suffix('.log')}"}
            elif not _alive(status.get("pid")):
                # Left behind by an earlier app session whose run never finished.
                status = {"state": "failed", "error": "the run was interrupted (the app stopped while it ran)"}
        return status

    def stop(self) -> None:
        if self.running() and self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
