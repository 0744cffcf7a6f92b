"""Gate thresholds (a resource generated from the registry, so a deployment sets them once) and gate
evaluation records."""

import duckdb
import dagster as dg

from quality_assets.defs.scoring.config import gate_thresholds_class
from quality_assets.store import run_query

GateThresholds = gate_thresholds_class()


def record_gate(
    conn: duckdb.DuckDBPyConnection, gate: str, *, passed: bool, value: float | None,
    threshold: float | None, blocking: bool, version: str | None, message: str,
) -> None:
    run_query(conn, "insert_gate_result", gate=gate, passed=passed, value=value, threshold=threshold,
              blocking=blocking, version=version, message=message)


def rate_check_result(conn: duckdb.DuckDBPyConnection, gate: str, value: float, threshold: float, *,
                      blocking: bool, version: str, what: str, metadata: dict | None = None) -> dg.AssetCheckResult:
    passed = value <= threshold
    message = f"{what} {value:.4f} {'<=' if passed else '>'} threshold {threshold:.4f}"
    record_gate(conn, gate, passed=passed, value=value, threshold=threshold, blocking=blocking,
                version=version, message=message)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=message,
        metadata={"value": value, "threshold": threshold, "version": version, **(metadata or {})},
    )
