"""How long `qaudit audit --help` takes, against the same help built after the scoring stack is loaded
(what every help call paid while the issue-type units imported their scorers at the top).

    python benchmarks/bench_cli_help.py [--repeats 5]

Each run is a fresh interpreter (as a shell's `qaudit` is): the help alone, and the help after
importing what building it used to import (`PRELOAD_BEFORE`: the scoring modules the units imported
at their tops, and the Dagster resource the flags were read from). The two alternate; medians of the
wall seconds and their ratio are printed, with the heavy modules each run ended up holding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "faiss", "sklearn", "scipy.stats", "dagster")
PRELOAD_BEFORE = ("quality_assets.knn", "quality_assets.scores.cutoff", "quality_assets.scores.confident_learning",
                  "quality_assets.scores.label_error", "quality_assets.scores.multi_label",
                  "quality_assets.scores.near_duplicate", "quality_assets.scores.off_topic",
                  "quality_assets.scores.data_value", "quality_assets.defs.scoring.config")
_RUN = """
import contextlib, io, json, sys
{preload}
from quality_assets.cli import main
with contextlib.redirect_stdout(io.StringIO()) as shown:
    try:
        main(["audit", "--help"])
    except SystemExit:
        pass
print(json.dumps({{"lines": shown.getvalue().count("\\n"), "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _run(preload: str) -> tuple[float, dict]:
    code = _RUN.format(preload=preload, heavy=HEAVY)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    arms = {"help alone": "", "help after the scoring stack": "\n".join(f"import {m}" for m in PRELOAD_BEFORE)}
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    found: dict[str, dict] = {}
    for _ in range(args.repeats):
        for arm, preload in arms.items():
            took, found[arm] = _run(preload)
            seconds[arm].append(took)
    for arm in arms:
        print(f"{arm}: median {statistics.median(seconds[arm]):.2f} s over {args.repeats} "
              f"({', '.join(f'{s:.2f}' for s in seconds[arm])}); {found[arm]['lines']} lines of help; "
              f"loaded: {', '.join(found[arm]['loaded']) or 'none of ' + ', '.join(HEAVY)}")
    fast, slow = (statistics.median(seconds[arm]) for arm in arms)
    print(f"ratio: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
