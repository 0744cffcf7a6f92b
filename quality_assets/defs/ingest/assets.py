"""raw_manifest: scan drops into the append-only manifest."""


import math
import time
from dataclasses import asdict

import dagster as dg

from quality_assets.defs.metadata import markdown_table
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.ingest import ingest_drop
from quality_assets.store import run_query


class IngestConfig(dg.Config):
    """Which drops to ingest. No data_root: nothing new, the existing manifest is re-validated."""

    data_root: str = ""  # a local folder, or an object-store URL such as s3://bucket/prefix
    drops: list[str] = []  # folders relative to data_root; empty = data_root itself is the drop
    max_pixels: int = 40_000_000
    max_bytes: int = 256 * 2**20
    workers: int = 1  # processes; 1: this one, which reads large local files on threads (scan.INSPECT_THREADS)


@dg.asset(
    group_name="ingest",
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    description="Append-only table of accepted samples with hashes and cheap image properties; "
    "unreadable or invalid files go to rejected_samples with a reason.",
)
def raw_manifest(
    context: dg.AssetExecutionContext, config: IngestConfig, store: QualityStoreResource
) -> dg.MaterializeResult:
    quality_store = store.store()
    summaries = []
    if config.data_root:
        for drop in config.drops or ["."]:
            # The store, not an open connection: files are decoded with the database unlocked.
            summary = ingest_drop(
                quality_store, config.data_root, drop, max_pixels=config.max_pixels,
                max_bytes=config.max_bytes, workers=config.workers,
                progress=_log_progress(context, drop),
            )
            for part in [*summary.nested, summary]:
                context.log.info(
                    f"drop {part.drop_id}: {part.n_new} new, {part.n_already_present} already "
                    f"present, {part.n_superseded} superseded, {part.n_rejected} rejected "
                    f"{part.rejected_by_reason}"
                )
            summaries.extend([*summary.nested, summary])
    with quality_store.connect() as conn:
        version = run_query(conn, "manifest_version")
        counts = run_query(conn, "manifest_counts")
        rejected = run_query(conn, "rejected_examples")
        preview = run_query(conn, "manifest_preview")
        superseded = run_query(conn, "superseded_counts")

    n_samples = int(version.n_samples[0])
    manifest_version = str(version.manifest_version[0])
    split_counts = counts.groupby("split").n.sum().to_dict()
    return dg.MaterializeResult(
        data_version=dg.DataVersion(manifest_version),
        metadata={
            "dagster/row_count": n_samples,
            "manifest_version": manifest_version,
            "new_samples": sum(s.n_new for s in summaries),
            "rejected_in_this_run": sum(s.n_rejected for s in summaries),
            "rejected_total": int(rejected.n.sum()) if len(rejected) else 0,
            "rejected_by_reason": markdown_table(rejected),
            "superseded_by_reason": markdown_table(superseded),
            "samples_per_split": dg.MetadataValue.json({k: int(v) for k, v in split_counts.items()}),
            "samples_per_split_and_label": markdown_table(counts, max_rows=60),
            "drops_ingested": dg.MetadataValue.json(
                [{k: v for k, v in asdict(s).items() if k != "nested"} for s in summaries]),
            "preview": markdown_table(preview),
        },
    )


# Between the first and the last line, a quarter's progress is told only this long after the line before:
# each line is an event Dagster writes to its log (about 10 ms), and a small drop scans in a blink.
PROGRESS_EVERY_S = 5.0


def _log_progress(context: dg.AssetExecutionContext, drop: str):
    state = {"next": 0.0, "told": -math.inf}

    def report(done: int, total: int) -> None:
        if not total or done / total < state["next"]:
            return
        now = time.monotonic()
        if done in (0, total) or now - state["told"] >= PROGRESS_EVERY_S:
            context.log.info(f"scanning {drop}: {done}/{total} files")
            state["told"] = now
        state["next"] = math.floor(done / total * 4 + 1) / 4

    return report
