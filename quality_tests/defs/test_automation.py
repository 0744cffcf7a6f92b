"""Declarative automation: a new manifest flows downstream; a failing gate of the manifest or the cleaned
split stops the consumer, a failing raw data gate does not (the consumer trains on the cleaned split)."""

import dagster as dg

from quality_assets.defs.definitions import defs

UPSTREAM_OF_PROBE = ["raw_manifest", "ssl_model", "embeddings", "knn_graph", "issue_scores", "cleaned_split"]
GATES = {
    "raw_manifest": ["manifest_expectations"],
    "issue_scores": ["near_duplicate_rate", "leakage_rate", "off_topic_rate", "label_error_rate"],
    "cleaned_split": ["cleaned_leakage_rate"],
}


def _materialize(instance, *keys):
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def _check(instance, asset, name, passed):
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset), check_name=name, passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
    ))


def _requested(result) -> set[str]:
    return {r.key.to_user_string() for r in result.results if r.true_subset.size > 0}


def _evaluate(instance, cursor=None):
    return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)


def test_a_new_manifest_requests_the_downstream_assets(dagster_instance):
    first = _evaluate(dagster_instance)
    assert "ssl_model" not in _requested(first)  # nothing ingested yet

    _materialize(dagster_instance, "raw_manifest")  # what the drops sensor's run does
    second = _evaluate(dagster_instance, cursor=first.cursor)
    requested = _requested(second)
    # Eager requests the whole chain in one run; its blocking checks run in it and stop what follows.
    assert {"ssl_model", "embeddings", "knn_graph", "issue_scores", "cleaned_split"} <= requested
    assert {"raw_manifest:manifest_expectations", "issue_scores:leakage_rate",
            "cleaned_split:cleaned_leakage_rate"} <= requested
    assert "raw_manifest" not in requested  # only the sensor ingests

    third = _evaluate(dagster_instance, cursor=second.cursor)
    assert "ssl_model" not in _requested(third)  # requested once, not on every tick


def _everything_upstream_of_the_probe(instance, failing: str | None):
    cursor = _evaluate(instance).cursor
    _materialize(instance, *UPSTREAM_OF_PROBE)
    for asset, checks in GATES.items():
        for name in checks:
            _check(instance, asset, name, passed=name != failing)
    return _evaluate(instance, cursor=cursor)


def test_the_consumer_is_requested_when_every_gate_passed(dagster_instance):
    result = _everything_upstream_of_the_probe(dagster_instance, failing=None)
    assert "training_probe" in _requested(result)


def test_a_failing_cleaned_split_gate_keeps_the_consumer_from_being_requested(dagster_instance):
    result = _everything_upstream_of_the_probe(dagster_instance, failing="cleaned_leakage_rate")
    assert "training_probe" not in _requested(result)


def test_a_failing_manifest_gate_keeps_the_consumer_from_being_requested(dagster_instance):
    result = _everything_upstream_of_the_probe(dagster_instance, failing="manifest_expectations")
    assert "training_probe" not in _requested(result)


def test_a_failing_raw_leakage_gate_does_not_stop_the_consumer_of_the_cleaned_split(dagster_instance):
    result = _everything_upstream_of_the_probe(dagster_instance, failing="leakage_rate")
    assert "training_probe" in _requested(result)
