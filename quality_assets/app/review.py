"""What the review app reads and writes, without any web framework: the app's data layer.

Reads go through the public views (`issues`, `duplicate_pairs`, `cleaned_split`, `manifest`,
`latest_gate_results`) via `sql/queries/app_*.sql`; the only write is `review_decisions`.

DuckDB has one writing process at a time, and an audit (or an "apply" run) holds the lock for
the length of a step. So every request opens its own short connection, and a write that meets
the lock or a write-write conflict is retried with a bounded exponential backoff: a reviewer's
decision waits for the audit's step to end instead of being lost. Only after
`write_timeout_s` does it fail, loudly (`StoreBusy`), never silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from quality_assets.data_roots import is_remote, join, relative_key
from quality_assets.scores.ontology import OntologyInsights, ontology_insights
from quality_assets.store import Store, run_query

DECISIONS = ("keep", "drop", "relabel")
T = TypeVar("T")


class ReviewError(ValueError):
    """A request the store must refuse; the message is meant for the reviewer."""


class UnknownLabel(ReviewError):
    def __init__(self, label: str, known: Sequence[str]) -> None:
        shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
        super().__init__(f"unknown label {label!r}: relabel only to a label the dataset has ({shown})")
        self.label = label


class StoreBusy(RuntimeError):
    """The database stayed locked by another writer for longer than the retry budget."""


class ImageOutsideRoot(PermissionError):
    """A manifest path that resolves outside its data root (e.g. through a symlink)."""


@dataclass(frozen=True)
class Decision:
    sample_id: str
    issue_type: str
    decision: str
    new_label: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Filters:
    """The grid's filters; None means "any"."""

    label: str | None = None
    split: str | None = None
    drop_id: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    decided: bool | None = None
    flagged_only: bool | None = None

    def params(self) -> dict[str, Any]:
        return {"label": self.label, "split": self.split, "drop_id": self.drop_id,
                "score_min": self.score_min, "score_max": self.score_max,
                "decided": self.decided, "flagged_only": self.flagged_only}


def _is_retryable(error: Exception) -> bool:
    text = str(error).lower()
    if isinstance(error, duckdb.IOException):
        return "lock" in text
    # Write-write conflicts between two connections of this process (e.g. the app and an
    # in-process run) surface as transaction conflicts.
    return isinstance(error, duckdb.TransactionException) or "conflict" in text


class ReviewStore:
    """The review app's view of one quality home."""

    def __init__(self, home: Path, *, write_timeout_s: float = 30.0, read_timeout_s: float = 30.0) -> None:
        self.store = Store(home)
        self.write_timeout_s = write_timeout_s
        self.read_timeout_s = read_timeout_s

    @property
    def home(self) -> Path:
        return self.store.home

    def ensure_ready(self) -> None:
        """Fail early with a clear message when the home has no audit; refresh schema and views."""
        if not self.store.db_path.exists():
            raise FileNotFoundError(f"no quality database at {self.store.db_path}; "
                                    f"run `qaudit audit DATA_DIR --home {self.store.home}` first")
        with self.store.connect():
            pass

    @contextmanager
    def _connection(self, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
        # Read-write even for reads: DuckDB refuses a read-only and a read-write connection to one
        # file in one process, and an apply run may hold the latter.
        conn = self._retry(lambda: duckdb.connect(str(self.store.db_path)), timeout_s)
        try:
            self.store.configure(conn)
            yield conn
        finally:
            conn.close()

    @staticmethod
    def _retry(action: Callable[[], T], timeout_s: float) -> T:
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            try:
                return action()
            except (duckdb.IOException, duckdb.TransactionException) as error:
                if not _is_retryable(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreBusy(f"the quality database stayed busy for {timeout_s:.0f} s "
                                    f"(an audit is writing); nothing was recorded: {error}") from error
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def read(self, name: str, **params: Any) -> pd.DataFrame:
        def attempt() -> pd.DataFrame:
            with self._connection(self.read_timeout_s) as conn:
                return run_query(conn, name, **params)
        return self._retry(attempt, self.read_timeout_s)

    def _write(self, action: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        def attempt() -> T:
            with self._connection(self.write_timeout_s) as conn:
                conn.execute("BEGIN TRANSACTION")
                try:
                    result = action(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return result
        return self._retry(attempt, self.write_timeout_s)

    # ------------------------------------------------------------------ reading

    def known_labels(self) -> list[str]:
        return [str(v) for v in self.read("app_known_labels")["label"]]

    def filter_options(self) -> dict[str, list[str]]:
        frame = self.read("app_filter_options")
        return {kind: [str(v) for v in block["value"]] for kind, block in frame.groupby("kind")}

    def issue_counts(self) -> dict[str, tuple[int, int]]:
        frame = self.read("report_issue_counts")
        return {r.issue_type: (int(r.n_scored), int(r.n_flagged)) for r in frame.itertuples()}

    def pair_counts(self) -> tuple[int, int]:
        frame = self.read("report_pair_counts")
        return int(frame["n_scored"].iloc[0]), int(frame["n_flagged"].iloc[0])

    def items(self, issue_type: str, filters: Filters, *, limit: int = 60, offset: int = 0) -> pd.DataFrame:
        return self.read("app_issue_items", issue_type=issue_type, limit=limit, offset=offset, **filters.params())

    def pairs(self, filters: Filters, *, limit: int = 40, offset: int = 0) -> pd.DataFrame:
        return self.read("app_pairs", limit=limit, offset=offset, **filters.params())

    def duplicate_groups(self) -> pd.DataFrame:
        return self.read("app_duplicate_groups")

    def sample(self, sample_id: str) -> dict[str, Any] | None:
        frame = self.read("app_sample", sample_id=sample_id)
        return None if frame.empty else frame.iloc[0].to_dict()

    def sample_id_for_path(self, path: str) -> str | None:
        frame = self.read("app_sample_by_path", path=path)
        return None if frame.empty else str(frame["sample_id"].iloc[0])

    def image_file(self, sample_id: str) -> Path | str | None:
        """The sample's file, only if it lies inside its data root after resolving symlinks (its URL
        when the root is an object store)."""
        sample = self.sample(sample_id)
        if sample is None:
            return None
        return resolve_inside(sample["data_root"], sample["path"])

    def history(self, limit: int = 200) -> pd.DataFrame:
        return self.read("app_history", limit=limit)

    def overview(self) -> dict[str, Any] | None:
        frame = self.read("app_overview")
        return None if frame.empty else frame.iloc[0].to_dict()

    def ontology(self, *, top: int = 10, per_direction: int = 3) -> OntologyInsights:
        """The latest score run's ontology insights: top corrections and class-merge suggestions."""
        return ontology_insights(self.read("report_confusion"), self.read("ontology_class_sizes"),
                                 self.read("ontology_examples", per_pair=per_direction),
                                 top=top, per_direction=per_direction)

    def gates(self) -> pd.DataFrame:
        return self.read("report_gates")

    # ------------------------------------------------------------------ writing

    def record(self, decisions: Sequence[Decision]) -> int:
        """Write the decisions as one batch (one transaction, one `decided_at`, one undo step)."""
        decisions = list(decisions)
        if not decisions:
            return 0
        known: list[str] | None = None
        for decision in decisions:
            if decision.decision not in DECISIONS:
                raise ReviewError(f"unknown decision {decision.decision!r}; use keep, drop or relabel")
            if not decision.issue_type:
                raise ReviewError("a decision needs the issue type it is about")
            if decision.decision == "relabel":
                label = (decision.new_label or "").strip()
                if not label:
                    raise ReviewError("relabel needs a new label")
                known = known if known is not None else self.known_labels()
                if label not in known:
                    raise UnknownLabel(label, known)
        ids = sorted({d.sample_id for d in decisions})
        present = set(self.read("app_existing_samples", sample_ids=ids)["sample_id"])
        missing = [i for i in ids if i not in present]
        if missing:
            raise ReviewError(f"no sample with id {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                                    if len(missing) > 1 else ""))

        def insert(conn: duckdb.DuckDBPyConnection) -> int:
            for d in decisions:
                new_label = (d.new_label or "").strip() if d.decision == "relabel" else None
                run_query(conn, "insert_review_decision", sample_id=d.sample_id, issue_type=d.issue_type,
                          decision=d.decision, new_label=new_label, note=d.note)
            return len(decisions)

        return self._write(insert)

    def undo(self) -> pd.DataFrame:
        """Remove the newest batch of decisions; returns what was removed (empty: nothing to undo)."""
        def remove(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
            batch = run_query(conn, "app_last_batch")
            if len(batch):
                run_query(conn, "app_delete_batch", decided_at=batch["decided_at"].iloc[0])
            return batch
        return self._write(remove)

    def accept_suggestions(self, min_confidence: float, *, flagged_only: bool = True,
                           note: str | None = None) -> int:
        """Relabel every undecided label-error suggestion (flagged ones only, by default) that
        differs from the given label with at least `min_confidence`; returns how many."""
        if not 0.0 <= min_confidence <= 1.0:
            raise ReviewError("the confidence must lie between 0 and 1")
        frame = self.read("app_suggestions_above", min_confidence=float(min_confidence), flagged_only=flagged_only)
        known = set(self.known_labels())
        decisions = [Decision(r.sample_id, "label_error", "relabel", r.suggested_label,
                              note or f"suggestion accepted (confidence >= {min_confidence:g})")
                     for r in frame.itertuples() if r.suggested_label in known]
        return self.record(decisions)

    def keep_one_per_group(self, note: str | None = None) -> int:
        """Keep each flagged duplicate group's representative and drop the other members."""
        groups = self.duplicate_groups()
        decisions = [Decision(r.sample_id, "near_duplicate", "keep" if r.is_representative else "drop",
                              None, note or f"one kept per duplicate group {int(r.group_id)}")
                     for r in groups.itertuples()]
        return self.record(decisions)


def resolve_inside(data_root: str | Path, path: str) -> Path | str:
    """data_root/path resolved; raises ImageOutsideRoot when it escapes the root (`..`, symlinks).

    For an object-store root, the object's URL (an object store has no symlinks; a `..` or empty
    segment is refused the same way)."""
    if is_remote(str(data_root)):
        if relative_key(path) != path:
            raise ImageOutsideRoot(f"{path} resolves outside its data root")
        return join(str(data_root), path)
    root = Path(data_root).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise ImageOutsideRoot(f"{path} resolves outside its data root")
    return target
