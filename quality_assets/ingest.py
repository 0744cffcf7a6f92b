"""Append a scanned drop to the manifest: new samples only, rejected rows replaced per drop.

Re-ingesting a drop is idempotent: samples already present (same sample_id) are skipped, and the
drop's rejected rows are rewritten rather than appended. A path that is already in the manifest
with different content is not overwritten (the manifest is append-only); it is rejected with the
reason `path_changed`, so a person sees that the file changed under the same name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from quality_assets.scan import ScanResult, scan_drop
from quality_assets.store import insert_df, run_query

MANIFEST_COLUMNS = [
    "sample_id", "drop_id", "path", "label", "labels", "split", "width", "height", "mode", "bytes",
    "file_sha256", "pixel_sha256", "is_grayscale", "brightness_p05", "brightness_p50",
    "brightness_p95", "entropy", "blur_score", "edge_strength", "aspect_ratio", "phash", "dhash",
]
REJECTED_COLUMNS = ["drop_id", "path", "reason", "detail"]


@dataclass
class IngestSummary:
    drop_id: str
    layout: str
    n_accepted: int
    n_new: int
    n_already_present: int
    n_rejected: int
    rejected_by_reason: dict[str, int]


def drop_id_for(data_root: Path, drop_dir: Path) -> str:
    """A readable, stable id: the drop folder's name plus a short hash of its location."""
    relative = drop_dir.resolve().relative_to(data_root.resolve()).as_posix()
    name = drop_dir.resolve().name if relative != "." else data_root.resolve().name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "root"
    digest = hashlib.sha256(f"{data_root.resolve().as_posix()}\0{relative}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def ingest_drop(
    conn: duckdb.DuckDBPyConnection,
    data_root: Path,
    drop_dir: Path,
    *,
    drop_id: str | None = None,
    max_pixels: int = 40_000_000,
    max_bytes: int = 256 * 2**20,
    workers: int = 1,
    progress=None,
) -> IngestSummary:
    data_root = Path(data_root).resolve()
    drop_dir = Path(drop_dir)
    if not drop_dir.is_absolute():
        drop_dir = data_root / drop_dir
    drop_dir = drop_dir.resolve()
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root {data_root} is not a folder")
    if not drop_dir.is_dir():
        raise FileNotFoundError(f"drop {drop_dir} is not a folder")
    if not drop_dir.is_relative_to(data_root):
        raise ValueError(f"drop {drop_dir} is outside the data root {data_root}")
    drop_id = drop_id or drop_id_for(data_root, drop_dir)

    registered = run_query(conn, "drop_root", drop_id=drop_id)
    if not registered.empty and Path(registered.data_root[0]) != data_root:
        raise ValueError(
            f"drop {drop_id} was ingested from data root {registered.data_root[0]}, not {data_root}"
        )

    scan = scan_drop(data_root, drop_dir, drop_id, max_pixels=max_pixels, max_bytes=max_bytes,
                     workers=workers, progress=progress)
    accepted, rejected = _split_known(conn, scan)

    conn.execute("BEGIN TRANSACTION")
    try:
        new_rows = accepted[MANIFEST_COLUMNS].copy()
        new_rows["ingested_at"] = pd.Timestamp.now()
        # Drop registration must exist before its samples so the manifest view can join roots.
        run_query(
            conn, "upsert_drop", drop_id=drop_id, data_root=data_root.as_posix(),
            drop_dir=drop_dir.relative_to(data_root).as_posix(), layout=scan.layout,
            n_accepted=len(scan.accepted) - int((rejected.reason == "path_changed").sum()),
            n_rejected=len(rejected), n_new=len(new_rows),
        )
        insert_df(conn, "raw_manifest", new_rows)
        run_query(conn, "delete_rejected_for_drop", drop_id=drop_id)
        rejected_rows = rejected[REJECTED_COLUMNS].copy()
        rejected_rows["rejected_at"] = pd.Timestamp.now()
        insert_df(conn, "rejected_samples", rejected_rows)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise

    by_reason = rejected.reason.value_counts().to_dict() if len(rejected) else {}
    return IngestSummary(
        drop_id=drop_id, layout=scan.layout,
        n_accepted=len(scan.accepted) - by_reason.get("path_changed", 0),
        n_new=len(new_rows), n_already_present=len(scan.accepted) - len(new_rows) - by_reason.get("path_changed", 0),
        n_rejected=len(rejected), rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
    )


def _split_known(conn: duckdb.DuckDBPyConnection, scan: ScanResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New accepted rows, and the rejected rows extended by paths whose content changed."""
    accepted = scan.accepted
    rejected = scan.rejected.copy()
    if accepted.empty:
        return accepted.iloc[0:0], rejected
    conn.register("_candidate_paths", accepted[["path"]])
    try:
        existing = run_query(conn, "existing_paths_for")
    finally:
        conn.unregister("_candidate_paths")
    known = dict(zip(existing.path, existing.sample_id))
    same = accepted.path.map(known) == accepted.sample_id
    changed = accepted.path.isin(known.keys()) & ~same
    if changed.any():
        changed_rows = pd.DataFrame({
            "drop_id": accepted.loc[changed, "drop_id"],
            "path": accepted.loc[changed, "path"],
            "reason": "path_changed",
            "detail": "path already in the manifest with different content; the manifest is append-only",
        })
        rejected = pd.concat([rejected, changed_rows], ignore_index=True)
    return accepted[~same & ~changed].reset_index(drop=True), rejected
