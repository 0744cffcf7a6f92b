"""A failing leakage gate stops the training consumer in the same run and in a later manual run."""

import shutil

import dagster as dg
import pytest

from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.defs.training.assets import training_probe
from quality_assets.store import run_query
from quality_tests.imagefolders import make_imagefolder

# Small and quick: the gate logic is what is under test, not the representation.
TINY_SSL = {"epochs": 1, "batch_size": 16, "time_budget_s": 20.0}


def _resources(store, **thresholds):
    return {"store": QualityStoreResource(home=str(store.home)), "gates": GateThresholds(**thresholds)}


def _run_config(data):
    return {"ops": {"raw_manifest": {"config": {"data_root": str(data)}},
                    "ssl_model": {"config": TINY_SSL}}}


@pytest.fixture
def leaky_data(tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 16, "b": 16}, "test": {"a": 4, "b": 4}})
    # Half of the test set is an exact copy of a train image: a leakage rate of 0.5.
    for i in range(4):
        shutil.copyfile(data / f"train/a/a_{i:03d}.png", data / f"test/a/leak_{i}.png")
        shutil.copyfile(data / f"train/b/b_{i:03d}.png", data / f"test/b/leak_{i}.png")
    return data


def test_leakage_gate_blocks_the_consumer_now_and_in_a_later_manual_run(leaky_data, store, dagster_instance):
    result = dg.materialize(
        ALL_ASSETS + ALL_CHECKS, resources=_resources(store), run_config=_run_config(leaky_data),
        instance=dagster_instance, raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["leakage_rate"].passed
    assert "0.5" in evaluations["leakage_rate"].description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "issue_scores" in materialized
    assert "training_probe" not in materialized
    with store.connect() as conn:
        leaks = conn.execute("SELECT count(*) FROM issues WHERE issue_type = 'leakage' AND is_issue").fetchone()[0]
    assert leaks == 8

    manual = dg.materialize([training_probe], resources=_resources(store), instance=dagster_instance,
                            raise_on_error=False)
    assert not manual.success
    [failure] = manual.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description if failure.step_failure_data.user_failure_data \
        else failure.step_failure_data.error.message
    assert "leakage_rate" in message and "0.5" in message


def test_consumer_trains_when_every_gate_passes(leaky_data, store, dagster_instance):
    result = dg.materialize(
        ALL_ASSETS + ALL_CHECKS, resources=_resources(store, max_leakage_rate=1.0, max_near_duplicate_rate=1.0),
        run_config=_run_config(leaky_data), instance=dagster_instance, raise_on_error=False,
    )
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "training_probe" in materialized, result.get_step_failure_events()
    [probe] = result.asset_materializations_for_node("training_probe")
    assert 0.0 <= probe.metadata["accuracy_cleaned_split"].value <= 1.0
    with store.connect() as conn:
        gates = run_query(conn, "latest_gates").set_index("gate")
        split = conn.execute("SELECT path, split, action, reason FROM cleaned_split").df().set_index("path")
    assert gates.passed.all()
    # The train originals of the leaked test images are dropped by the cleaning policy; the test set stays.
    originals = [f"train/{c}/{c}_{i:03d}.png" for c in "ab" for i in range(4)]
    assert (split.loc[originals, "action"] == "drop").all()
    assert (split[split.split == "test"].action != "drop").all()
