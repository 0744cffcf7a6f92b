"""Fixtures of the review-app tests.

`small_home`: a store filled through its base tables (the report test's known content plus a
cleaned split), seconds to build, for the data layer, the export and the HTTP checks.
`audited`: a home the real pipeline audited (Dagster, DINO, faiss), about a minute, built once
per session, for the browser test; each test works on its own copy.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from quality_assets.store import insert_df
from quality_tests.app.fixtures import build_audited_home, copy_home
from quality_tests.test_report import build_store

SPLIT_VERSION = "split-test-0001"


def add_cleaned_split(info: dict[str, Any]) -> dict[str, Any]:
    """A cleaned split over the report store: one drop, one relabel, the rest kept."""
    store = info["store"]
    with store.connect() as conn:
        manifest = conn.execute("SELECT sample_id, path, split, label FROM raw_manifest "
                                "WHERE path <> 'train/cat/missing.png' ORDER BY path").df()
        dropped, relabelled = manifest.sample_id.iloc[0], manifest.sample_id.iloc[1]
        frame = manifest.assign(split_version=SPLIT_VERSION, original_label=manifest.label, action="keep",
                                reason="")
        frame.loc[frame.sample_id == dropped, ["action", "reason"]] = ["drop", "off_topic"]
        frame.loc[frame.sample_id == relabelled, ["action", "reason"]] = ["relabel", "review: relabel"]
        old = frame.loc[frame.sample_id == relabelled, "label"].iloc[0]
        new = "dog" if old == "cat" else "cat"
        frame.loc[frame.sample_id == relabelled, "label"] = new
        insert_df(conn, "split_versions", pd.DataFrame([{
            "split_version": SPLIT_VERSION, "score_version": "score-new-0001", "model_version": "model-b",
            "manifest_version": "m1", "created_at": datetime(2024, 6, 2)}]))
        insert_df(conn, "cleaned_splits", frame)
    info.update(split_version=SPLIT_VERSION, dropped=dropped, relabelled=relabelled, relabelled_to=new,
                n_kept=len(frame) - 1)
    return info


@pytest.fixture
def small_home(tmp_path: Path) -> dict[str, Any]:
    info = build_store(tmp_path / "home", tmp_path / "data")
    info["data"] = tmp_path / "data"
    return add_cleaned_split(info)


@pytest.fixture(scope="session")
def audited_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_audited_home(tmp_path_factory.mktemp("audited"))


@pytest.fixture
def audited(audited_base: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**audited_base, "home": copy_home(audited_base["home"], tmp_path / "home")}
