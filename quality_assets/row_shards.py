"""Embeddings, thumbnails and kNN edges as Parquet shards that DuckDB reads (`QUALITY_ROW_STORAGE=parquet`).

The three bulk tables hold nearly all of a home's bytes (155 MB of 384-d vectors and 1.6M edge rows
per 100k images), and in the default layout every row of them travels into the one DuckDB file
through its one writer. With Parquet row storage they are files instead:

    <home>/shards/<table>/<key>/<uuid>.parquet     one file per written chunk (key: the model
                                                   version, thumbnail size or graph version)

and `embeddings`, `thumbnails` and `knn_edges` become views of the same names over the listed files,
so every query, the app, the report and a user's own SQL read them unchanged. A file is written
whole (temporary name, then a rename) before the transaction that lists it in `row_shards` and
re-points the view; a crash or a rollback leaves at most a file nothing lists, which `qaudit prune`
removes. Paths in the views are relative to the home: connections of `Store` resolve them there
(DuckDB's `file_search_path`); the `duckdb` shell does when started in the home.

A home's layout is what its database says (a view named `embeddings` means shards). Asking for the
other layout converts the home in one transaction, rows and all, either way.

Pure storage code: no Dagster here.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from quality_assets.store import check_row_storage, fault_point, load_sql, run_query

SHARDS_DIR = "shards"
PARTIAL = ".partial"  # a shard file being written; listed (and read) only once renamed
COMPACT_ROWS = 1 << 20  # rows per file that `qaudit prune` merges a key's small shards up to


@dataclass(frozen=True)
class RowTable:
    """One bulk table: the column that keys its shards and the named queries that write it."""

    name: str
    key: str
    insert_query: str  # the table layout's write (reads _new_rows)
    replaces: bool = False  # a write replaces the key's rows (knn_edges) instead of adding the new ones


ROW_TABLES = {
    "embeddings": RowTable("embeddings", "model_version", "insert_embeddings"),
    "thumbnails": RowTable("thumbnails", "size", "insert_thumbnails"),
    "knn_edges": RowTable("knn_edges", "graph_version", "replace_knn_edges", replaces=True),
}
# A partial file younger than this may be a Ray worker's write in progress: prune leaves it.
PARTIAL_GRACE_S = 3600.0


def _database(conn: duckdb.DuckDBPyConnection) -> str:
    return str(run_query(conn, "database_path").path[0])


def home_of(conn: duckdb.DuckDBPyConnection) -> Path:
    """The quality home: the folder of the database file."""
    return Path(_database(conn)).parent


def is_sharded(conn: duckdb.DuckDBPyConnection) -> bool:
    # Asked each time (a millisecond): another process may have converted the home meanwhile.
    return bool(run_query(conn, "row_storage_is_sharded").sharded[0])


def row_storage(conn: duckdb.DuckDBPyConnection) -> str:
    return "parquet" if is_sharded(conn) else "duckdb"


def ensure_row_storage(conn: duckdb.DuckDBPyConnection, wanted: str | None) -> str:
    """Convert the home to the wanted layout when it has the other one; returns the layout it has."""
    wanted = check_row_storage(wanted)
    current = row_storage(conn)
    if wanted is None or wanted == current:
        return current
    stale: list[str] = []
    conn.execute("BEGIN TRANSACTION")
    try:
        if wanted == "parquet":
            for table in ROW_TABLES.values():
                _table_to_shards(conn, table)
        else:
            stale = _shards_to_tables(conn)
        fault_point("row_storage:converted")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _remove_files(home_of(conn), stale)
    return wanted


def write_rows(conn: duckdb.DuckDBPyConnection, table: str, key: object, rows: pa.Table) -> None:
    """Add `rows` (the table's columns without its key) under `key`, inside the caller's transaction.

    Embeddings and thumbnails keep rows already stored for a sample (as the tables' primary keys
    do); a graph version's edges replace that version's earlier edges.
    """
    spec = ROW_TABLES[table]
    conn.register("_new_rows", rows)
    try:
        if not is_sharded(conn):
            run_query(conn, spec.insert_query, **{spec.key: key})
            return
        fault_point(f"before:{spec.insert_query}")
        if spec.replaces:
            run_query(conn, "unlist_row_shards", table_name=table, shard_key=str(key))
        written = _write_shard(conn, table, str(key), load_sql(f"shards/{table}_new_rows"), {spec.key: key})
    finally:
        conn.unregister("_new_rows")
    if written or spec.replaces:
        _point_view(conn, table)
    fault_point(f"after:{spec.insert_query}")


def shard_folder(table: str, key: object) -> str:
    """Where a table's shards of one key are, relative to the home (workers write theirs there)."""
    return (Path(SHARDS_DIR) / table / _safe(str(key))).as_posix()


def partial_name(folder: str) -> str:
    """A new shard's name while it is being written: nothing lists or reads it until it is adopted."""
    return f"{folder}/{uuid.uuid4().hex}.parquet{PARTIAL}"


def adopt_shard(conn: duckdb.DuckDBPyConnection, table: str, key: object, partial: str) -> int:
    """List a shard file another process wrote whole (a Ray worker, under `shard_folder` and
    `partial_name`), inside the caller's transaction; returns its new rows.

    The vectors never travel to this process: only when some of the file's samples are already
    stored (a retried batch) are its other rows read and written again, as `write_rows` would.
    """
    spec = ROW_TABLES[table]
    if spec.replaces or not is_sharded(conn):
        raise ValueError(f"adopt_shard: {table} rows are added by key in a sharded home only")
    home = home_of(conn)
    source = home / partial
    if not partial.endswith(PARTIAL) or not source.is_file():
        raise FileNotFoundError(f"no worker shard file at {source}")
    path = str(source).replace("'", "''")
    fields = {"table": table, "key": spec.key, "path": path}
    overlap = int(conn.execute(_template("adopt_overlap", **fields), {"shard_key": str(key)}).fetchone()[0])
    if overlap:
        written = _write_shard(conn, table, str(key), _template("adopt_new_rows", **fields), {"shard_key": str(key)})
        source.unlink()
        if written:
            _point_view(conn, table)
        return written
    final = partial[: -len(PARTIAL)]
    n_rows = pq.ParquetFile(source).metadata.num_rows
    os.replace(source, home / final)
    run_query(conn, "list_row_shard", table_name=table, shard_key=str(key), path=final, n_rows=n_rows)
    _point_view(conn, table)
    return n_rows


def delete_keys(conn: duckdb.DuckDBPyConnection, table: str, keys_table: str) -> None:
    """Delete the rows of every key a temp table lists (its column named as the table's key), inside
    the caller's transaction. Shard files stay until `remove_unlisted_shards` (after the commit)."""
    spec = ROW_TABLES[table]
    if not is_sharded(conn):
        conn.execute(_template("delete_keys", table=table, key=spec.key, keys=keys_table))
        return
    keys = [k for (k,) in conn.execute(_template("keys_of", key=spec.key, keys=keys_table)).fetchall()]
    for key in keys:
        run_query(conn, "unlist_row_shards", table_name=table, shard_key=key)
    if keys:
        _point_view(conn, table)


def compact_shards(conn: duckdb.DuckDBPyConnection, target_rows: int = COMPACT_ROWS) -> int:
    """Merge each key's small shard files (one per written chunk) into files of up to `target_rows`
    rows, oldest first, inside the caller's transaction; returns how many files were merged away.
    The merged files stay on disk, unlisted, until `remove_unlisted_shards` (after the commit)."""
    if not is_sharded(conn):
        return 0
    shards = run_query(conn, "row_shards_by_key")
    merged, touched = 0, set()
    for (table, key), files in shards.groupby(["table_name", "shard_key"], sort=False):
        groups, current, rows = [], [], 0
        for path, n_rows in zip(files.path, files.n_rows):
            if current and rows + int(n_rows) > target_rows:
                groups.append(current)
                current, rows = [], 0
            current.append(path)
            rows += int(n_rows)
        groups.append(current)
        for group in (g for g in groups if len(g) > 1):
            _write_shard(conn, table, key, _template("merge_rows", files=_file_list(group)), {})
            for path in group:
                run_query(conn, "unlist_row_shard", path=path)
            merged += len(group)
            touched.add(table)
    for table in touched:
        _point_view(conn, table)
    return merged


def remove_unlisted_shards(conn: duckdb.DuckDBPyConnection) -> int:
    """Delete shard files that `row_shards` does not list (replaced, pruned, merged, or left by a
    crash); a worker's partial file is left for an hour, as its write may still be going on."""
    import time

    home = home_of(conn)
    root = home / SHARDS_DIR
    if not root.is_dir():
        return 0
    listed = set(run_query(conn, "listed_row_shards").path)
    now = time.time()
    stale = [path.relative_to(home).as_posix() for path in root.rglob("*")
             if path.is_file() and path.relative_to(home).as_posix() not in listed
             and not (PARTIAL in path.name and now - path.stat().st_mtime < PARTIAL_GRACE_S)]
    _remove_files(home, stale)
    return len(stale)


def _template(name: str, **identifiers: str) -> str:
    """A statement of `sql/shards/` with its table, key or file names filled in (names this module
    chooses, never user input: DuckDB binds no parameters in identifiers, COPY targets or DDL)."""
    sql = load_sql(f"shards/{name}")
    for field, value in identifiers.items():
        sql = sql.replace("{" + field + "}", value)
    return sql


def _write_shard(conn: duckdb.DuckDBPyConnection, table: str, key: str | None, rows_sql: str,
                 params: dict) -> int:
    """Write the query's rows as one shard file of `table` and list it; returns its rows (no file
    when there are none, except the empty file that keeps a view's columns)."""
    home = home_of(conn)
    folder = Path(SHARDS_DIR) / table / _safe(key if key is not None else "_columns")
    (home / folder).mkdir(parents=True, exist_ok=True)
    relative = (folder / f"{uuid.uuid4().hex}.parquet").as_posix()
    partial = home / (relative + PARTIAL)
    statement = _template("write_shard", rows=rows_sql.strip().rstrip(";"), path=str(partial).replace("'", "''"))
    used = {name: value for name, value in params.items() if f"${name}" in statement}
    n_rows = int(conn.execute(statement, used).fetchone()[0])
    if n_rows == 0 and key is not None:
        partial.unlink(missing_ok=True)
        return 0
    os.replace(partial, home / relative)
    run_query(conn, "list_row_shard", table_name=table, shard_key=key, path=relative, n_rows=n_rows)
    return n_rows


def _file_list(paths) -> str:
    """Paths as a DuckDB list literal, for read_parquet in a view or a COPY."""
    return "[" + ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths) + "]"


def _point_view(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    files = run_query(conn, "row_shards_of_table", table_name=table).path.tolist()
    conn.execute(_template(f"{table}_view", files=_file_list(files)))


def _table_to_shards(conn: duckdb.DuckDBPyConnection, table: RowTable) -> None:
    """Move a table's rows into one shard per key, plus an empty one that keeps the view's columns."""
    name, key = table.name, table.key
    _write_shard(conn, name, None, _template("table_no_rows", table=name), {})
    for (shard_key,) in conn.execute(_template("table_keys", table=name, key=key)).fetchall():
        _write_shard(conn, name, shard_key, _template("table_rows", table=name, key=key), {"shard_key": shard_key})
    conn.execute(_template("drop_table", table=name))
    _point_view(conn, name)


def _shards_to_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Load every table's listed shards back into tables; returns the files no longer listed."""
    files = run_query(conn, "listed_row_shards").path.tolist()
    for name in ROW_TABLES:
        conn.execute(_template("view_to_table", table=name))
    conn.execute(load_sql("schema"))  # the tables as a new home has them, with their keys
    for name in ROW_TABLES:
        conn.execute(_template("restore_table", table=name))
    run_query(conn, "unlist_all_row_shards")
    return files


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key) or "_"


def _remove_files(home: Path, relative_paths: list[str]) -> None:
    for relative in relative_paths:
        path = home / relative
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
