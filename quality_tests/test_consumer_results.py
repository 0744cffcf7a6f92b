"""The training consumer's results in a real DuckDB file: written once per consumer version, the
newest one summarised (mean and spread over seeds, cleaned minus raw against the spread) and shown
in the report; a store from before the consumer tables reads as "no result" and upgrades on write."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quality_assets.consumer_results import (
    probe_accuracies, read_latest_consumer_result, record_consumer_result, reuse_consumer_result,
)
from quality_assets.report import write_report
from quality_assets.store import Store
from quality_assets.training_probe import ProbeResult

# Per seed: trained on raw / cleaned, scored on the raw eval split and on the trusted split. On the
# trusted split cleaning gains ~0.10 against a spread of ~0.02; on the raw eval split it loses 0.005,
# well inside the spread.
ACCURACY = {
    ("raw", "raw"): [0.80, 0.82, 0.81], ("cleaned", "raw"): [0.79, 0.82, 0.805],
    ("raw", "clean"): [0.70, 0.72, 0.71], ("cleaned", "clean"): [0.80, 0.83, 0.81],
}


def _cnn_rows(accuracy: dict = ACCURACY) -> pd.DataFrame:
    return pd.DataFrame([
        {"seed": seed, "train": train, "eval": eval_set, "accuracy": value,
         "n_train": 80 if train == "raw" else 72, "n_eval": 20}
        for (train, eval_set), values in accuracy.items() for seed, value in enumerate(values)])


def _counts(store: Store) -> tuple[int, int]:
    with store.connect(read_only=True) as conn:
        return (conn.execute("SELECT count(*) FROM consumer_runs").fetchone()[0],
                conn.execute("SELECT count(*) FROM consumer_accuracies").fetchone()[0])


def test_a_run_is_stored_once_per_version_and_summarised_against_its_seed_spread(store):
    with store.connect() as conn:
        assert read_latest_consumer_result(conn) is None
        record_consumer_result(conn, consumer_version="cnn-v1", split_version="split-1", consumer="cnn",
                               accuracies=_cnn_rows(), config={"consumer": "cnn", "cnn_seeds": [0, 1, 2]},
                               seconds=12.5)
        # A re-run that rewrites the same version replaces its rows, it does not add to them.
        record_consumer_result(conn, consumer_version="cnn-v1", split_version="split-1", consumer="cnn",
                               accuracies=_cnn_rows(), config={"consumer": "cnn", "cnn_seeds": [0, 1, 2]},
                               seconds=12.5)
    assert _counts(store) == (1, 12)

    with store.connect(read_only=True) as conn:
        summary = read_latest_consumer_result(conn)
    assert (summary.consumer_version, summary.split_version, summary.consumer) == ("cnn-v1", "split-1", "cnn")
    assert summary.config["cnn_seeds"] == [0, 1, 2] and summary.seconds == 12.5
    assert [(e.train, e.eval) for e in summary.experiments] == [
        ("raw", "raw"), ("cleaned", "raw"), ("raw", "clean"), ("cleaned", "clean")]
    for e in summary.experiments:
        values = ACCURACY[(e.train, e.eval)]
        assert e.mean == pytest.approx(np.mean(values)) and e.spread == pytest.approx(np.std(values, ddof=1))
        assert e.n_seeds == 3 and e.n_eval == 20 and e.n_train == (80 if e.train == "raw" else 72)
    raw_eval, trusted = summary.comparisons
    assert raw_eval.eval == "raw" and raw_eval.difference == pytest.approx(-0.005)
    assert raw_eval.exceeds_spread is False and not raw_eval.headline
    assert trusted.eval == "clean" and trusted.headline and summary.headline is trusted
    assert trusted.difference == pytest.approx(np.mean(ACCURACY[("cleaned", "clean")]) - 0.71)
    assert trusted.spread == pytest.approx(0.01 + np.std([0.80, 0.83, 0.81], ddof=1))
    assert trusted.exceeds_spread is True
    # Paired by seed: a tie is no win.
    assert (raw_eval.seeds_won, raw_eval.seeds_paired) == (0, 3)
    assert (trusted.seeds_won, trusted.seeds_paired) == (3, 3)


def test_the_newest_run_is_reported_and_a_reused_version_becomes_the_newest_again(store):
    probe = ProbeResult(n_train_raw=30, n_train_cleaned=27, n_eval=10, accuracy_raw=0.6, accuracy_cleaned=0.9,
                        eval_set="cleaned eval")
    with store.connect() as conn:
        record_consumer_result(conn, consumer_version="cnn-v1", split_version="split-1", consumer="cnn",
                               accuracies=_cnn_rows())
        record_consumer_result(conn, consumer_version="linear-v1", split_version="split-1", consumer="linear",
                               accuracies=probe_accuracies(probe))
        linear = read_latest_consumer_result(conn)
        assert reuse_consumer_result(conn, "cnn-v1") and not reuse_consumer_result(conn, "never-stored")
        back = read_latest_consumer_result(conn)
    assert _counts(store) == (2, 14)
    assert linear.consumer == "linear"
    assert [(e.train, e.eval, e.mean, e.spread, e.n_seeds) for e in linear.experiments] == [
        ("raw", "kept", 0.6, None, 1), ("cleaned", "kept", 0.9, None, 1)]
    [comparison] = linear.comparisons
    # One seed: a difference but no spread to judge it by.
    assert comparison.difference == pytest.approx(0.3) and comparison.exceeds_spread is None
    assert back.consumer_version == "cnn-v1"


def test_a_figure_that_could_not_be_measured_is_no_seed(store):
    rows = _cnn_rows()
    rows.loc[(rows.train == "cleaned") & (rows["eval"] == "clean") & (rows.seed == 2), "accuracy"] = float("nan")
    with store.connect() as conn:
        record_consumer_result(conn, consumer_version="v", split_version="s", consumer="cnn", accuracies=rows)
        stored = conn.execute("SELECT count(*) FROM consumer_accuracies WHERE accuracy IS NULL").fetchone()[0]
        summary = read_latest_consumer_result(conn)
    cleaned_trusted = next(e for e in summary.experiments if (e.train, e.eval) == ("cleaned", "clean"))
    assert stored == 1 and cleaned_trusted.n_seeds == 2 and cleaned_trusted.mean == pytest.approx(0.815)
    # The seed without a figure pairs with nothing.
    assert (summary.headline.seeds_won, summary.headline.seeds_paired) == (2, 2)


def test_bad_rows_are_refused_with_a_reason(store):
    with store.connect() as conn:
        with pytest.raises(ValueError, match="consumer version"):
            record_consumer_result(conn, consumer_version="", split_version="s", consumer="cnn",
                                   accuracies=_cnn_rows())
        with pytest.raises(ValueError, match="n_eval"):
            record_consumer_result(conn, consumer_version="v", split_version="s", consumer="cnn",
                                   accuracies=_cnn_rows().drop(columns=["n_eval"]))
    assert _counts(store) == (0, 0)


def test_the_linear_probe_on_the_trusted_split_scores_the_clean_eval_set():
    probe = ProbeResult(n_train_raw=30, n_train_cleaned=27, n_eval=6, accuracy_raw=0.5, accuracy_cleaned=0.75,
                        eval_set="trusted")
    rows = probe_accuracies(probe).set_index("train")
    assert set(rows["eval"]) == {"clean"} and rows.loc["cleaned", "n_train"] == 27
    assert rows.loc["raw", "accuracy"] == 0.5 and rows.loc["cleaned", "accuracy"] == 0.75


def _consumer_section(page: str) -> str:
    return re.search(r'<section id="consumer">(.*?)</section>', page, re.S).group(1)


def test_the_report_shows_the_newest_run_or_says_in_one_line_that_there_is_none(store, tmp_path):
    with store.connect():  # schema only: no consumer result
        pass
    empty = _consumer_section(write_report(store, tmp_path / "empty.html").read_text())
    assert "No training consumer result is stored yet" in empty and "<table" not in empty

    with store.connect() as conn:
        record_consumer_result(conn, consumer_version="cnn-v1", split_version="split-1", consumer="cnn",
                               accuracies=_cnn_rows(), seconds=12.5)
    section = _consumer_section(write_report(store, tmp_path / "report.html").read_text())
    assert "<code>cnn-v1</code>" in section and "<code>split-1</code>" in section
    trusted_raw = re.search(r'<tr data-experiment="raw\|clean">(.*?)</tr>', section, re.S).group(1)
    assert "trusted split" in trusted_raw and "0.71 ± 0.01<" in trusted_raw and '"n">3<' in trusted_raw
    rows = dict(re.findall(r'<tr data-comparison="(\w+)"[^>]*>(.*?)</tr>', section, re.S))
    assert set(rows) == {"raw", "clean"}
    assert "-0.0050" in rows["raw"] and 'data-beyond="no"' in rows["raw"]
    assert "+0.1033" in rows["clean"] and "yes: cleaning helped" in rows["clean"]
    assert 'data-seeds-won="3">3 of 3<' in rows["clean"] and 'data-seeds-won="0">0 of 3<' in rows["raw"]
    assert '<tr data-comparison="clean" class="headline">' in section


def test_a_store_from_before_the_consumer_tables_reads_as_none_and_upgrades_on_write(store, tmp_path):
    with store.connect() as conn:   # the tables as an older release left them: no consumer tables
        conn.execute("DROP TABLE schema_state")
        conn.execute("DROP TABLE consumer_accuracies")
        conn.execute("DROP TABLE consumer_runs")
    # The report reads read-only, which applies no schema: the missing tables mean "no result".
    with store.connect(read_only=True) as conn:
        assert read_latest_consumer_result(conn) is None
    assert "No training consumer result is stored yet" in _consumer_section(
        write_report(store, tmp_path / "old.html").read_text())
    with store.connect() as conn:   # the next writer creates them
        record_consumer_result(conn, consumer_version="v", split_version="s", consumer="cnn",
                               accuracies=_cnn_rows())
    assert _counts(store) == (1, 12)
