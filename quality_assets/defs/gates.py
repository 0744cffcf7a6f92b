"""Gate thresholds (a resource, so a deployment sets them once) and gate evaluation records."""

import duckdb
import dagster as dg

from quality_assets.store import run_query


class GateThresholds(dg.ConfigurableResource):
    """Rates above these fail the gate. `*_blocking=False` turns a gate into a warning."""

    max_near_duplicate_rate: float = 0.05
    max_leakage_rate: float = 0.05
    max_cleaned_leakage_rate: float = 0.0
    max_off_topic_rate: float = 0.10
    off_topic_blocking: bool = False
    max_label_error_rate: float = 0.15
    label_error_blocking: bool = False


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
