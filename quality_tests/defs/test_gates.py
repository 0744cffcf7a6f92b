"""Gate semantics: the raw data's leakage gate stops training on the raw data but not `cleaned_split`,
which removes the leaked copies; the consumer (trained on the cleaned split) obeys the cleaned split's
gates, in the same run and in a later manual run."""

import shutil

import dagster as dg
import pytest

from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.defs.training.assets import training_probe, verify_gates
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


def _failure_message(result) -> str:
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


def test_the_raw_leakage_gate_stops_raw_training_not_the_cleaning_and_the_cleaned_gate_stops_the_consumer(
        leaky_data, store, dagster_instance):
    # Default thresholds: a raw leakage rate of 0.5 is far above max_leakage_rate 0.05.
    result = dg.materialize(
        ALL_ASSETS + ALL_CHECKS, resources=_resources(store), run_config=_run_config(leaky_data),
        instance=dagster_instance, raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["leakage_rate"].passed
    assert evaluations["leakage_rate"].severity == dg.AssetCheckSeverity.ERROR
    assert "0.5" in evaluations["leakage_rate"].description
    # The step that removes the leaked copies still runs, and its own gate passes.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"issue_scores", "cleaned_split"} <= materialized, result.get_step_failure_events()
    assert evaluations["cleaned_leakage_rate"].passed, evaluations["cleaned_leakage_rate"].description
    # The consumer trains on the cleaned split, so the cleaned split's gates are the ones it obeys.
    assert "training_probe" in materialized, result.get_step_failure_events()
    with store.connect() as conn:
        leaks = conn.execute("SELECT count(*) FROM issues WHERE issue_type = 'leakage' AND is_issue").fetchone()[0]
        kept_leaks = conn.execute(
            "SELECT count(*) FROM cleaned_split WHERE path IN (SELECT partner_path FROM issues "
            "WHERE issue_type = 'leakage' AND is_issue) AND action <> 'drop'").fetchone()[0]
        gates = run_query(conn, "latest_gates").set_index("gate")
        verify_gates(conn)  # the cleaned data may be trained on
        # Training on the raw data is refused, naming the raw gate and its figure.
        with pytest.raises(dg.Failure, match=r"leakage_rate failed: leakage rate 0\.5"):
            verify_gates(conn, "raw")
    assert leaks == 8 and kept_leaks == 0
    assert not gates.loc["leakage_rate", "passed"] and gates.loc["leakage_rate", "blocking"]
    assert gates.loc["cleaned_leakage_rate", "passed"]

    # The cleaned split's gate does block the consumer: a policy that keeps the train copies of the
    # leaked test images leaves the leakage in the cleaned split.
    keep_leaks = {"ops": {"cleaned_split": {"config": {"drop_train_leaks": False, "dedupe_groups": False}}}}
    result = dg.materialize(
        ALL_ASSETS + ALL_CHECKS, resources=_resources(store), run_config=keep_leaks, instance=dagster_instance,
        raise_on_error=False, selection=dg.AssetSelection.assets("cleaned_split", "training_probe"),
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["cleaned_leakage_rate"].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "cleaned_split" in materialized and "training_probe" not in materialized

    manual = dg.materialize([training_probe], resources=_resources(store), instance=dagster_instance,
                            raise_on_error=False)
    assert not manual.success
    message = _failure_message(manual)
    assert "cleaned_leakage_rate" in message and evaluations["cleaned_leakage_rate"].description in message


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
