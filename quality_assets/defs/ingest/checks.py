"""The manifest gate: the great-expectations suite as a blocking asset check."""


import dagster as dg

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.gates import record_gate
from quality_assets.expectations import validate_manifest
from quality_assets.store import run_query


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
    # Validated with the database closed: the suite takes seconds, readers must not wait for it.
    outcome = validate_manifest(manifest)
    failed = [r for r in outcome.results if not r["success"]]
    with quality_store.connect() as conn:
        record_gate(
            conn, "manifest_expectations", passed=outcome.success, value=float(len(failed)),
            threshold=0.0, blocking=True, version=None, message=outcome.summary(),
        )
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary(),
        metadata={
            "rows": len(manifest),
            "failed_expectations": len(failed),
            "results": dg.MetadataValue.json(outcome.results),
        },
    )
