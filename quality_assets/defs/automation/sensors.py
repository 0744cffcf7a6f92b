"""New data drops start an ingest run; declarative automation updates everything downstream."""

import dagster as dg

from quality_assets.defs.automation.stale_runs import reap_stale_runs
from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.drops import DropCursor, find_new_drops

ingest_job = dg.define_asset_job(
    name="ingest_drop_job",
    selection=dg.AssetSelection.assets(raw_manifest),
    description="Ingest one drop into the manifest (started by the drops sensor).",
)


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the drops folder; a drop counts once its _DROP_COMPLETE marker exists. Also fails "
    "runs whose process is gone (a killed audit), releasing their pool slots.",
)
def new_drop_sensor(context: dg.SensorEvaluationContext, store: QualityStoreResource):
    # A killed run would keep the duckdb pool slot and the one run slot for good; every tick
    # fails runs whose process is gone so queued drops and automation runs can proceed.
    reap_stale_runs(context.instance, context.log.warning)
    drops_dir = store.drops_folder()  # a local folder or an object-store URL
    cursor = DropCursor.parse(context.cursor)
    ready = find_new_drops(drops_dir, cursor)
    if not ready:
        return dg.SkipReason(f"no new complete drop in {drops_dir}")
    requests = []
    for drop in ready:
        requests.append(dg.RunRequest(
            run_key=drop.run_key,
            run_config={"ops": {"raw_manifest": {"config": {"data_root": drops_dir, "drops": [drop.name]}}}},
            tags={"quality/drop": drop.name},
        ))
        cursor.seen[drop.name] = drop.fingerprint
    return dg.SensorResult(run_requests=requests, cursor=cursor.dump())


automation_sensor = dg.AutomationConditionSensorDefinition(
    "quality_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Declarative automation: downstream assets and their checks follow a new manifest.",
)
