"""The DuckDB store: one database file per quality home, schema and queries from `sql/`.

Layout of a quality home (`$QUALITY_HOME`, default `.quality_home` in the working directory):
    quality.duckdb        every table and the public views
    artifacts/            model checkpoints and other large binaries, referenced by content hash
    shards/               with QUALITY_ROW_STORAGE=parquet: embeddings, thumbnails and kNN edges
                          as Parquet files that views in quality.duckdb read (row_shards.py)
    dagster/              the Dagster instance (DAGSTER_HOME) used by the CLI and `make ui`

DuckDB allows one writing process at a time. Dagster serialises writers with a pool of limit 1;
connections here also retry briefly on a lock held by another process (a CLI reading while the
daemon writes), instead of failing at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

if TYPE_CHECKING:  # pyarrow is imported lazily where it is used
    import pyarrow as pa  # noqa: F401

DB_FILENAME = "quality.duckdb"
SQL_DIR_ENV = "QUALITY_SQL_DIR"
HOME_ENV = "QUALITY_HOME"
LOCK_RETRY_SECONDS = 60.0
# Fault injection for the crash-safety tests: the process SIGKILLs itself at the named point (e.g.
# "before:insert_knn_graph", "after:upsert_drop", "train:start"); "NAME@N" at its N-th passage.
FAULT_ENV = "QUALITY_FAULT_POINT"
# Row storage of the bulk tables: "duckdb" (tables in the file, a new home's default) or "parquet"
# (shard files under <home>/shards read through views; quality_assets.row_shards).
ROW_STORAGE_ENV = "QUALITY_ROW_STORAGE"
ROW_STORAGES = ("duckdb", "parquet")
_fault_passes: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here, as a power cut would, when $QUALITY_FAULT_POINT names this point."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _fault_passes[name] = _fault_passes.get(name, 0) + 1
    if _fault_passes[name] >= int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def sql_dir() -> Path:
    override = os.environ.get(SQL_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "sql"


@lru_cache(maxsize=None)
def load_sql(name: str) -> str:
    """Text of `sql/<name>.sql` or `sql/queries/<name>.sql`."""
    for candidate in (sql_dir() / f"{name}.sql", sql_dir() / "queries" / f"{name}.sql"):
        if candidate.is_file():
            return candidate.read_text()
    raise FileNotFoundError(f"no SQL file named {name!r} under {sql_dir()}")


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or ".quality_home").resolve()


def check_row_storage(value: str | None) -> str | None:
    """A row storage name (None: keep the home's layout), or a ValueError naming where it is set."""
    if value is not None and value not in ROW_STORAGES:
        raise ValueError(f"row storage must be one of {', '.join(ROW_STORAGES)}, got {value!r} "
                         f"(from {ROW_STORAGE_ENV} or the store's row_storage)")
    return value


class Store:
    """Paths of a quality home and connections to its database."""

    def __init__(self, home: str | os.PathLike[str] | None = None, row_storage: str | None = None) -> None:
        self.home = Path(home).resolve() if home else default_home()
        self.db_path = self.home / DB_FILENAME
        self.artifacts_dir = self.home / "artifacts"
        # How embeddings, thumbnails and kNN edges are kept (quality_assets.row_shards): None keeps
        # the home's layout (a new home: tables in the DuckDB file); "parquet" or "duckdb" converts.
        self.row_storage = check_row_storage(row_storage or os.environ.get(ROW_STORAGE_ENV) or None)

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    def ensure_layout(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the schema applied (write mode) or an existing database (read mode)."""
        if read_only and not self.db_path.exists():
            raise FileNotFoundError(
                f"no quality database at {self.db_path}; run `qaudit audit DATA_DIR --home {self.home}` first"
            )
        self.ensure_layout()
        conn = _connect_with_retry(self.db_path, read_only)
        try:
            self.configure(conn)
            if not read_only:
                apply_schema(conn)
                if self.row_storage is not None:
                    from quality_assets.row_shards import ensure_row_storage

                    ensure_row_storage(conn, self.row_storage)
            yield conn
        finally:
            conn.close()

    def configure(self, conn: duckdb.DuckDBPyConnection) -> None:
        """What every connection to this home needs: shard files' relative paths resolve in the home."""
        conn.execute(load_sql("shards/search_path").replace("{home}", str(self.home).replace("'", "''")))

    def query(self, name: str, read_only: bool = True, **params: object) -> pd.DataFrame:
        """Run the named query from `sql/queries/` and return a DataFrame."""
        with self.connect(read_only=read_only) as conn:
            return run_query(conn, name, **params)


@contextmanager
def session(target: "Store | duckdb.DuckDBPyConnection") -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection for one short piece of work.

    Given a Store, the connection (and with it DuckDB's file lock) lives only for the `with`
    block, so readers in other processes get in between; given an open connection, that one is
    used as is (tests, and callers that already hold one).
    """
    if isinstance(target, Store):
        with target.connect() as conn:
            yield conn
    else:
        yield target


def record_superseded(conn: duckdb.DuckDBPyConnection, rows) -> int:
    """Take samples out of the active manifest.

    `rows`: a frame of sample_id, reason, detail, superseded_by, or a mapping sample_id -> an
    error with `reason` and `detail` (imaging.SampleChanged, from a read after ingest).
    """
    if not isinstance(rows, pd.DataFrame):
        rows = pd.DataFrame(
            [{"sample_id": sid, "reason": err.reason, "detail": err.detail, "superseded_by": None}
             for sid, err in dict(rows).items()],
            columns=["sample_id", "reason", "detail", "superseded_by"])
    if rows.empty:
        return 0
    frame = rows.reindex(columns=["sample_id", "reason", "detail", "superseded_by"])
    conn.register("_superseded", frame)
    try:
        run_query(conn, "supersede_samples")
    finally:
        conn.unregister("_superseded")
    return len(frame)


def schema_digest() -> str:
    """A hash of the schema and view definitions this code writes."""
    return hashlib.sha256((load_sql("schema") + "\0" + load_sql("views")).encode()).hexdigest()[:16]


def apply_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create or upgrade the tables and views, unless this database already has exactly this
    schema: the DDL costs about as much as opening the file, and a run opens it dozens of times."""
    digest = schema_digest()
    try:
        applied = conn.execute(load_sql("schema_digest")).fetchall()
    except duckdb.CatalogException:  # a new database, or one from before the digest was kept
        applied = []
    if applied == [(digest,)]:
        return
    conn.execute(load_sql("schema"))
    conn.execute(load_sql("views"))
    run_query(conn, "record_schema_digest", digest=digest)


def run_query(conn: duckdb.DuckDBPyConnection, name: str, **params: object) -> pd.DataFrame:
    """Run a named SQL file; returns the last statement's result (empty frame if it has none)."""
    sql = load_sql(name)
    fault_point(f"before:{name}")
    if not params:
        result = conn.execute(sql)
        frame = result.df() if result.description else pd.DataFrame()
        fault_point(f"after:{name}")
        return frame
    # DuckDB binds parameters only in the last statement of a multi-statement string.
    result = None
    for statement in _statements(sql):
        used = {key: value for key, value in params.items() if f"${key}" in statement}
        result = conn.execute(statement, used) if used else conn.execute(statement)
    frame = result.df() if result is not None and result.description else pd.DataFrame()
    fault_point(f"after:{name}")
    return frame


@lru_cache(maxsize=None)
def _statements_cached(sql: str) -> tuple[str, ...]:
    statements, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            statement = "\n".join(current).strip()
            if _has_code(statement):
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if _has_code(tail):
        statements.append(tail)
    return tuple(statements)


def _has_code(statement: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())


def _statements(sql: str) -> tuple[str, ...]:
    return _statements_cached(sql)


# Told once per connection attempt that has to wait for another process's lock (the CLI prints it).
lock_wait_notice: "Callable[[str], None] | None" = None


def _connect_with_retry(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    delay = 0.05
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            # Another process holds the write lock; writers hold it only for short transactions.
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            if lock_wait_notice is not None and not told and delay >= 0.4:
                holder = re.search(r"PID \d+", str(error))
                lock_wait_notice(f"waiting for the lock on {path} held by another process"
                                 f"{' (' + holder.group(0) + ')' if holder else ''}; Ctrl-C to stop")
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def run_query_arrow(conn: duckdb.DuckDBPyConnection, name: str, **params: object) -> "pa.Table":
    """The named query as an Arrow table (list columns stay columnar: no per-row Python objects)."""
    return conn.sql(load_sql(name), params=params or None).to_arrow_table()


def insert_df(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Insert a DataFrame by column name (columns absent from the frame get their defaults/NULL)."""
    if frame.empty:
        return 0
    conn.register("_insert_frame", frame)
    try:
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _insert_frame")
    finally:
        conn.unregister("_insert_frame")
    return len(frame)


def vectors_to_arrow(sample_ids: list[str], vectors) -> "pa.Table":
    """(sample_id, vector FLOAT[]) rows without a Python loop over vectors."""
    import numpy as np
    import pyarrow as pa

    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(matrix.reshape(-1))
    offsets = pa.array(np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32))
    return pa.table({"sample_id": pa.array(sample_ids, pa.string()),
                     "vector": pa.ListArray.from_arrays(offsets, flat)})


def arrow_to_vectors(table: "pa.Table", column: str = "vector"):
    """float32 [N, d] matrix from a list column, in row order."""
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    values = table.column(column).combine_chunks()
    flat = pc.list_flatten(values).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(table.num_rows, -1)
