"""`qaudit export`: the public views as CSV and Parquet files."""

from __future__ import annotations

from pathlib import Path

from quality_assets.store import Store, load_sql

EXPORTS = {"issues": "export_issues", "duplicate_pairs": "export_duplicate_pairs",
           "cleaned_split": "export_cleaned_split"}


def export_views(store: Store, out_dir: Path) -> dict[str, int]:
    """Write <view>.csv and <view>.parquet for each public view; returns row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with store.connect(read_only=True) as conn:
        for name, query in EXPORTS.items():
            relation = conn.sql(load_sql(query))
            relation.write_csv(str(out_dir / f"{name}.csv"), header=True)
            relation.write_parquet(str(out_dir / f"{name}.parquet"))
            counts[name] = int(relation.shape[0])
    return counts
