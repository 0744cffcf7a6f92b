"""The review app's data layer on a real DuckDB file: decisions, bulk actions, undo, safety."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from PIL import Image

from quality_assets.app.review import (
    Decision,
    Filters,
    ImageOutsideRoot,
    ReviewError,
    ReviewStore,
    StoreBusy,
    UnknownLabel,
    resolve_inside,
)


def _decisions(store: ReviewStore) -> list[tuple]:
    with duckdb.connect(str(store.store.db_path), read_only=True) as conn:
        return conn.execute("SELECT sample_id, issue_type, decision, new_label FROM review_decisions "
                            "ORDER BY decided_at, sample_id").fetchall()


def test_relabel_only_to_a_known_label(small_home: dict[str, Any]) -> None:
    review = ReviewStore(small_home["store"].home)
    sample = small_home["ids"][3]
    assert review.known_labels() == ["cat", "dog"]
    with pytest.raises(UnknownLabel, match="unknown label 'banana'.*cat, dog"):
        review.record([Decision(sample, "label_error", "relabel", "banana")])
    with pytest.raises(ReviewError, match="no sample"):
        review.record([Decision("nope", "label_error", "keep")])
    with pytest.raises(ReviewError, match="unknown decision"):
        review.record([Decision(sample, "label_error", "delete")])
    assert _decisions(review) == []  # a refused batch writes nothing

    assert review.record([Decision(sample, "label_error", "relabel", " dog ", "checked")]) == 1
    assert _decisions(review) == [(sample, "label_error", "relabel", "dog")]
    item = review.items("label_error", Filters(decided=True))
    assert list(item.sample_id) == [sample] and item.decision.iloc[0] == "relabel"
    assert sample not in set(review.items("label_error", Filters(decided=False)).sample_id)


def test_filters_narrow_the_grid(small_home: dict[str, Any]) -> None:
    review = ReviewStore(small_home["store"].home)
    every = review.items("off_topic", Filters(), limit=100)
    assert len(every) == small_home["n_samples"] and list(every["rank"]) == sorted(every["rank"])
    cats = review.items("off_topic", Filters(label="cat", split="val"), limit=100)
    assert set(cats.label) == {"cat"} and set(cats.split) == {"val"} and len(cats) == 3
    band = review.items("off_topic", Filters(score_min=0.2, score_max=0.5), limit=100)
    assert len(band) and band.score.between(0.2, 0.5).all()
    flagged = review.items("off_topic", Filters(flagged_only=True), limit=100)
    assert len(flagged) == small_home["flagged_off_topic"] and flagged.is_issue.all()
    assert int(every.n_matching.iloc[0]) == small_home["n_samples"]
    pairs = review.pairs(Filters(flagged_only=True))
    assert len(pairs) == small_home["flagged_pairs"] and pairs.is_issue.all()


def test_bulk_accept_and_undo_by_batch(small_home: dict[str, Any]) -> None:
    review = ReviewStore(small_home["store"].home)
    first = small_home["ids"][0]
    review.record([Decision(first, "off_topic", "drop")])
    time.sleep(0.01)
    # Every label_error row suggests the other class with confidence 0.9; 3 are flagged.
    flagged = review.accept_suggestions(0.85)
    assert flagged == 3
    assert review.accept_suggestions(0.95, flagged_only=False) == 0  # below the confidence
    everything = review.accept_suggestions(0.5, flagged_only=False)
    # All samples with a suggestion, minus the 3 already decided and the one dropped by hand.
    assert everything == small_home["n_samples"] - 3 - 1
    assert len(_decisions(review)) == 1 + 3 + everything

    undone = review.undo()
    assert len(undone) == everything and set(undone.decision) == {"relabel"}
    assert len(_decisions(review)) == 1 + 3
    assert len(review.undo()) == 3
    assert _decisions(review) == [(first, "off_topic", "drop", None)]
    assert len(review.undo()) == 1 and review.undo().empty


def test_keep_one_per_duplicate_group(small_home: dict[str, Any]) -> None:
    review = ReviewStore(small_home["store"].home)
    groups = review.duplicate_groups()
    n = review.keep_one_per_group()
    assert n == len(groups) > 0
    kept = {s for s, _, d, _ in _decisions(review) if d == "keep"}
    assert len(kept) == groups.group_id.nunique()
    for _, members in groups.groupby("group_id"):
        assert len(kept & set(members.sample_id)) == 1
        if (members.split != "train").any():  # an eval member is the one kept
            assert members.loc[members.sample_id.isin(kept), "split"].iloc[0] != "train"


# Another process (an audit step, say) holding DuckDB's write lock for `seconds`.
_HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("BEGIN TRANSACTION")
conn.execute("CREATE TABLE IF NOT EXISTS lock_probe (x INTEGER)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
"""


def _hold_write_lock(db_path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(db_path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_decision_waits_for_an_audit_holding_the_lock(small_home: dict[str, Any]) -> None:
    review = ReviewStore(small_home["store"].home, write_timeout_s=30)
    sample = small_home["ids"][5]
    holder = _hold_write_lock(review.store.db_path, 2.0)
    try:
        started = time.monotonic()
        assert review.record([Decision(sample, "label_error", "keep")]) == 1
        waited = time.monotonic() - started
    finally:
        holder.wait(30)
    assert waited > 0.5  # it really met the other process's lock
    assert _decisions(review) == [(sample, "label_error", "keep", None)]

    impatient = ReviewStore(small_home["store"].home, write_timeout_s=0.3, read_timeout_s=0.3)
    holder = _hold_write_lock(review.store.db_path, 3.0)
    try:
        with pytest.raises(StoreBusy, match="nothing was recorded"):
            impatient.record([Decision(small_home["ids"][6], "label_error", "drop")])
    finally:
        holder.wait(30)
    assert len(_decisions(review)) == 1


def test_images_only_from_inside_the_data_root(small_home: dict[str, Any], tmp_path: Path) -> None:
    data = small_home["data"]
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), "red").save(outside)
    os.symlink(outside, data / "train" / "cat" / "link.png")
    assert resolve_inside(data, "train/cat/cat_00.png") == (data / "train/cat/cat_00.png").resolve()
    with pytest.raises(ImageOutsideRoot):
        resolve_inside(data, "train/cat/link.png")
    with pytest.raises(ImageOutsideRoot):
        resolve_inside(data, "../secret.png")
    review = ReviewStore(small_home["store"].home)
    assert review.image_file(small_home["ids"][0]).is_file()
    assert review.image_file("no-such-sample") is None
