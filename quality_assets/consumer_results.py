"""The training consumer's results in the store: one run per consumer version, accuracy per seed and
experiment, and the summary the report shows (mean and spread over seeds, cleaned minus raw).

An experiment is (train, eval): the labels trained on (`raw`: given labels, nothing dropped;
`cleaned`: the cleaned split) and the eval set scored on (`raw`, `cleaned`, `clean` = the trusted
split, or `kept` = the linear probe's eval set without a trusted split). Every figure is per seed,
so the spread a difference is judged against comes from the same rows as the means.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from quality_assets.store import insert_df, run_query

if TYPE_CHECKING:  # the report reads results without importing scikit-learn
    from quality_assets.training_probe import ProbeResult

__all__ = ["ACCURACY_COLUMNS", "EVAL_SETS", "ConsumerSummary", "Comparison", "Experiment", "LINEAR_SEED",
           "probe_accuracies", "read_latest_consumer_result", "record_consumer_result", "reuse_consumer_result",
           "summarise_consumer_result"]

ACCURACY_COLUMNS = ["seed", "train", "eval", "accuracy", "n_train", "n_eval"]
TRAIN_SETS = ("raw", "cleaned")
# Reading order of the eval sets. The last one present carries the headline difference, as in the
# asset's metadata: the trusted split when there is one, the only eval set cleaning never relabelled.
EVAL_SETS = {
    "raw": "raw eval split (given labels)",
    "cleaned": "cleaned eval split (kept rows, cleaned labels)",
    "kept": "cleaned eval split (kept rows, given labels)",
    "clean": "trusted split",
}
# train_probes' default: the linear probe is one fit per train set, not a seed sweep.
LINEAR_SEED = 0


def probe_accuracies(result: ProbeResult) -> pd.DataFrame:
    """The linear probe's two experiments as accuracy rows: both models scored on one eval set."""
    eval_set = "clean" if result.eval_set == "trusted" else "kept"
    return pd.DataFrame([
        {"seed": LINEAR_SEED, "train": "raw", "eval": eval_set, "accuracy": result.accuracy_raw,
         "n_train": result.n_train_raw, "n_eval": result.n_eval},
        {"seed": LINEAR_SEED, "train": "cleaned", "eval": eval_set, "accuracy": result.accuracy_cleaned,
         "n_train": result.n_train_cleaned, "n_eval": result.n_eval},
    ], columns=ACCURACY_COLUMNS)


def record_consumer_result(conn: duckdb.DuckDBPyConnection, *, consumer_version: str, split_version: str,
                           consumer: str, accuracies: pd.DataFrame, config: dict[str, Any] | None = None,
                           seconds: float | None = None) -> int:
    """Store a consumer run and its accuracy rows (`ACCURACY_COLUMNS`), replacing an earlier write of
    the same version, and make it the newest run; returns the number of accuracy rows."""
    if not consumer_version:
        raise ValueError("a consumer result needs its consumer version")
    missing = set(ACCURACY_COLUMNS) - set(accuracies.columns)
    if missing:
        raise ValueError(f"accuracy rows lack the columns {', '.join(sorted(missing))}")
    # DuckDB reads a pandas NaN as NULL: a figure that could not be measured is no seed's figure.
    rows = accuracies[ACCURACY_COLUMNS].astype({"seed": int, "train": str, "eval": str, "accuracy": float})
    conn.execute("BEGIN TRANSACTION")
    try:
        run_query(conn, "delete_consumer_accuracies", consumer_version=consumer_version)
        insert_df(conn, "consumer_accuracies", rows.assign(consumer_version=consumer_version))
        run_query(conn, "insert_consumer_run", consumer_version=consumer_version, split_version=split_version,
                  consumer=consumer, config_json=json.dumps(config or {}, sort_keys=True, default=str),
                  seconds=None if seconds is None else float(seconds))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def reuse_consumer_result(conn: duckdb.DuckDBPyConnection, consumer_version: str) -> bool:
    """Make a stored run of this version the newest; False when none is stored (train again)."""
    stored = run_query(conn, "stored_consumer_run", consumer_version=consumer_version)
    if stored.empty or not int(stored["n_accuracies"].iloc[0]):
        return False
    run_query(conn, "mark_consumer_run_current", consumer_version=consumer_version)
    return True


@dataclass(frozen=True)
class Experiment:
    train: str
    eval: str
    mean: float | None          # over the seeds with a figure
    spread: float | None        # sample standard deviation over those seeds; None below two
    n_seeds: int
    n_train: int | None
    n_eval: int | None


@dataclass(frozen=True)
class Comparison:
    eval: str
    difference: float | None    # mean accuracy trained on cleaned minus trained on raw
    spread: float | None        # the two experiments' spreads added up
    exceeds_spread: bool | None  # None: fewer than two seeds on a side, no spread to judge by
    headline: bool = False
    # Paired by seed (one seed trains both models, so they share initialisation and batch order):
    # the seeds where the cleaned model scored higher, of the seeds both were scored on.
    seeds_won: int | None = None
    seeds_paired: int = 0


@dataclass
class ConsumerSummary:
    consumer_version: str
    split_version: str
    consumer: str
    created_at: Any
    seconds: float | None
    config: dict[str, Any]
    experiments: list[Experiment] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def headline(self) -> Comparison | None:
        return next((c for c in self.comparisons if c.headline), None)


def _number(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


def _experiment(train: str, eval_set: str, rows: pd.DataFrame) -> Experiment:
    figures = rows["accuracy"].dropna().astype(float)
    return Experiment(
        train=train, eval=eval_set,
        mean=float(figures.mean()) if len(figures) else None,
        spread=float(figures.std(ddof=1)) if len(figures) > 1 else None,
        n_seeds=int(len(figures)),
        n_train=int(rows["n_train"].max()) if rows["n_train"].notna().any() else None,
        n_eval=int(rows["n_eval"].max()) if rows["n_eval"].notna().any() else None,
    )


def seeds_won_by_cleaning(raw_rows: pd.DataFrame, cleaned_rows: pd.DataFrame) -> tuple[int | None, int]:
    """(seeds where cleaned beat raw, seeds both have a figure for) of two experiments' per-seed rows
    (`seed`, `accuracy`); None won without a pair."""
    both = pd.concat([raw_rows.set_index("seed")["accuracy"].rename("raw"),
                      cleaned_rows.set_index("seed")["accuracy"].rename("cleaned")], axis=1).dropna()
    return (int((both["cleaned"] > both["raw"]).sum()) if len(both) else None), int(len(both))


def _compare(eval_set: str, raw: Experiment, cleaned: Experiment, paired: tuple[int | None, int]) -> Comparison:
    won, n_paired = paired
    if raw.mean is None or cleaned.mean is None:
        return Comparison(eval_set, None, None, None, seeds_won=won, seeds_paired=n_paired)
    difference = cleaned.mean - raw.mean
    if raw.spread is None or cleaned.spread is None:
        return Comparison(eval_set, difference, None, None, seeds_won=won, seeds_paired=n_paired)
    # The mean ± spread bars of the two experiments do not overlap: a difference the seeds alone
    # would rarely produce, without claiming a significance test on three seeds.
    spread = raw.spread + cleaned.spread
    return Comparison(eval_set, difference, spread, bool(abs(difference) > spread), seeds_won=won,
                      seeds_paired=n_paired)


def summarise_consumer_result(rows: pd.DataFrame) -> ConsumerSummary | None:
    """The summary of one run's rows (`report_consumer_result`); None without rows."""
    if rows.empty:
        return None
    first = rows.iloc[0]
    experiments: dict[tuple[str, str], Experiment] = {}
    blocks: dict[tuple[str, str], pd.DataFrame] = {}
    for (train, eval_set), block in rows.groupby(["train", "eval"], sort=False):
        experiments[(str(train), str(eval_set))] = _experiment(str(train), str(eval_set), block)
        blocks[(str(train), str(eval_set))] = block
    order = list(EVAL_SETS)

    def position(key: tuple[str, str]) -> tuple[int, int, str, str]:
        train, eval_set = key
        return (order.index(eval_set) if eval_set in order else len(order),
                TRAIN_SETS.index(train) if train in TRAIN_SETS else len(TRAIN_SETS), eval_set, train)

    comparisons = [_compare(e, experiments[("raw", e)], experiments[("cleaned", e)],
                            seeds_won_by_cleaning(blocks[("raw", e)], blocks[("cleaned", e)]))
                   for e in sorted({e for _, e in experiments}, key=lambda e: position(("raw", e)))
                   if ("raw", e) in experiments and ("cleaned", e) in experiments]
    if comparisons:
        last = comparisons[-1]
        comparisons[-1] = dataclasses.replace(last, headline=True)
    config_json = first.get("config_json")
    return ConsumerSummary(
        consumer_version=str(first["consumer_version"]), split_version=str(first["split_version"]),
        consumer=str(first["consumer"]), created_at=first["created_at"], seconds=_number(first.get("seconds")),
        config=json.loads(config_json) if isinstance(config_json, str) and config_json else {},
        experiments=[experiments[k] for k in sorted(experiments, key=position)],
        comparisons=comparisons,
    )


def read_latest_consumer_result(conn: duckdb.DuckDBPyConnection) -> ConsumerSummary | None:
    """The newest consumer run's summary; None when none is stored (also in a store written before
    the consumer tables existed, opened read-only)."""
    if not bool(run_query(conn, "has_table", table_name="consumer_runs")["present"].iloc[0]):
        return None
    return summarise_consumer_result(run_query(conn, "report_consumer_result"))
