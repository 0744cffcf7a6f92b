"""Append a scanned drop to the manifest: new samples only, rejected rows replaced per drop.

Re-ingesting a drop is idempotent: samples already present (same bytes at the same path under the
same data root) are skipped, and the drop's rejected rows are rewritten rather than appended. A
path that now holds other bytes gets a new sample; the manifest stays append-only and the old row
is recorded in `superseded_samples` (reason `content_changed`), which takes it out of the active
manifest, the scores and the cleaned split. Restored bytes reinstate their old sample.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pandas as pd

from quality_assets.data_roots import RemoteRoot, is_remote
from quality_assets.scan import ACCEPTED_COLUMNS, ScanResult, printable, scan_drop
from quality_assets.store import Store, fault_point, insert_df, record_superseded, run_query, session

# Every column the scan accepts (the inspect keys follow imaging.INSPECT_KEYS, so a new property
# reaches the manifest without a second list to edit).
MANIFEST_COLUMNS = list(ACCEPTED_COLUMNS)
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
    n_superseded: int = 0  # older rows at the same paths that the new content replaced
    nested: list["IngestSummary"] = field(default_factory=list)  # drops registered inside this one


def drop_id_for(data_root: Path | str, drop_dir: Path | str) -> str:
    """A readable, stable id: the drop folder's name plus a short hash of its location."""
    root, relative, _ = _locate_drop(data_root, drop_dir)
    return _drop_id(root, relative)


def _drop_id(root: str, relative: str) -> str:
    name = PurePosixPath(relative).name if relative != "." else PurePosixPath(root.split("://")[-1]).name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "root"
    location = f"{root}\0{relative}".encode("utf-8", "surrogateescape")
    return f"{slug}-{hashlib.sha256(location).hexdigest()[:8]}"


def _locate_drop(data_root: Path | str, drop_dir: Path | str) -> tuple[str, str, Callable[[str], bool]]:
    """(the root as stored, the drop's posix path in it or ".", whether a folder in the root exists).

    Raises FileNotFoundError / ValueError for a root or drop that is not a folder, or a drop
    outside its root. The root may be an object-store URL (`data_roots`).
    """
    if is_remote(str(data_root)):
        root = RemoteRoot(str(data_root))
        rel = root.folder_in(str(drop_dir))
        if not root.is_folder(""):
            raise FileNotFoundError(f"data root {root.url} is not a folder (no objects under it)")
        if not root.is_folder(rel):
            raise FileNotFoundError(f"drop {root.url_of(rel)} is not a folder")
        return root.url, rel or ".", root.is_folder
    local_root = Path(data_root).resolve()
    drop_path = Path(drop_dir)
    if not drop_path.is_absolute():
        drop_path = local_root / drop_path
    drop_path = drop_path.resolve()
    if not local_root.is_dir():
        raise FileNotFoundError(f"data root {local_root} is not a folder")
    if not drop_path.is_dir():
        raise FileNotFoundError(f"drop {drop_path} is not a folder")
    if not drop_path.is_relative_to(local_root):
        raise ValueError(f"drop {drop_path} is outside the data root {local_root}")
    return local_root.as_posix(), drop_path.relative_to(local_root).as_posix(), lambda rel: (local_root / rel).is_dir()


def ingest_drop(
    target: Store | duckdb.DuckDBPyConnection,
    data_root: Path | str,
    drop_dir: Path | str,
    *,
    drop_id: str | None = None,
    max_pixels: int = 40_000_000,
    max_bytes: int = 256 * 2**20,
    workers: int = 1,
    progress=None,
) -> IngestSummary:
    """Scan a drop and append it; the write transaction is held only for the final insert.

    `target` is a Store (a connection is opened only around the reads before the scan and the
    write after it, so other processes can read the database while files are decoded) or an
    open connection. `data_root` is a local folder or an object-store URL; `drop_dir` is inside it
    (absolute, a URL, or relative to it).

    Drops registered earlier inside this one (e.g. `--drop d1`, then the whole root) are
    re-ingested as themselves, so a file keeps the drop, layout and sample it was given.
    """
    stored_root, drop_rel, folder_exists = _locate_drop(data_root, drop_dir)
    if printable(stored_root) != stored_root or printable(drop_rel) != drop_rel:
        raise ValueError(f"the data root and drop folder names must be valid UTF-8: {printable(drop_rel)}")
    drop_id = drop_id or _drop_id(stored_root, drop_rel)

    with session(target) as conn:
        registered = run_query(conn, "drop_root", drop_id=drop_id)
        nested_rows = run_query(conn, "nested_drops", data_root=stored_root, drop_dir=drop_rel)
    if not registered.empty and registered.data_root[0] != stored_root:
        raise ValueError(
            f"drop {drop_id} was ingested from data root {registered.data_root[0]}, not {stored_root}"
        )
    nested_summaries = []
    nested_dirs = []
    for nested_id, nested_dir in zip(nested_rows.drop_id, nested_rows.drop_dir):
        if not folder_exists(nested_dir):
            continue  # a nested drop that is gone keeps its samples; nothing here to re-scan
        # Drops nested in a nested drop are handled by its own call.
        if any(nested_dir.startswith(outer + "/") for outer in nested_dirs):
            continue
        nested_dirs.append(nested_dir)
        nested_summaries.append(ingest_drop(
            target, stored_root, nested_dir, drop_id=nested_id, max_pixels=max_pixels,
            max_bytes=max_bytes, workers=workers, progress=progress))

    scan = scan_drop(stored_root, drop_rel, drop_id, max_pixels=max_pixels, max_bytes=max_bytes,
                     workers=workers, progress=progress, nested_drops=tuple(nested_dirs))
    fault_point("ingest:scanned")
    with session(target) as conn:
        plan = _write(conn, scan, drop_id, stored_root, drop_rel)
    rejected = scan.rejected
    by_reason = rejected.reason.value_counts().to_dict() if len(rejected) else {}
    return IngestSummary(
        drop_id=drop_id, layout=scan.layout, n_accepted=len(scan.accepted), n_new=len(plan.new),
        n_already_present=len(scan.accepted) - len(plan.new), n_rejected=len(rejected),
        rejected_by_reason={str(k): int(v) for k, v in by_reason.items()},
        n_superseded=len(plan.superseded), nested=nested_summaries,
    )


def _write(conn: duckdb.DuckDBPyConnection, scan: ScanResult, drop_id: str, root_text: str,
           drop_rel: str) -> "_Plan":
    """One transaction: register the drop, append new rows, supersede/reinstate, replace rejections."""
    conn.execute("BEGIN TRANSACTION")
    try:
        # Planned inside the transaction: another writer cannot slip rows in between.
        plan = _plan(conn, scan, root_text)
        new_rows = plan.new[MANIFEST_COLUMNS].copy()
        new_rows["ingested_at"] = pd.Timestamp.now()
        # Drop registration must exist before its samples so the manifest view can join roots.
        run_query(
            conn, "upsert_drop", drop_id=drop_id, data_root=root_text, drop_dir=drop_rel,
            layout=scan.layout, n_accepted=len(scan.accepted), n_rejected=len(scan.rejected),
            n_new=len(new_rows),
        )
        insert_df(conn, "raw_manifest", new_rows)
        if len(plan.reinstated):
            conn.register("_reinstated", plan.reinstated)
            try:
                run_query(conn, "reinstate_samples")
            finally:
                conn.unregister("_reinstated")
        record_superseded(conn, plan.superseded)
        run_query(conn, "delete_rejected_for_drop", drop_id=drop_id)
        rejected_rows = scan.rejected[REJECTED_COLUMNS].copy()
        rejected_rows["rejected_at"] = pd.Timestamp.now()
        insert_df(conn, "rejected_samples", rejected_rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return plan


@dataclass
class _Plan:
    new: pd.DataFrame          # accepted rows to insert
    superseded: pd.DataFrame   # sample_id, reason, detail, superseded_by
    reinstated: pd.DataFrame   # sample_id


def _plan(conn: duckdb.DuckDBPyConnection, scan: ScanResult, data_root: str) -> _Plan:
    """Which accepted rows are new, and which older rows at the same paths they supersede."""
    accepted = scan.accepted
    empty_superseded = pd.DataFrame(columns=["sample_id", "reason", "detail", "superseded_by"])
    if accepted.empty:
        return _Plan(accepted.iloc[0:0], empty_superseded, pd.DataFrame({"sample_id": []}))
    conn.register("_candidate_paths", accepted[["path"]])
    try:
        existing = run_query(conn, "existing_paths_for", data_root=data_root)
    finally:
        conn.unregister("_candidate_paths")
    by_path = {path: rows for path, rows in existing.groupby("path")}
    new_index, superseded, reinstated = [], [], []
    for index, row in zip(accepted.index, accepted.itertuples(index=False)):
        rows = by_path.get(row.path)
        if rows is None:
            new_index.append(index)
            continue
        # The same bytes at the same path are the same sample, whatever id scheme made its id.
        same = rows[(rows.file_sha256 == row.file_sha256) | (rows.sample_id == row.sample_id)]
        current = rows[~rows.superseded]
        if same.empty:
            new_index.append(index)
            keeper = row.sample_id
        else:
            keeper = str(same.sample_id.iloc[0])
            if bool(same.superseded.iloc[0]):
                reinstated.append(keeper)
        for old in current.sample_id:
            if old != keeper:
                superseded.append({
                    "sample_id": old, "reason": "content_changed",
                    "detail": f"{row.path} now holds other bytes (sha256 {row.file_sha256[:12]})",
                    "superseded_by": keeper,
                })
    return _Plan(
        accepted.loc[new_index].reset_index(drop=True),
        pd.DataFrame(superseded, columns=empty_superseded.columns),
        pd.DataFrame({"sample_id": pd.Series(reinstated, dtype=object)}),
    )
