import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from PIL import Image

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.ingest.checks import manifest_expectations
from quality_assets.defs.representation.assets import ssl_model
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.store import run_query
from quality_tests.imagefolders import make_messy_imagefolder, write_corrupt_png, write_zero_byte

REPO = Path(__file__).resolve().parents[2]


def _ingest_config(data_root: Path) -> dict:
    return {"ops": {"raw_manifest": {"config": {"data_root": str(data_root)}}}}


def test_raw_manifest_materializes_with_rejections_and_passes_the_gate(tmp_path, store, dagster_instance):
    data = tmp_path / "data"
    expected = make_messy_imagefolder(data, tmp_path / "outside")
    result = dg.materialize(
        [raw_manifest, manifest_expectations],
        resources={"store": QualityStoreResource(home=str(store.home))},
        run_config=_ingest_config(data),
        instance=dagster_instance,
    )
    assert result.success
    materialization = result.asset_materializations_for_node("raw_manifest")[0]
    assert materialization.metadata["rejected_in_this_run"].value == len(expected)
    assert materialization.metadata["dagster/row_count"].value > 0
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed
    with store.connect() as conn:
        gates = run_query(conn, "latest_gates")
    assert gates.set_index("gate").passed["manifest_expectations"]


def test_failing_manifest_gate_blocks_the_downstream_model(tmp_path, store, dagster_instance):
    data = tmp_path / "data"
    # A drop in which nothing is readable: the manifest stays empty and the suite must fail.
    write_corrupt_png(data / "train/cat/a.png")
    write_zero_byte(data / "train/cat/b.png")
    result = dg.materialize(
        [raw_manifest, manifest_expectations, ssl_model],
        resources={"store": QualityStoreResource(home=str(store.home))},
        run_config=_ingest_config(data),
        instance=dagster_instance,
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "row_count" in evaluation.description or "rows" in evaluation.description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_manifest"}
    assert "ssl_model" not in {e.step_key for e in result.get_step_success_events()}


def test_definitions_validate_with_the_dagster_cli(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # never the developer's or CI's instance
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", str(REPO / "workspace.yaml")],
        capture_output=True, text=True, cwd=REPO, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_suite_outcome_is_reused_for_the_same_manifest_and_rerun_when_it_changes(tmp_path, store,
                                                                                     dagster_instance):
    data = tmp_path / "data"
    make_messy_imagefolder(data, tmp_path / "outside")
    resources = {"store": QualityStoreResource(home=str(store.home))}

    def evaluate():
        result = dg.materialize([raw_manifest, manifest_expectations], resources=resources,
                                run_config=_ingest_config(data), instance=dagster_instance)
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    first, again = evaluate(), evaluate()
    assert first.passed and again.passed
    assert first.metadata["reused"].value is False and "results" in first.metadata
    assert again.metadata["reused"].value is True
    assert again.metadata["version"].value == first.metadata["version"].value
    assert again.description == first.description

    # A new image changes what the suite validates: it runs again, under a new version.
    Image.new("RGB", (20, 20), (200, 10, 10)).save(data / "train" / "cat" / "extra_red.png")
    changed = evaluate()
    assert changed.metadata["reused"].value is False
    assert changed.metadata["version"].value != first.metadata["version"].value
    with store.connect() as conn:
        gates = run_query(conn, "latest_gates").set_index("gate")
    # Every evaluation is recorded, so the training gate reads the newest outcome.
    assert gates.version["manifest_expectations"] == changed.metadata["version"].value
