"""`python -m quality_assets.app.apply_run --home HOME --status FILE`: re-materialise `cleaned_split`.

The review app starts this in its own process so a run never blocks the web server, and the
run's DuckDB writes take the lock like any other audit step (the app's writes wait and retry).
The outcome (run id, success, each check of `cleaned_split`) goes to FILE as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

SELECTION = ["cleaned_split"]


def _write(path: Path, payload: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--status", required=True)
    args = parser.parse_args(argv)
    status_path = Path(args.status)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write(status_path, {"state": "running", "pid": os.getpid(), "started_at": started})
    try:
        from quality_assets.runner import run_audit

        outcome = run_audit(Path(args.home), None, selection=SELECTION, log_level="WARNING")
        state = ("gate_failed" if outcome.failed_blocking_checks else
                 "succeeded" if outcome.success else "failed")
        payload = {"state": state, "run_id": outcome.run_id, "materialized": outcome.materialized,
                   "checks": [asdict(c) for c in outcome.checks], "error": outcome.error}
        code = outcome.exit_code
    except Exception as error:  # the app must show why, not a run stuck in "running"
        payload = {"state": "failed", "error": f"{type(error).__name__}: {error}",
                   "traceback": traceback.format_exc()[-4000:]}
        code = 1
    payload.update(started_at=started, finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _write(status_path, payload)
    return code


if __name__ == "__main__":
    sys.exit(main())
