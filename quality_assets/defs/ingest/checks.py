"""The manifest gate: the great-expectations suite as a blocking asset check."""


import dagster as dg

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.gates import record_gate
from quality_assets.code_version import code_version
from quality_assets.expectations import manifest_fingerprint, validate_manifest
from quality_assets.store import run_query

GATE = "manifest_expectations"


@dg.asset_check(
    asset=raw_manifest,
    blocking=True,
    pool=DUCKDB_POOL,
    automation_condition=dg.AutomationCondition.eager(),
    description="great-expectations suite: required columns, non-null ids and train labels, unique "
    "sample_id and path, valid splits, readable sizes, at least one row.",
)
def manifest_expectations(store: QualityStoreResource) -> dg.AssetCheckResult:
    quality_store = store.store()
    with quality_store.connect() as conn:
        manifest = run_query(conn, "manifest_for_expectations")
        version = f"{manifest_fingerprint(manifest)}-{code_version('quality_assets.expectations')}"
        stored = run_query(conn, "stored_gate_result", gate=GATE, version=version)
        if not stored.empty:
            # The same manifest under the same suite: its outcome is stored, so the suite does not run
            # again. It is recorded once more, since the training gate reads the newest outcome.
            row = stored.iloc[0]
            record_gate(conn, GATE, passed=bool(row.passed), value=float(row.value), threshold=0.0,
                        blocking=True, version=version, message=str(row.message))
    if not stored.empty:
        return dg.AssetCheckResult(
            passed=bool(row.passed), severity=dg.AssetCheckSeverity.ERROR, description=str(row.message),
            metadata={"rows": len(manifest), "failed_expectations": int(row.value), "version": version,
                      "reused": True, "validated_at": str(row.evaluated_at)},
        )
    # Validated with the database closed: the suite takes seconds, readers must not wait for it.
    outcome = validate_manifest(manifest)
    failed = [r for r in outcome.results if not r["success"]]
    with quality_store.connect() as conn:
        record_gate(
            conn, GATE, passed=outcome.success, value=float(len(failed)),
            threshold=0.0, blocking=True, version=version, message=outcome.summary(),
        )
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary(),
        metadata={
            "rows": len(manifest),
            "failed_expectations": len(failed),
            "version": version,
            "reused": False,
            "results": dg.MetadataValue.json(outcome.results),
        },
    )
