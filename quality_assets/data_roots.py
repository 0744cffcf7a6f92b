"""Where a dataset's files live: a folder on this machine, or an object store named by an fsspec URL.

A data root is either a local folder (stored as its resolved posix path, as before) or a URL such
as `s3://bucket/datasets/pets`, `gs://...` or `az://...` (stored as `protocol://path`, no trailing
slash). Sample paths stay relative to the root in both cases, so every query, export and report
works the same; only the few places that touch bytes ask this module how to reach them.

An object store has no symlinks and no folders of its own: a "folder" is a key prefix, a file is
an object. Keys are listed once per scan, never cached between scans (a sensor must see a new drop).
Credentials and endpoints come from the store's own configuration (environment, instance role,
config files) or, for anything fsspec accepts, from QUALITY_STORAGE_OPTIONS: a JSON object of
protocol -> keyword arguments for `fsspec.filesystem`, e.g. `{"s3": {"endpoint_url": "http://..."}}`.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import threading
from pathlib import Path
from typing import Any

import fsspec

STORAGE_OPTIONS_ENV = "QUALITY_STORAGE_OPTIONS"

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
# Schemes that name this machine's own files: taken as the plain local path.
_LOCAL_SCHEMES = {"file", "local"}


def _split(root: object) -> tuple[str, str] | None:
    if not isinstance(root, str):
        return None
    match = _URL.match(root)
    return (match.group(1).lower(), match.group(2)) if match else None


def is_remote(root: object) -> bool:
    """True when `root` is a URL of an object store (anything but a local path or file:// URL)."""
    parts = _split(root)
    return parts is not None and parts[0] not in _LOCAL_SCHEMES


def root_text(root: str | os.PathLike[str]) -> str:
    """The canonical form of a data root, as stored with its drops.

    A local folder: its resolved posix path. A file:// URL: the same local path. An object store
    URL: `protocol://bucket/prefix` with no trailing slash; a `.` or `..` segment is refused, since
    the root's text is the samples' identity.
    """
    parts = _split(root) if isinstance(root, str) else None
    if parts is None:
        return Path(root).resolve().as_posix()
    protocol, rest = parts
    if protocol in _LOCAL_SCHEMES:
        return Path(rest).resolve().as_posix()
    segments = [s for s in rest.split("/") if s]
    if not segments:
        raise ValueError(f"data root {root!r} names no bucket")
    if any(s in (".", "..") for s in segments):
        raise ValueError(f"data root {root!r} has a '.' or '..' segment")
    return f"{protocol}://{'/'.join(segments)}"


def relative_key(path: str) -> str | None:
    """`path` (relative to a root) as clean posix segments, or None when it would leave the root."""
    cleaned = path.replace("\\", "/")
    if cleaned.startswith("/"):
        return None
    segments = [s for s in cleaned.split("/") if s not in ("", ".")]
    if ".." in segments:
        return None
    return "/".join(segments)


def join(root: str, path: str) -> str:
    """The full location of `path` under `root`: a URL for an object store, else a local path."""
    if is_remote(root):
        rel = relative_key(path)
        if rel is None:
            raise ValueError(f"{path!r} leaves the data root {root}")
        return f"{root.rstrip('/')}/{rel}" if rel else root.rstrip("/")
    return str(Path(root) / path)


_FILESYSTEMS: dict[tuple[str, str], Any] = {}
_FILESYSTEMS_LOCK = threading.Lock()


def storage_options(protocol: str) -> dict[str, Any]:
    """The keyword arguments for `protocol`'s filesystem from QUALITY_STORAGE_OPTIONS ({} if unset)."""
    text = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{STORAGE_OPTIONS_ENV} is not JSON: {exc}") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"{STORAGE_OPTIONS_ENV} must be a JSON object of protocol -> options object")
    return dict(options.get(protocol, {}))


def filesystem(protocol: str):
    """One fsspec filesystem per protocol and options text, shared by the process's threads."""
    key = (protocol, os.environ.get(STORAGE_OPTIONS_ENV, ""))
    with _FILESYSTEMS_LOCK:
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = fsspec.filesystem(protocol, **storage_options(protocol))
        return _FILESYSTEMS[key]


class RemoteRoot:
    """An object-store data root: its objects by path relative to the root."""

    def __init__(self, root: str) -> None:
        self.url = root_text(root)
        if not is_remote(self.url):
            raise ValueError(f"{root!r} is not an object-store URL")
        self.protocol, self._base = self.url.split("://", 1)
        self.fs = filesystem(self.protocol)

    def _key(self, path: str) -> str:
        rel = relative_key(path)
        if rel is None:
            raise ValueError(f"{path!r} leaves the data root {self.url}")
        return f"{self._base}/{rel}" if rel else self._base

    def url_of(self, path: str) -> str:
        return join(self.url, path)

    def folder_in(self, folder: str) -> str:
        """`folder` (a URL inside this root, or a path relative to it) as a path relative to the
        root ("" for the root itself); ValueError when it lies outside."""
        if is_remote(folder):
            url = root_text(folder)
            if url != self.url and not url.startswith(self.url + "/"):
                raise ValueError(f"{folder} is not inside the data root {self.url}")
            return url[len(self.url):].lstrip("/")
        rel = relative_key(folder)
        if rel is None:
            raise ValueError(f"{folder} resolves outside the data root {self.url}")
        return rel

    def files_under(self, folder: str = "") -> dict[str, dict[str, Any]]:
        """Every object below `folder`, path relative to the root -> its listing entry (with `size`).

        Listed afresh: a cached listing would hide objects written since the last call.
        """
        key = self._key(folder)
        self.fs.invalidate_cache(key)
        try:
            found = self.fs.find(key, withdirs=False, detail=True)
        except FileNotFoundError:
            return {}
        prefix = self._base + "/"
        out: dict[str, dict[str, Any]] = {}
        for name, entry in found.items():
            name = name.lstrip("/")
            if entry.get("type") == "directory" or name.endswith("/") or not name.startswith(prefix):
                continue  # folder placeholders are not files; a key outside the root never counts
            out[name[len(prefix):]] = entry
        return out

    def folders(self, folder: str = "") -> list[str]:
        """The names of the immediate sub-folders (key prefixes) of `folder`, sorted."""
        key = self._key(folder)
        self.fs.invalidate_cache(key)
        try:
            entries = self.fs.ls(key, detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory")

    def is_folder(self, folder: str) -> bool:
        key = self._key(folder)
        self.fs.invalidate_cache(key)
        try:
            return bool(self.fs.isdir(key))
        except FileNotFoundError:
            return False

    def info(self, path: str) -> dict[str, Any] | None:
        """The object's metadata (`size`, and an ETag or modification time where the store has one),
        or None when there is no such object."""
        key = self._key(path)
        self.fs.invalidate_cache(key)
        try:
            entry = self.fs.info(key)
        except FileNotFoundError:
            return None
        return entry if entry.get("type") != "directory" else None

    def read(self, path: str, limit: int | None = None) -> bytes:
        """The object's bytes, at most `limit` of them; FileNotFoundError when it is gone."""
        key = self._key(path)
        if limit is None:
            return self.fs.cat_file(key)
        return self.fs.cat_file(key, start=0, end=limit)


def object_fingerprint(entry: dict[str, Any]) -> str:
    """A text that changes when an object is written again (ETag, else modification time, else size)."""
    for field in ("ETag", "etag", "LastModified", "mtime", "last_modified", "created"):
        value = entry.get(field)
        if value:
            return f"{field}:{value}"
    return f"size:{entry.get('size')}"


def object_of(url: str) -> tuple[RemoteRoot, str]:
    """The bucket of an object URL as a root, and the object's key in it."""
    protocol, rest = root_text(url).split("://", 1)
    bucket, _, key = rest.partition("/")
    return RemoteRoot(f"{protocol}://{bucket}"), key


def read_object(url: str, limit: int | None = None) -> bytes:
    """The bytes of the object at `url` (at most `limit`); FileNotFoundError when there is none."""
    root, key = object_of(url)
    return root.read(key, limit=limit)
