"""Re-score a `qaudit demo` home under several score configurations and print the detection reports.

Usage: python benchmarks/demo_rescore.py HOME [HOME ...]

HOME is a finished demo home (demo/data, demo/ground_truth.csv, the stored graphs). `run_scores`
runs once per configuration in the same process on the same stored views: no pixel verification
of near-duplicate pairs, the scoring as it was before the property view and confident learning
(`previous`), and the current defaults. Each run is stored as its own score version; the home's
latest run is the default one.
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
    configs = (
        ("no pixel verification", ScoreConfig({"near_duplicate": {"pixel_evidence": False}})),
        ("previous", ScoreConfig({"off_topic": {"property_view": False},
                                  "label_error": {"confident_learning": False, "skip_off_topic": False}})),
        ("current defaults", ScoreConfig()),
    )
    for name, config in configs:
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
