"""What a process spends on the stages' code versions (`quality_assets.code_version`) against the way
they were found before 2026-12-07 (every stage's version walked every node of every module it reaches,
read again for each stage), alternated in one process, each run on a cleared cache, with both ways'
import sets compared on every package module.

    python benchmarks/bench_code_version.py --repeats 5

The stages: the seven versions an audit computes (verifier, scores, cleaned split, graphs, manifest
expectations, drop checks, training consumer).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from pathlib import Path

import quality_assets.code_version as cv
from quality_assets import score_run, view_graphs

STAGES = [
    (score_run.VERIFIER_CODE_ROOTS, ()),
    (score_run.SCORE_CODE_ROOTS, score_run.SCORE_SQL),
    (score_run.SPLIT_CODE_ROOTS, score_run.SPLIT_SQL),
    (view_graphs.GRAPH_CODE_ROOTS, view_graphs.GRAPH_SQL),
    (("quality_assets.expectations",), ()),
    (("quality_assets.scores.drop_shift",), ()),
    (("quality_assets.training_probe", "quality_assets.consumer_cnn"), ()),
]


def imported_modules_before(path: Path) -> frozenset[str]:
    """The walk before 2026-12-07: every node of the tree, no cache."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in names if cv._module_file(name) is not None)


def stage_versions(finder) -> tuple[float, list[str]]:
    cv.code_version.cache_clear()
    cv._imported_modules.cache_clear()
    kept = cv._imported_modules
    if finder is not None:
        cv._imported_modules = finder
    try:
        start = time.perf_counter()
        versions = [cv.code_version(*roots, sql=tuple(sql)) for roots, sql in STAGES]
        return time.perf_counter() - start, versions
    finally:
        cv._imported_modules = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(args.repeats):
        took, before = stage_versions(imported_modules_before)
        seconds["before"].append(took)
        took, now = stage_versions(None)
        seconds["now"].append(took)
        assert before == now, "the two walks give other versions"
    files = sorted(cv._PACKAGE_DIR.rglob("*.py"))
    differing = [str(f) for f in files if imported_modules_before(f) != cv._imported_modules(f)]
    median = {k: statistics.median(v) for k, v in seconds.items()}
    print(json.dumps({"stages": len(STAGES), "modules_compared": len(files), "modules_differing": differing,
                      "median_s": {k: round(v, 3) for k, v in median.items()},
                      "speedup": round(median["before"] / median["now"], 1)}, indent=1))


if __name__ == "__main__":
    main()
