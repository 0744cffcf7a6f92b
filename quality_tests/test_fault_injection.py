"""Fault injection: an audit SIGKILLed at 21 points across every stage leaves a database that opens,
still reads the previous version, holds no orphan rows, and lets the next audit complete.

Each killed audit is a real process (`quality_tests.fault_driver`, the code path of `qaudit audit`)
that SIGKILLs itself at a named point ($QUALITY_FAULT_POINT: before/after a named SQL query, inside
or between transactions, or at a marked point in training and embedding). The next audit runs here,
on the same home and Dagster instance, and must find the dead run, fail it and release its `duckdb`
pool slot; without that it would wait for the slot forever (the test's timeout ends it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets.runner import prepare_environment, run_audit
from quality_assets.store import FAULT_ENV, load_sql
from quality_tests.fault_driver import TINY_MODEL
from quality_tests.imagefolders import make_imagefolder, write_png

pytestmark = pytest.mark.slow

# (point, how the killed audit runs): "retrain" forces a new model so the training and embedding
# points are reached; "new_image" adds a sample first so thumbnails and new versions are made.
KILL_POINTS = [
    ("ingest:scanned", ""),
    ("after:upsert_drop", ""),                      # inside the ingest transaction
    ("after:delete_rejected_for_drop", ""),         # inside it, old rejections deleted
    ("after:manifest_version", ""),                 # ingest committed, metadata not yet reported
    ("before:insert_gate_result", ""),              # the manifest gate
    ("train:start", "retrain"),
    ("train:saved", "retrain"),                     # checkpoint file written, model not registered
    ("after:insert_ssl_model", "retrain"),
    ("embed:chunk", "retrain"),                     # vectors computed, not written
    ("after:insert_embeddings", "retrain"),         # inside the chunk's transaction
    ("after:count_embeddings", "retrain"),
    ("after:insert_thumbnails", "new_image"),       # inside the thumbnail transaction
    # An identical re-run reuses every stored graph, score run and split, so the points that write
    # new versions are reached only with new data.
    ("after:replace_knn_edges", "new_image"),       # new edges in, not yet current, uncommitted
    ("after:insert_knn_graph", "new_image"),
    ("after:insert_knn_graph@2", "new_image"),      # the second view's graph (a copy search)
    ("after:delete_score_version", "new_image"),    # inside the score transaction
    ("after:insert_score_run", "new_image"),
    ("before:insert_gate_result@3", ""),            # a score gate
    ("after:delete_split_version", "new_image"),    # inside the cleaned-split transaction
    ("after:insert_split_version", "new_image"),
    ("after:cleaned_leakage", ""),                  # the cleaned-split gate
]


def _views_and_versions(db: Path) -> dict:
    """Open read-only (as a person would after the crash) and read every public view."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        counts = {view: conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0]  # noqa: S608
                  for view in ("manifest", "issues", "duplicate_pairs", "cleaned_split", "latest_gate_results")}
        orphans = conn.execute(load_sql("integrity_orphans")).fetchall()
        split = conn.execute("SELECT split_version, counts_json FROM latest_split_version").fetchone()
        score = conn.execute("SELECT score_version FROM latest_score_run").fetchone()
        split_rows = {v: n for v, n in conn.execute(
            "SELECT split_version, count(*) FROM cleaned_splits GROUP BY ALL").fetchall()}
        score_rows = {v: n for v, n in conn.execute(
            "SELECT score_version, count(*) FROM issue_scores GROUP BY ALL").fetchall()}
        checkpoints = [p for (p,) in conn.execute(
            "SELECT checkpoint_path FROM ssl_models WHERE embedder_kind = 'dino'").fetchall()]
    finally:
        conn.close()
    return {"counts": counts, "orphans": {name: n for name, n in orphans if n}, "split": split, "score": score,
            "split_rows": split_rows, "score_rows": score_rows, "checkpoints": checkpoints}


def _assert_sound(home: Path, before: dict) -> dict:
    state = _views_and_versions(home / "quality.duckdb")
    assert state["orphans"] == {}
    assert all(n > 0 for n in state["counts"].values()), state["counts"]
    # The previous version still reads, in full.
    previous_split, previous_score = before["split"][0], before["score"][0]
    assert state["split_rows"][previous_split] == before["split_rows"][previous_split]
    assert state["score_rows"][previous_score] == before["score_rows"][previous_score]
    # The latest split is whole: as many rows as its own counts say.
    by_action = json.loads(state["split"][1])["by_action"]
    assert state["counts"]["cleaned_split"] == sum(by_action.values())
    for checkpoint in state["checkpoints"]:
        assert (home / checkpoint).is_file(), checkpoint
    return state


def test_an_audit_killed_anywhere_never_blocks_or_corrupts_the_next(tmp_path, monkeypatch):
    data, home = tmp_path / "data", tmp_path / "home"
    make_imagefolder(data, {"train": {"a": 6, "b": 6}, "test": {"a": 2, "b": 2}})
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("QUALITY_HOME", str(home))
    dagster_home = prepare_environment(home)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    said: list[str] = []

    def audit() -> None:
        outcome = run_audit(home, data, [], extra_op_config={"ssl_model": TINY_MODEL}, log_level="ERROR",
                            say=said.append)
        assert outcome.success, outcome.error

    env = {**os.environ, "QUALITY_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}

    def start_killed_audit(point: str, mode: str) -> subprocess.Popen:
        # Started one step ahead: it imports while this process audits and checks.
        args = [sys.executable, "-m", "quality_tests.fault_driver", str(home), str(data), "--wait"]
        return subprocess.Popen(args + (["--force-retrain"] if mode == "retrain" else []),
                                env={**env, FAULT_ENV: point}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    upcoming = start_killed_audit(*KILL_POINTS[0])
    audit()
    state = _views_and_versions(home / "quality.duckdb")
    for index, (point, mode) in enumerate(KILL_POINTS):
        killed = upcoming
        if mode == "new_image":
            write_png(data / "train/a" / f"late_{index}.png", seed=10_000 + index)
        preamble = []
        while not preamble or preamble[-1].strip() != "ready":
            preamble.append(killed.stdout.readline())
            assert preamble[-1], "".join(preamble)[-4000:]
        killed.stdin.write("go\n")
        killed.stdin.flush()
        if index + 1 < len(KILL_POINTS):
            upcoming = start_killed_audit(*KILL_POINTS[index + 1])
        output, _ = killed.communicate(timeout=600)
        assert killed.returncode == -9, f"{point} was never reached:\n{output[-4000:]}"

        _assert_sound(home, state)
        said.clear()
        audit()
        assert any("its process is gone" in line for line in said), (point, said)
        state = _assert_sound(home, state)

    with dg.DagsterInstance.get() as instance:
        statuses = [r.dagster_run.status for r in instance.get_run_records()]
        storage = instance.event_log_storage
        held = {key: storage.get_concurrency_info(key).active_run_ids for key in storage.get_concurrency_keys()}
    assert statuses.count(dg.DagsterRunStatus.FAILURE) == len(KILL_POINTS)
    assert statuses.count(dg.DagsterRunStatus.SUCCESS) == len(KILL_POINTS) + 1
    assert all(not runs for runs in held.values()), held
