"""Assembles the code location. Nothing is computed at import time."""

import dagster as dg

from quality_assets.defs.automation.sensors import automation_sensor, ingest_job, new_drop_sensor
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.ingest.checks import manifest_expectations
from quality_assets.defs.representation.assets import embeddings, knn_graph, ssl_model
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.defs.scoring.assets import cleaned_split, issue_scores
from quality_assets.defs.scoring.checks import (
    cleaned_leakage_rate, label_error_rate, leakage_rate, near_duplicate_rate, off_topic_rate,
)
from quality_assets.defs.training.assets import training_probe

ALL_ASSETS = [raw_manifest, ssl_model, embeddings, knn_graph, issue_scores, cleaned_split, training_probe]
ALL_CHECKS = [manifest_expectations, near_duplicate_rate, leakage_rate, off_topic_rate, label_error_rate,
              cleaned_leakage_rate]

# The job the CLI runs: every asset and check of the audit graph.
audit_job = dg.define_asset_job(
    name="audit_job",
    selection=dg.AssetSelection.all(),
    description="Ingest, learn the representation, score every issue type, write the cleaned split and "
    "train the example consumer, stopping at any failed blocking gate.",
)

RESOURCES = {"store": QualityStoreResource(), "gates": GateThresholds()}

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[audit_job, ingest_job],
    sensors=[new_drop_sensor, automation_sensor],
    resources=RESOURCES,
)
