"""Files of the fits kept between score runs (`pixel_classifier_fits`, `copy_descriptor_fits`): each
store keeps its rows in a DuckDB table and its arrays and weights under the quality home's
`artifacts/<folder>/`."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import duckdb

from quality_assets.code_version import code_version
from quality_assets.store import run_query

__all__ = ["StoredFits", "quality_home", "remove_unread_files"]


def quality_home(conn: duckdb.DuckDBPyConnection) -> Path:
    """The folder of the connection's database file, which relative artifact paths start from."""
    return Path(str(run_query(conn, "database_path").path[0])).parent


def remove_unread_files(conn: duckdb.DuckDBPyConnection, folder: str, files_query: str) -> int:
    """Delete every file in `artifacts/<folder>` that no stored fit reads (`files_query` lists the
    read paths, relative to the home): a pruned fit's, or a crashed write's. Returns how many."""
    home = quality_home(conn)
    used = {(home / path).resolve() for path in run_query(conn, files_query).path}
    removed = 0
    for path in (home / "artifacts" / folder).glob("*"):
        if path.is_file() and path.resolve() not in used:
            path.unlink()
            removed += 1
    return removed


class StoredFits:
    """A store of one kind of fit: `latest(settings)` reads the newest fit made under these settings
    and this code (None: none, or its files are gone or damaged, so the caller trains a new one),
    `keep(fit)` remembers one for the subclass's `save()` (called in the score run's transaction).

    Subclasses set `code_roots` (the modules whose code a fit depends on), `latest_query` (the newest
    row of a settings hash), `shared_file` (the column of the file a grown fit shares with the fit it
    grew from) and implement `_read(home, row)`."""

    code_roots: tuple[str, ...] = ()
    latest_query = ""
    shared_file = ""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self._conn = conn
        self._home = quality_home(conn)
        self._kept: Any = None
        self._latest: dict[str, tuple[Any, str]] = {}

    def settings_hash(self, settings: dict) -> str:
        """A fit is read back only under the same settings and code."""
        return hashlib.sha256((json.dumps(settings, sort_keys=True)
                               + code_version(*self.code_roots)).encode()).hexdigest()[:16]

    def latest(self, settings: dict) -> Any:
        digest = self.settings_hash(settings)
        found = run_query(self._conn, self.latest_query, settings_hash=digest)
        if found.empty:
            return None
        row = found.iloc[0]
        try:
            fit = self._read(self._home, row)
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile):
            return None
        self._latest[digest] = (fit, str(row[self.shared_file]))
        return fit

    def keep(self, fit: Any) -> None:
        self._kept = fit

    def _read(self, home: Path, row) -> Any:
        raise NotImplementedError
