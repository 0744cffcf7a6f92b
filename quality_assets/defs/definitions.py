"""Assembles the code location. Nothing is computed at import time."""

import dagster as dg

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.ingest.checks import manifest_expectations
from quality_assets.defs.representation.assets import embeddings, knn_graph, ssl_model
from quality_assets.defs.resources import QualityStoreResource

ALL_ASSETS = [raw_manifest, ssl_model, embeddings, knn_graph]
ALL_CHECKS = [manifest_expectations]

# The job the CLI runs: every asset and check of the audit graph.
audit_job = dg.define_asset_job(
    name="audit_job",
    selection=dg.AssetSelection.all(),
    description="Ingest, learn the representation, score every issue type and write the cleaned split.",
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[audit_job],
    resources={"store": QualityStoreResource()},
)
