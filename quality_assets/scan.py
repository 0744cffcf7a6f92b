"""Walk one drop (an ImageFolder tree or a CSV manifest) into accepted and rejected rows.

Every file the scan finds ends up exactly once in `accepted` (a raw_manifest candidate with
its image properties) or in `rejected` (with a reason code), so a drop can never lose a file
silently. Paths are stored relative to the data root in posix form. A path that points outside
the data root is rejected without ever being opened.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from quality_assets.data_roots import RemoteRoot, is_remote, relative_key
from quality_assets.imaging import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    INSPECT_KEYS,
    ImageRejected,
    inspect_image,
    size_rejection,
)
from quality_assets.splits import EVAL_SPLITS, KNOWN_SPLITS, LABELLED_SPLITS, SPLIT_ALIASES, TRAIN_SPLITS

__all__ = [
    "ACCEPTED_COLUMNS",
    "DROP_MARKER",
    "EVAL_SPLITS",
    "REJECTED_COLUMNS",
    "SPLITS",
    "ScanResult",
    "make_sample_id",
    "scan_drop",
]

SPLITS = KNOWN_SPLITS
DROP_MARKER = "_DROP_COMPLETE"
MANIFEST_NAME = "manifest.csv"

_TREE = "<split>/<label>/<file>"
_SPLIT_LIST = ", ".join(SPLITS) + " (or " + ", ".join(SPLIT_ALIASES) + ")"
_OUTSIDE = "symlink resolves outside data_root"
# Objects read at once when a drop lives in an object store (each read is a round trip).
REMOTE_READ_THREADS = 16
# Local files are inspected on threads when they are large: PIL decodes and hashlib hashes with the
# GIL released, so on two cores 240 full-HD JPEGs went 1.9x faster, 640 x 480 PNGs 1.8x and 128 px
# PNGs (27 KB) 1.35x; on files of a few KB the interpreter's own share dominates and two threads
# lost (2,000 clip-art PNGs of 3 KB: 1.2x slower). The median size of a sample of the drop's files
# decides. At most 4 threads: each holds a decoded image and its copies (up to ~0.5 GB at the
# 40-megapixel limit).
THREADED_INSPECT_MIN_BYTES = 16 * 1024
INSPECT_THREADS = max(1, min(4, os.cpu_count() or 1))
_INSPECT_CHUNK = 1024  # jobs handed to the threads at once: a million files are not a million futures

ACCEPTED_COLUMNS = ("sample_id", "drop_id", "path", "label", "labels", "split", *INSPECT_KEYS)
REJECTED_COLUMNS = ("drop_id", "path", "reason", "detail")

_INT_COLUMNS = ("bytes", "width", "height", "phash", "dhash")
_FLOAT_COLUMNS = (
    "brightness_p05",
    "brightness_p50",
    "brightness_p95",
    "entropy",
    "blur_score",
    "edge_strength",
    "aspect_ratio",
)


@dataclass
class ScanResult:
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    layout: str  # "imagefolder" | "classfolders" | "csv"


@dataclass
class _Candidate:
    path: str  # relative to data_root, posix
    full_path: Path | str  # a local path, or the object's URL
    split: str
    label: str | None
    labels: list[str]


def make_sample_id(file_sha256: str, path: str, data_root: str = "") -> str:
    """Stable id: same bytes at the same path under the same data root give the same id on every scan.

    The data root is part of the identity, so two roots holding the same relative path (and even
    the same bytes there) give two samples.
    """
    key = f"{file_sha256}\0{path}" if not data_root else f"{file_sha256}\0{data_root}\0{path}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _is_ignored(name: str) -> bool:
    """Control files and hidden names: never a sample, never the drop's CSV manifest."""
    return name.startswith(".") or name == DROP_MARKER


def printable(name: str) -> str:
    """`name` as storable text: bytes that are not UTF-8 (surrogate-escaped by os) become \\xNN."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _join_rel(base: PurePosixPath, *parts: str) -> str:
    joined = base.joinpath(*parts)
    return joined.as_posix() if str(base) != "." else PurePosixPath(*parts).as_posix()


class _Rejections:
    def __init__(self, drop_id: str) -> None:
        self.drop_id = drop_id
        self.rows: list[dict[str, str]] = []

    def add(self, path: str, reason: str, detail: str) -> None:
        self.rows.append({"drop_id": self.drop_id, "path": printable(path), "reason": reason,
                          "detail": printable(detail)})


@dataclass
class _FoundFile:
    rel_in_drop: tuple[str, ...]  # path parts below the drop dir, as found (link location)
    full_path: Path | str  # a local path, or the object's URL
    problem: tuple[str, str] | None  # (reason, detail) when the entry cannot be a sample


def _walk_drop(
    drop_abs: Path, root_real: str, exclude: frozenset[str] = frozenset()
) -> Iterator[_FoundFile]:
    """Every file below drop_abs, depth first in sorted order; hidden ones come with a problem.

    Symlinks are never followed out of the data root. Directory symlinks inside it are
    followed, except back into a directory that is already being walked (a loop); an alias of
    a sibling folder yields its files again under the alias path, which duplicate detection
    then reports, rather than depending on which name sorts first. Folders in `exclude` (real
    paths of nested drops, ingested as themselves) are not entered. Hidden folders are reported
    once, not entered; names that are not UTF-8 are reported (with every file below them).
    """

    def walk(
        directory: Path, parts: tuple[str, ...], ancestors: frozenset[str], bad_name: str | None
    ) -> Iterator[_FoundFile]:
        real_dir = os.path.realpath(directory)
        if real_dir in ancestors:
            return
        ancestors = ancestors | {real_dir}
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            yield _FoundFile(parts, directory, ("not_a_file", f"cannot list directory: {exc}"))
            return
        for name in names:
            if name == DROP_MARKER:
                continue
            full = directory / name
            shown = printable(name)
            rel = (*parts, shown)
            undecodable = bad_name or (f"name {shown!r} is not valid UTF-8" if shown != name else None)
            real = os.path.realpath(full)
            if not _is_within(real, root_real):
                yield _FoundFile(rel, full, ("path_escapes_root", _OUTSIDE))
                continue
            try:
                st = os.stat(full)
            except FileNotFoundError:
                yield _FoundFile(rel, full, ("missing_file", "broken symlink"))
                continue
            except OSError as exc:
                yield _FoundFile(rel, full, ("not_a_file", f"cannot stat: {exc}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if real in exclude:
                    continue
                if name.startswith("."):
                    # Not scanned either way; a name that cannot be read is reported as such first,
                    # as for files.
                    yield _FoundFile(rel, full, ("undecodable_name", undecodable) if undecodable
                                     else ("hidden_folder", "hidden folder: its files are not scanned"))
                else:
                    yield from walk(full, rel, ancestors, undecodable)
            elif not stat.S_ISREG(st.st_mode):
                yield _FoundFile(rel, full, ("not_a_file", "not a regular file or directory"))
            elif undecodable:
                yield _FoundFile(rel, full, ("undecodable_name", undecodable))
            elif name.startswith("."):
                yield _FoundFile(rel, full, ("hidden_file", "hidden file (its name starts with '.')"))
            else:
                yield _FoundFile(rel, full, None)

    yield from walk(drop_abs, (), frozenset(), None)


def _walk_remote(root: RemoteRoot, listing: dict[str, dict[str, Any]], drop_rel: str,
                 exclude: tuple[str, ...]) -> list[_FoundFile]:
    """The objects below the drop as `_walk_drop` reports files: sorted, hidden ones with a problem.

    An object store has no symlinks to escape through; a key with a `..` or empty segment could
    still be read as a path outside the drop, so it is rejected without being read. A hidden
    folder is reported once, like a local one, and its objects are not scanned.
    """
    found: list[_FoundFile] = []
    hidden_folders: set[tuple[str, ...]] = set()
    prefix = f"{drop_rel}/" if drop_rel else ""
    for rel in sorted(listing):
        if not rel.startswith(prefix) or any(rel.startswith(f"{nested}/") for nested in exclude):
            continue
        parts = tuple(rel[len(prefix):].split("/"))
        if parts[-1] == DROP_MARKER:
            continue
        if relative_key(rel) != rel:
            found.append(_FoundFile(parts, f"{root.url}/{rel}",
                                    ("path_escapes_root", "object key has an empty, '.' or '..' segment")))
            continue
        hidden_at = next((i for i, part in enumerate(parts[:-1]) if part.startswith(".")), None)
        if hidden_at is not None:
            folder = parts[:hidden_at + 1]
            if folder not in hidden_folders:
                hidden_folders.add(folder)
                found.append(_FoundFile(folder, root.url_of(prefix + "/".join(folder)),
                                        ("hidden_folder", "hidden folder: its files are not scanned")))
            continue
        problem = ("hidden_file", "hidden file (its name starts with '.')") if parts[-1].startswith(".") else None
        found.append(_FoundFile(parts, root.url_of(rel), problem))
    return found


def _find_csv(drop_abs: Path) -> Path | None:
    if (drop_abs / MANIFEST_NAME).is_file():
        return drop_abs / MANIFEST_NAME
    csvs = [
        entry
        for entry in sorted(drop_abs.iterdir())
        if not _is_ignored(entry.name) and entry.suffix.lower() == ".csv" and entry.is_file()
    ]
    return csvs[0] if len(csvs) == 1 else None


def _find_remote_csv(found: list[_FoundFile]) -> str | None:
    """The drop's CSV manifest among the objects directly in it, chosen as `_find_csv` chooses."""
    names = sorted(item.rel_in_drop[0] for item in found
                   if len(item.rel_in_drop) == 1 and item.problem is None)
    if MANIFEST_NAME in names:
        return MANIFEST_NAME
    csvs = [name for name in names if not _is_ignored(name) and name.lower().endswith(".csv")]
    return csvs[0] if len(csvs) == 1 else None


def _normalise_split(value: str | None) -> str:
    split = (value or "").strip().lower()
    return SPLIT_ALIASES.get(split, split)


def _is_class_folder_tree(found: list[_FoundFile]) -> bool:
    """A tree `<label>/<file>` without split folders (torchvision's ImageFolder): files in folders,
    and no folder of the first two levels that names a split (or an alias of one). The second level
    counts because a folder of drops (`<drop>/<split>/<label>/<file>`, audited from above) is not a
    class-folder tree."""
    in_folders = [item.rel_in_drop for item in found if item.problem is None and len(item.rel_in_drop) >= 2]
    named = {_normalise_split(folder) for parts in in_folders for folder in parts[:-1][:2]}
    return bool(in_folders) and not named & set(SPLITS)


def _imagefolder_candidates(
    found: list[_FoundFile], drop_rel: PurePosixPath, rejections: _Rejections, *, class_folders: bool = False
) -> list[_Candidate]:
    """`<split>/<label>/<file>` rows; with `class_folders`, `<label>/<file>` rows, every one in train
    (a set nobody has split yet: the audit scores it whole, leakage and the consumer have no eval)."""
    candidates: list[_Candidate] = []
    expected = "<label>/<file>" if class_folders else _TREE
    for item in found:
        path = _join_rel(drop_rel, *item.rel_in_drop)
        if item.problem is not None:
            rejections.add(path, *item.problem)
            continue
        parts = item.rel_in_drop
        if len(parts) == 1:
            rejections.add(path, "unexpected_location", f"file at the drop root; expected {expected}")
            continue
        if class_folders:
            candidates.append(_Candidate(path, item.full_path, TRAIN_SPLITS[0], parts[0], [parts[0]]))
            continue
        split = _normalise_split(parts[0])
        if split not in SPLITS:
            rejections.add(path, "unknown_split", f"split folder {parts[0]!r} is not one of {_SPLIT_LIST}")
            continue
        if len(parts) == 2:
            rejections.add(
                path, "unexpected_location", f"file directly under the split folder; expected {_TREE}"
            )
            continue
        label = parts[1]
        candidates.append(_Candidate(path, item.full_path, split, label, [label]))
    return candidates


def _parse_labels(row: dict[str, Any], has_labels: bool, has_label: bool) -> list[str]:
    if has_labels:
        raw = (row.get("labels") or "").strip()
        if raw:
            return sorted({part.strip() for part in raw.split("|") if part.strip()})
    if has_label:
        raw = (row.get("label") or "").strip()
        if raw:
            return [raw]
    return []


def _csv_row_path(raw_path: str, drop_rel: PurePosixPath) -> tuple[str | None, str]:
    """(path relative to data_root or None, why it escapes or "") for a CSV path value."""
    posix_raw = raw_path.replace("\\", "/")
    pure = PurePosixPath(posix_raw)
    is_drive = len(posix_raw) >= 2 and posix_raw[1] == ":" and posix_raw[0].isalpha()
    if pure.is_absolute() or is_drive:
        return None, "absolute path"
    if ".." in pure.parts:
        # Strict on purpose: a drop stays self-contained, and no path arithmetic is needed to
        # decide whether the file lies inside the root.
        return None, "'..' in path"
    inner = [part for part in pure.parts if part != "."]
    if not inner:
        return None, ""
    return _join_rel(drop_rel, *inner), ""


# (file location, None) when a CSV row's path names a file that can be a sample, else
# (None, (reason, detail)).
_Locate = Callable[[str, int], tuple["Path | str | None", "tuple[str, str] | None"]]


def _local_locate(data_root: Path, root_real: str) -> _Locate:
    def locate(path: str, line_no: int):
        full = data_root / path
        if not _is_within(os.path.realpath(full), root_real):
            return None, ("path_escapes_root", f"line {line_no}: symlink resolves outside data_root")
        try:
            st = os.stat(full)
        except FileNotFoundError:
            return None, ("missing_file", f"line {line_no}: no such file")
        except OSError as exc:
            return None, ("not_a_file", f"line {line_no}: cannot stat: {exc}")
        if not stat.S_ISREG(st.st_mode):
            return None, ("not_a_file", f"line {line_no}: not a regular file")
        return full, None

    return locate


def _remote_locate(root: RemoteRoot, listing: dict[str, dict[str, Any]]) -> _Locate:
    def locate(path: str, line_no: int):
        if path not in listing:
            return None, ("missing_file", f"line {line_no}: no such object")
        return root.url_of(path), None

    return locate


# Spreadsheets export CSV with semicolons (where the comma is the decimal mark) or tabs.
CSV_DELIMITERS = (",", ";", "\t")


def _csv_rows(text: str) -> list[list[str]]:
    """The CSV's rows, split at the first delimiter whose header names the manifest's columns (else
    at commas, whose header then says what is missing)."""
    first: list[list[str]] | None = None
    for delimiter in CSV_DELIMITERS:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        first = rows if first is None else first
        header = {column.strip().lower() for column in rows[0]} if rows else set()
        if {"path", "split"} <= header and header & {"label", "labels"}:
            return rows
    return first or []


def _csv_candidates(
    csv_name: str,
    read_text: Callable[[], str],
    drop_rel: PurePosixPath,
    locate: _Locate,
    rejections: _Rejections,
) -> tuple[list[_Candidate], set[str]]:
    """Rows of the CSV as candidates; also returns every path the CSV names (for coverage)."""
    csv_rel = _join_rel(drop_rel, csv_name)
    named: set[str] = set()
    try:
        rows = _csv_rows(read_text())
    except UnicodeDecodeError as exc:
        rejections.add(csv_rel, "bad_csv", f"unreadable CSV: not UTF-8 ({exc}); save it as UTF-8")
        return [], named
    except (OSError, csv.Error) as exc:
        rejections.add(csv_rel, "bad_csv", f"unreadable CSV: {type(exc).__name__}: {exc}")
        return [], named
    if not rows:
        rejections.add(csv_rel, "bad_csv", "empty CSV (no header)")
        return [], named
    header = [column.strip().lower() for column in rows[0]]
    missing = [column for column in ("path", "split") if column not in header]
    if "label" not in header and "labels" not in header:
        missing.append("label or labels")
    if missing or len(set(header)) != len(header):
        detail = f"missing columns: {', '.join(missing)}" if missing else "duplicate column names"
        rejections.add(csv_rel, "bad_csv", f"{detail} (header: {','.join(rows[0])})")
        return [], named
    has_labels, has_label = "labels" in header, "label" in header

    candidates: list[_Candidate] = []
    for line_no, values in enumerate(rows[1:], start=2):
        if not any(value.strip() for value in values):
            continue  # blank line: not a row
        row = dict(zip(header, values))
        raw_path = (row.get("path") or "").strip()
        where = f"{csv_rel}:{line_no}"
        path, escape = _csv_row_path(raw_path, drop_rel)
        if len(values) != len(header):
            rejections.add(
                path or raw_path or where,
                "bad_csv_row",
                f"line {line_no}: {len(values)} fields, header has {len(header)}",
            )
            continue
        if not raw_path:
            rejections.add(where, "bad_csv_row", f"line {line_no}: empty path")
            continue
        if escape:
            rejections.add(raw_path, "path_escapes_root", f"line {line_no}: {escape}")
            continue
        if path is None:
            rejections.add(raw_path, "bad_csv_row", f"line {line_no}: path names no file")
            continue
        if path in named:
            rejections.add(
                path, "duplicate_path", f"line {line_no}: path already listed earlier in {csv_name}"
            )
            continue
        named.add(path)

        split = _normalise_split(row.get("split"))
        if split not in SPLITS:
            rejections.add(
                path,
                "unknown_split",
                f"line {line_no}: split {row.get('split', '')!r} is not one of {_SPLIT_LIST}",
            )
            continue
        labels = _parse_labels(row, has_labels, has_label)
        if not labels and split in LABELLED_SPLITS:
            rejections.add(path, "missing_label", f"line {line_no}: {split} row without a label")
            continue

        full, problem = locate(path, line_no)
        if problem is not None:
            rejections.add(path, *problem)
            continue
        label = "|".join(labels) if labels else None
        candidates.append(_Candidate(path, full, split, label, labels))
    return candidates, named


def _inspect_one(args: tuple[str, int, int]) -> tuple[bool, Any, str]:
    """Pool-friendly wrapper: returns (ok, properties or reason, detail); never raises."""
    full_path, max_pixels, max_bytes = args
    try:
        return True, inspect_image(full_path, max_pixels=max_pixels, max_bytes=max_bytes), ""
    except ImageRejected as exc:
        return False, exc.reason, exc.detail
    except Exception as exc:  # noqa: BLE001 - one bad file must not end the scan
        return False, "corrupt", f"unexpected {type(exc).__name__}: {exc}"


def _inspect_threads(jobs: list[tuple[str, int, int]]) -> int:
    """Threads to inspect these local files on: INSPECT_THREADS when the median size of up to 64 of
    them (evenly spaced) is at least THREADED_INSPECT_MIN_BYTES, else 1 (this thread)."""
    if len(jobs) < 2 or INSPECT_THREADS < 2:
        return 1
    sizes = []
    for path, _, _ in jobs[::max(1, len(jobs) // 64)]:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:  # the inspection itself rejects it with the reason
            sizes.append(0)
    return INSPECT_THREADS if sorted(sizes)[len(sizes) // 2] >= THREADED_INSPECT_MIN_BYTES else 1


def _inspect_all(
    candidates: list[_Candidate],
    max_pixels: int,
    max_bytes: int,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[bool, Any, str]]:
    total = len(candidates)
    jobs = [(str(c.full_path), max_pixels, max_bytes) for c in candidates]
    from quality_assets.distributed.engine import ray_address

    address = ray_address()
    if address and total:
        # A configured Ray cluster reads and inspects the files; same outcomes, same order.
        from quality_assets.distributed.ingest import inspect_on_ray

        return inspect_on_ray(address, jobs, progress=progress)
    if progress is not None:
        progress(0, total)
    outcomes: Iterator[tuple[bool, Any, str]]
    if total >= 2 and is_remote(jobs[0][0]):
        # Objects: each read is a network round trip, so threads overlap them (PIL decodes with
        # the GIL released); processes would add little but start-up cost.
        outcomes = _on_threads(jobs, max(workers, REMOTE_READ_THREADS))
    elif workers > 1 and total >= 2:
        outcomes = _in_processes(jobs, workers)
    else:
        threads = _inspect_threads(jobs)
        outcomes = _on_threads(jobs, threads) if threads > 1 else map(_inspect_one, jobs)
    results: list[tuple[bool, Any, str]] = []
    for outcome in outcomes:
        results.append(outcome)
        if progress is not None:
            progress(len(results), total)
    return results


def _on_threads(jobs: list[tuple[str, int, int]], threads: int) -> Iterator[tuple[bool, Any, str]]:
    """`_inspect_one` of each job, in order, on `threads` threads, _INSPECT_CHUNK jobs handed out at once."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, len(jobs), _INSPECT_CHUNK):
            yield from pool.map(_inspect_one, jobs[start:start + _INSPECT_CHUNK])


def _in_processes(jobs: list[tuple[str, int, int]], workers: int) -> Iterator[tuple[bool, Any, str]]:
    """`_inspect_one` of each job, in order, in `workers` processes."""
    # spawn, not fork: the caller (Dagster) runs threads, and forking a threaded process can
    # deadlock the children.
    chunksize = max(1, min(64, len(jobs) // (workers * 4) or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(_inspect_one, jobs, chunksize=chunksize)


def _accepted_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(ACCEPTED_COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in _FLOAT_COLUMNS:
        frame[column] = frame[column].astype("float64")
    frame["is_grayscale"] = frame["is_grayscale"].astype(bool)
    frame["label"] = frame["label"].astype(object)
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def _rejected_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(REJECTED_COLUMNS)).astype(str)
    return frame.sort_values(["path", "reason"], kind="stable").reset_index(drop=True)


def _resolve_drop(data_root: Path, drop_dir: Path) -> tuple[str, Path, PurePosixPath]:
    root_abs = os.path.abspath(data_root)
    root_real = os.path.realpath(data_root)
    if not os.path.isdir(root_real):
        raise FileNotFoundError(f"data_root is not a directory: {data_root}")
    drop = Path(drop_dir)
    drop_abs = Path(os.path.abspath(drop if drop.is_absolute() else Path(root_abs) / drop))
    for base in (root_abs, root_real):
        if _is_within(str(drop_abs), base):
            rel = os.path.relpath(drop_abs, base)
            break
    else:
        raise ValueError(f"drop_dir {drop_dir} is not inside data_root {data_root}")
    drop_rel = PurePosixPath(Path(rel).as_posix())
    if ".." in drop_rel.parts or not _is_within(os.path.realpath(drop_abs), root_real):
        raise ValueError(f"drop_dir {drop_dir} resolves outside data_root {data_root}")
    if not drop_abs.is_dir():
        raise FileNotFoundError(f"drop_dir is not a directory: {drop_abs}")
    # File paths are built from the real root so every later containment check compares
    # like with like.
    return root_real, Path(root_real) / rel, drop_rel


@dataclass(frozen=True)
class _DropView:
    """What a scan needs of where the drop lives, for a folder or an object store alike."""

    root_id: str                     # the root's identity: its real path, or its canonical URL
    drop_rel: PurePosixPath          # the drop's path in the root
    found: list[_FoundFile]          # the files found in the drop
    # The CSV manifest: (name, reader); the reader is None when the file must not be read.
    csv_source: tuple[str, Callable[[], str] | None] | None
    locate: _Locate                  # how a CSV row's path is checked
    listing: dict[str, dict[str, Any]] | None = None   # an object store's listing (sizes); None for a folder


def _local_drop(data_root: Path, drop_dir: Path, nested_drops: tuple[str, ...]) -> _DropView:
    root_real, drop_abs, drop_rel = _resolve_drop(data_root, drop_dir)
    exclude = frozenset(os.path.realpath(Path(root_real) / nested) for nested in nested_drops)
    found = list(_walk_drop(drop_abs, root_real, exclude))
    csv_path = _find_csv(drop_abs)
    csv_source = None
    if csv_path is not None:
        inside = _is_within(os.path.realpath(csv_path), root_real)

        def read_text() -> str:
            with open(csv_path, newline="", encoding="utf-8-sig") as handle:
                return handle.read()

        csv_source = (csv_path.name, read_text if inside else None)
    return _DropView(root_real, drop_rel, found, csv_source, _local_locate(Path(root_real), root_real))


def _remote_drop(data_root: str, drop_dir: str, nested_drops: tuple[str, ...]) -> _DropView:
    root = RemoteRoot(data_root)
    rel = root.folder_in(drop_dir)
    if not root.is_folder(rel):
        raise FileNotFoundError(f"drop_dir is not a folder: {root.url_of(rel)}")
    listing = root.files_under(rel)
    found = _walk_remote(root, listing, rel, tuple(relative_key(n) or n for n in nested_drops))
    csv_name = _find_remote_csv(found)
    csv_source = None
    if csv_name is not None:
        csv_rel = f"{rel}/{csv_name}" if rel else csv_name
        csv_source = (csv_name, lambda: root.read(csv_rel).decode("utf-8-sig"))
    return _DropView(root.url, PurePosixPath(rel or "."), found, csv_source, _remote_locate(root, listing), listing)


def _sized_by_listing(candidates: list[_Candidate], listing: dict[str, dict[str, Any]], max_bytes: int,
                      rejections: _Rejections) -> list[_Candidate]:
    """The candidates whose listed size can be a sample; the others rejected as `_read_limited` would
    reject them. The listing already holds every object's size, so the read that inspects an object
    is its only request."""
    kept = []
    for candidate in candidates:
        rejected = size_rejection(int(listing[candidate.path].get("size") or 0), max_bytes)
        if rejected is None:
            kept.append(candidate)
        else:
            rejections.add(candidate.path, rejected.reason, rejected.detail)
    return kept


def scan_drop(
    data_root: Path | str,
    drop_dir: Path | str,
    drop_id: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    nested_drops: tuple[str, ...] = (),
) -> ScanResult:
    """Scan one drop into accepted sample rows and rejected rows (see module docstring).

    `drop_dir` is data_root itself or a folder inside it (absolute, or relative to data_root).
    `data_root` may be an object-store URL (`data_roots`); `drop_dir` is then relative to it or a
    URL inside it.
    `nested_drops` (folders relative to data_root) are drops of their own inside this one: they
    are left out here, so each file is judged by the drop it was registered with.
    Raises ValueError / FileNotFoundError only for a bad data_root or drop_dir argument; every
    problem with the drop's content becomes a rejected row. `progress(done, total)` is called
    as images are inspected.
    """
    if is_remote(str(data_root)):
        view = _remote_drop(str(data_root), str(drop_dir), nested_drops)
    else:
        view = _local_drop(Path(data_root), Path(drop_dir), nested_drops)
    root_id, drop_rel, found, csv_source, locate, listing = (
        view.root_id, view.drop_rel, view.found, view.csv_source, view.locate, view.listing)
    rejections = _Rejections(drop_id)

    if csv_source is None:
        layout = "classfolders" if _is_class_folder_tree(found) else "imagefolder"
        candidates = _imagefolder_candidates(found, drop_rel, rejections, class_folders=layout == "classfolders")
    else:
        layout = "csv"
        csv_name, read_text = csv_source
        manifest_rel = _join_rel(drop_rel, csv_name)
        if read_text is not None:
            candidates, named = _csv_candidates(csv_name, read_text, drop_rel, locate, rejections)
        else:
            # Never read it: its content would leak into rejected rows.
            rejections.add(
                manifest_rel, "path_escapes_root", "manifest symlink resolves outside data_root"
            )
            candidates, named = [], set()
        # A CSV row rejected before naming a clean path (e.g. a malformed row) already
        # accounts for its file; reporting it again as unlisted would count it twice.
        accounted = named | {manifest_rel} | {row["path"] for row in rejections.rows}
        # A hidden or unreadable folder that holds listed files is accounted for by those rows.
        listed_folders = {str(PurePosixPath(p).parents[i]) for p in named
                          for i in range(len(PurePosixPath(p).parents) - 1)}
        for item in found:
            path = _join_rel(drop_rel, *item.rel_in_drop)
            if path in accounted or path in listed_folders:
                continue
            if item.problem is not None:
                rejections.add(path, *item.problem)
            else:
                rejections.add(path, "not_in_manifest", f"file is not listed in {csv_name}")

    candidates.sort(key=lambda c: c.path)
    if listing is not None:
        candidates = _sized_by_listing(candidates, listing, max_bytes, rejections)
    outcomes = _inspect_all(candidates, max_pixels, max_bytes, workers, progress)
    accepted: list[dict[str, Any]] = []
    for candidate, (ok, payload, detail) in zip(candidates, outcomes):
        if not ok:
            rejections.add(candidate.path, payload, detail)
            continue
        row: dict[str, Any] = {
            "sample_id": make_sample_id(payload["file_sha256"], candidate.path, root_id),
            "drop_id": drop_id,
            "path": candidate.path,
            "label": candidate.label,
            "labels": list(candidate.labels),
            "split": candidate.split,
        }
        row.update(payload)
        accepted.append(row)
    return ScanResult(_accepted_frame(accepted), _rejected_frame(rejections.rows), layout)
