"""The great-expectations manifest suite on a manifest scanned from real files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from quality_assets.expectations import REQUIRED_COLUMNS, ExpectationOutcome, validate_manifest
from quality_assets.scan import scan_drop
from quality_tests.imagefolders import make_imagefolder


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("drop")
    make_imagefolder(root)
    accepted = scan_drop(root, root, "d").accepted
    assert len(accepted) == 10
    return accepted


def _failed(outcome: ExpectationOutcome) -> set[tuple[str, str | None]]:
    return {(r["expectation"], r["column"]) for r in outcome.results if not r["success"]}


def test_good_manifest_passes_and_results_are_plain_json(manifest: pd.DataFrame) -> None:
    outcome = validate_manifest(manifest)
    assert outcome.success, outcome.summary()
    assert _failed(outcome) == set()
    assert "passed" in outcome.summary()
    json.dumps(outcome.results, allow_nan=False)  # storable as Dagster JSON metadata as is
    names = {(r["expectation"], r["column"]) for r in outcome.results}
    assert {("expect_column_to_exist", column) for column in REQUIRED_COLUMNS} <= names
    assert ("expect_table_row_count_to_be_between", None) in names
    for result in outcome.results:
        assert set(result) == {"expectation", "column", "success", "unexpected_count", "observed_value", "details"}


def test_duplicate_sample_id_fails_uniqueness(manifest: pd.DataFrame) -> None:
    broken = manifest.copy()
    broken.loc[1, "sample_id"] = broken.loc[0, "sample_id"]
    outcome = validate_manifest(broken)
    assert not outcome.success
    assert _failed(outcome) == {("expect_column_values_to_be_unique", "sample_id")}
    failed = next(r for r in outcome.results if not r["success"])
    assert failed["unexpected_count"] == 2
    assert "expect_column_values_to_be_unique(sample_id)" in outcome.summary()


def test_unknown_split_fails_value_set(manifest: pd.DataFrame) -> None:
    broken = manifest.copy()
    broken.loc[0, "split"] = "holdout"
    outcome = validate_manifest(broken)
    assert _failed(outcome) == {("expect_column_values_to_be_in_set", "split")}
    failed = next(r for r in outcome.results if not r["success"])
    assert failed["details"]["partial_unexpected_list"] == ["holdout"]
    assert "expect_column_values_to_be_in_set(split)" in outcome.summary()


def test_null_label_fails_only_for_train(manifest: pd.DataFrame) -> None:
    unlabelled_eval = manifest.copy()
    unlabelled_eval.loc[unlabelled_eval.split != "train", "label"] = None
    assert validate_manifest(unlabelled_eval).success

    broken = manifest.copy()
    broken.loc[broken.index[broken.split == "train"][0], "label"] = None
    outcome = validate_manifest(broken)
    assert _failed(outcome) == {("expect_column_values_to_not_be_null", "label")}
    failed = next(r for r in outcome.results if not r["success"])
    assert failed["unexpected_count"] == 1
    assert "train" in json.dumps(failed["details"]["row_condition"])


def test_bad_sizes_and_missing_hash_fail(manifest: pd.DataFrame) -> None:
    broken = manifest.copy()
    broken.loc[0, "width"] = 0
    broken.loc[1, "pixel_sha256"] = None
    outcome = validate_manifest(broken)
    assert _failed(outcome) == {
        ("expect_column_values_to_be_between", "width"),
        ("expect_column_values_to_not_be_null", "pixel_sha256"),
    }


def test_missing_required_column_fails_existence(manifest: pd.DataFrame) -> None:
    outcome = validate_manifest(manifest.drop(columns=["pixel_sha256"]))
    assert not outcome.success
    assert ("expect_column_to_exist", "pixel_sha256") in _failed(outcome)
    assert "missing columns: pixel_sha256" in outcome.summary()


def test_empty_frames_fail_instead_of_raising(manifest: pd.DataFrame) -> None:
    no_rows = validate_manifest(manifest.iloc[0:0])
    assert not no_rows.success
    assert _failed(no_rows) == {("expect_table_row_count_to_be_between", None)}

    nothing = validate_manifest(pd.DataFrame())
    assert not nothing.success
    assert ("expect_table_row_count_to_be_between", None) in _failed(nothing)
    assert ("expect_column_to_exist", "sample_id") in _failed(nothing)
    json.dumps(nothing.results, allow_nan=False)
    assert "failed" in nothing.summary()
