"""Recording gate evaluations in DuckDB, so a later manual run can verify the latest outcome."""


import duckdb

from quality_assets.store import run_query


def record_gate(
    conn: duckdb.DuckDBPyConnection, gate: str, *, passed: bool, value: float | None,
    threshold: float | None, blocking: bool, version: str | None, message: str,
) -> None:
    run_query(conn, "insert_gate_result", gate=gate, passed=passed, value=value, threshold=threshold,
              blocking=blocking, version=version, message=message)
