"""Assembles the code location from the issue-type registry. Nothing is computed at import time
beyond building the definitions."""

import dagster as dg

from quality_assets.defs.automation.sensors import automation_sensor, ingest_job, new_drop_sensor
from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.ingest.checks import manifest_expectations
from quality_assets.defs.representation.assets import embeddings, knn_graph, ssl_model
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.defs.scoring.assets import build_issue_scores_asset, cleaned_split
from quality_assets.defs.scoring.checks import build_cleaned_leakage_check, build_rate_checks
from quality_assets.defs.scoring.drop_checks import DROP_CHECKS
from quality_assets.defs.scoring.config import gate_thresholds_class, score_run_config_class
from quality_assets.defs.training.assets import training_probe


def build_definitions() -> dg.Definitions:
    """The whole code location for the issue types registered now (a test that registers a toy
    type calls this again)."""
    thresholds = gate_thresholds_class()
    issue_scores = build_issue_scores_asset(score_run_config_class())
    assets = [raw_manifest, ssl_model, embeddings, knn_graph, issue_scores, cleaned_split, training_probe]
    checks = [manifest_expectations, *build_rate_checks(thresholds), build_cleaned_leakage_check(thresholds),
              *DROP_CHECKS]
    # The job the CLI runs: every asset and check of the audit graph.
    audit_job = dg.define_asset_job(
        name="audit_job",
        selection=dg.AssetSelection.all(),
        description="Ingest, learn the representation, score every issue type, write the cleaned split and "
        "train the example consumer, stopping at any failed blocking gate.",
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[audit_job, ingest_job],
        sensors=[new_drop_sensor, automation_sensor],
        resources={"store": QualityStoreResource(), "gates": thresholds()},
    )


defs = build_definitions()
ALL_ASSETS = list(defs.assets)
ALL_CHECKS = list(defs.asset_checks)
RESOURCES = dict(defs.resources)
