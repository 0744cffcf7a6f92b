"""Re-score a `qaudit demo` home with and without pixel evidence and print both detection reports.

Usage: python benchmarks/demo_rescore.py HOME [HOME ...]

HOME is a finished demo home (demo/data, demo/ground_truth.csv, a kNN graph). Thumbnails are
made for samples that lack them, then `run_scores` runs twice in the same process on the same
graph: `pixel_evidence=False` (embedding evidence only, LAD for off-topic) and the default
(thumbnail candidates and verifiers for near duplicates and leakage, the two-view off-topic
score). Each run is stored as its own score version; the home's latest run is the default one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from quality_lab.evaluation import detection_report
from quality_assets.representation import thumbnail_missing
from quality_assets.score_run import run_scores
from quality_assets.scoring import ScoreConfig
from quality_assets.store import Store


def rescore(home: Path) -> pd.DataFrame:
    store = Store(home)
    truth = home / "demo" / "ground_truth.csv"
    reports = []
    with store.connect() as conn:
        thumbnail_missing(conn)
    for name, config in (("embedding only", ScoreConfig(pixel_evidence=False)), ("with pixels", ScoreConfig())):
        with store.connect() as conn:
            started = time.perf_counter()
            run_scores(conn, config)
            seconds = time.perf_counter() - started
        report = detection_report(store, truth)
        reports.append(report.assign(home=home.name, evidence=name, score_seconds=round(seconds, 1)))
    return pd.concat(reports, ignore_index=True)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    frames = [rescore(Path(h)) for h in argv]
    table = pd.concat(frames, ignore_index=True)
    columns = ["home", "evidence", "issue_type", "AP", "AUROC", "recall@n", "P@50", "effort90", "score_seconds"]
    print(table[columns].to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
