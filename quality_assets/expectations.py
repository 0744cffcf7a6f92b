"""The great-expectations suite that gates the raw manifest.

Runs GE 1.x directly (dagster-ge only supports GE < 1.0) on an ephemeral context with a pandas
data source, and flattens the validation result into plain JSON-able dicts that the Dagster
asset check and the gate table can store as they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quality_assets.scan import SPLITS

__all__ = ["REQUIRED_COLUMNS", "ExpectationOutcome", "manifest_fingerprint", "validate_manifest"]

REQUIRED_COLUMNS = (
    "sample_id",
    "drop_id",
    "path",
    "split",
    "label",
    "width",
    "height",
    "file_sha256",
    "pixel_sha256",
    "bytes",
)
_NON_NULL_COLUMNS = ("sample_id", "path", "split", "file_sha256", "pixel_sha256")
_UNIQUE_COLUMNS = ("sample_id", "path")
_PARTIAL_LIST_LIMIT = 20


@dataclass
class ExpectationOutcome:
    success: bool
    results: list[dict[str, Any]] = field(default_factory=list)

    def failed(self) -> list[dict[str, Any]]:
        return [result for result in self.results if not result["success"]]

    def summary(self) -> str:
        """One line: all passed, or the missing columns and each other failed expectation."""
        failed = self.failed()
        if not failed:
            return f"all {len(self.results)} manifest expectations passed"
        missing = sorted(
            r["column"] for r in failed if r["expectation"] == "expect_column_to_exist" and r["column"]
        )
        parts = [f"missing columns: {', '.join(missing)}"] if missing else []
        for result in failed:
            if result["expectation"] == "expect_column_to_exist" or result.get("column") in missing:
                continue  # a missing column fails its value checks too; naming it once is enough
            name = result["expectation"]
            if result.get("column"):
                name += f"({result['column']})"
            if result.get("unexpected_count"):
                name += f": {result['unexpected_count']} unexpected"
            elif result.get("observed_value") is not None:
                name += f": observed {result['observed_value']}"
            elif result.get("details", {}).get("exception"):
                name += f": {result['details']['exception']}"
            parts.append(name)
        return f"{len(failed)} of {len(self.results)} manifest expectations failed: " + "; ".join(parts)


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: numpy scalars become Python ones, NaN/inf become None."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v) for v in item]
        return item

    return clean(json.loads(json.dumps(value, default=_json_default)))


def _json_default(item: Any) -> Any:
    if hasattr(item, "item"):  # numpy scalar
        return item.item()
    if hasattr(item, "tolist"):
        return item.tolist()
    return str(item)


def _exception_message(info: Any) -> str | None:
    """GE nests exception info per metric when several metrics failed; find the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception") and info.get("exception_message"):
        return str(info["exception_message"])
    for value in info.values():
        message = _exception_message(value)
        if message:
            return message
    return None


def _build_suite(gx: Any, column_factory: Any) -> Any:
    expectations = gx.expectations
    suite = gx.ExpectationSuite(name="raw_manifest")
    for column in REQUIRED_COLUMNS:
        suite.add_expectation(expectations.ExpectColumnToExist(column=column))
    for column in _NON_NULL_COLUMNS:
        suite.add_expectation(expectations.ExpectColumnValuesToNotBeNull(column=column))
    for column in _UNIQUE_COLUMNS:
        suite.add_expectation(expectations.ExpectColumnValuesToBeUnique(column=column))
    suite.add_expectation(expectations.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)))
    # Unlabelled val/test data is legitimate; only training rows need a label.
    suite.add_expectation(
        expectations.ExpectColumnValuesToNotBeNull(
            column="label", row_condition=column_factory("split") == "train"
        )
    )
    for column in ("width", "height", "bytes"):
        suite.add_expectation(expectations.ExpectColumnValuesToBeBetween(column=column, min_value=1))
    suite.add_expectation(expectations.ExpectTableRowCountToBeBetween(min_value=1))
    return suite


def _flatten(result: Any) -> dict[str, Any]:
    raw = result.to_json_dict()
    config = raw.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    body = raw.get("result") or {}
    details: dict[str, Any] = {}
    for key in ("element_count", "missing_count", "unexpected_percent"):
        if key in body:
            details[key] = body[key]
    if "partial_unexpected_list" in body:
        details["partial_unexpected_list"] = body["partial_unexpected_list"][:_PARTIAL_LIST_LIMIT]
    for key in ("value_set", "min_value", "max_value"):
        if kwargs.get(key) is not None:
            details[key] = kwargs[key]
    if kwargs.get("row_condition"):
        details["row_condition"] = kwargs["row_condition"]
    exception = _exception_message(raw.get("exception_info"))
    if exception:
        details["exception"] = exception
    return _jsonable(
        {
            "expectation": config.get("type", "unknown"),
            "column": kwargs.get("column"),
            "success": bool(raw.get("success")),
            "unexpected_count": body.get("unexpected_count"),
            "observed_value": body.get("observed_value"),
            "details": details,
        }
    )


def manifest_fingerprint(manifest: pd.DataFrame) -> str:
    """A hash of exactly what the suite validates (its columns, row order aside): the same
    fingerprint under the same suite code gives the same outcome, so a re-run can reuse it."""
    frame = manifest[[column for column in REQUIRED_COLUMNS if column in manifest.columns]]
    frame = frame.sort_values(list(frame.columns[:1])) if len(frame.columns) else frame
    rows = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    digest = hashlib.sha256(",".join(frame.columns).encode() + rows.tobytes())
    return digest.hexdigest()[:16]


def validate_manifest(manifest: pd.DataFrame) -> ExpectationOutcome:
    """Run the manifest suite; any failure (including an empty frame) is a failed outcome."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx  # slow import, only paid when the gate runs
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    # Only the suite's columns: GE's pandas metrics choke on list-valued cells (`labels`), and
    # a narrower frame validates faster. Missing columns stay missing, so existence checks hold.
    frame = manifest[[column for column in REQUIRED_COLUMNS if column in manifest.columns]].copy()
    frame = frame.reset_index(drop=True)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("manifest_source")
    asset = source.add_dataframe_asset("raw_manifest")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_manifest")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(_build_suite(gx, Column))

    results = [_flatten(result) for result in validation.results]
    # GE returns results in its own order; sort so metadata and summaries diff cleanly.
    results.sort(
        key=lambda r: (r["column"] or "", r["expectation"], json.dumps(r["details"].get("row_condition")))
    )
    success = bool(validation.success) and all(result["success"] for result in results)
    return ExpectationOutcome(success=success, results=results)
