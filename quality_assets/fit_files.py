"""Files of the fits kept between score runs (`pixel_classifier_fits`, `copy_descriptor_fits`): each
store keeps its rows in a DuckDB table and its arrays and weights under the quality home's
`artifacts/<folder>/`."""

from __future__ import annotations

import hashlib
import json
import os
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
    `keep(fit)` remembers one, `save()` stores it (call it in the score run's transaction) as a row
    and two files under `artifacts/<folder>/`: the fit's rows and its networks. A fit that only added
    rows to the one `latest` read shares that fit's networks file.

    Subclasses set `code_roots` (the modules whose code a fit depends on), `folder`, `latest_query`
    (the newest row of a settings hash), `shared_file` (the column naming the networks file) and
    `shared_suffix` (its file name's ending), and implement `_identity`, `_same_networks`,
    `_write_networks`, `_write_rows`, `_insert` and `_read`."""

    code_roots: tuple[str, ...] = ()
    folder = ""
    latest_query = ""
    shared_file = ""
    shared_suffix = ""

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
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, AttributeError, ImportError,
                pickle.UnpicklingError, zipfile.BadZipFile):
            return None
        self._latest[digest] = (fit, str(row[self.shared_file]))
        return fit

    def keep(self, fit: Any) -> None:
        self._kept = fit

    def save(self) -> str | None:
        """Store the kept fit; returns its id (None when nothing was kept)."""
        fit = self._kept
        if fit is None:
            return None
        digest = self.settings_hash(fit.settings)
        fit_id = hashlib.sha256(b"".join([digest.encode(), *self._identity(fit)])).hexdigest()[:16]
        (self._home / "artifacts" / self.folder).mkdir(parents=True, exist_ok=True)
        earlier = self._latest.get(digest)
        if earlier is not None and self._same_networks(earlier[0], fit):
            shared_path = earlier[1]
        else:
            shared_path = f"artifacts/{self.folder}/{fit_id}{self.shared_suffix}"
            _replace_when_written(self._home / shared_path, ".partial", lambda partial: self._write_networks(partial, fit))
        rows_path = f"artifacts/{self.folder}/{fit_id}.rows.npz"
        # np.savez appends ".npz" to a name without it.
        _replace_when_written(self._home / rows_path, ".partial.npz", lambda partial: self._write_rows(partial, fit))
        self._insert(fit, fit_id=fit_id, settings_hash=digest, rows_path=rows_path, shared_path=shared_path)
        return fit_id

    def _identity(self, fit: Any) -> list[bytes]:
        """What tells this fit from another made under the same settings (its id hashes it)."""
        raise NotImplementedError

    def _same_networks(self, earlier: Any, fit: Any) -> bool:
        raise NotImplementedError

    def _write_networks(self, path: Path, fit: Any) -> None:
        raise NotImplementedError

    def _write_rows(self, path: Path, fit: Any) -> None:
        raise NotImplementedError

    def _insert(self, fit: Any, **paths_and_ids: str) -> None:
        raise NotImplementedError

    def _read(self, home: Path, row) -> Any:
        raise NotImplementedError


def _replace_when_written(path: Path, suffix: str, write) -> None:
    """`write` a partial file beside `path`, then move it onto `path`: a reader never sees half a file."""
    partial = path.with_name(path.name + suffix)
    write(partial)
    os.replace(partial, path)
