"""Scaling benchmark: kNN graph + all scores vs cleanlab Datalab on 10k / 100k / 1M vectors.

Thin wrapper around `quality_lab.bench.scaling` (see its docstring and
docs/benchmarks/scaling.md).

Usage:
    .venv/bin/python benchmarks/bench_scaling.py --sizes 10000 100000 --out bench_out/scaling
    .venv/bin/python benchmarks/bench_scaling.py --sizes 1000000 --tools ours --timeout 900
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from quality_lab.bench.scaling import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
