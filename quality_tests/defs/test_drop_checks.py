"""The drop checks through real Dagster runs on real image files: a drop like the data before it passes
all three, a drop of another domain with new labels warns on all three (severity WARN, nothing blocked)."""

import dagster as dg
import pytest

from quality_assets.scores.drop_shift import CLASS_BALANCE, DROP_CHECK_NAMES, FOREIGN_DOMAIN, NEW_LABELS
from quality_assets.store import Store, run_query
from quality_tests.drop_scenarios import UP_TO_SCORES, audit_drop, make_drops


def _evaluations(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.check_name in DROP_CHECK_NAMES}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three drops audited in order: old, same, foreign, then foreign once more (an identical
    re-run); the drop checks' evaluations of each run."""
    tmp_path = tmp_path_factory.mktemp("drop_checks")
    data = tmp_path / "data"
    vectors = make_drops(data)
    store = Store(tmp_path / "home")
    evaluations = {}
    with dg.instance_for_test() as instance:
        # The first drop is only ingested (its label checks run); the next run scores both drops.
        for name, drop, selection in (("old", "old", ["raw_manifest"]), ("same", "same", UP_TO_SCORES),
                                      ("foreign", "foreign", UP_TO_SCORES), ("again", "foreign", UP_TO_SCORES)):
            result = audit_drop(store, data, vectors, drop, instance, selection=selection)
            assert result.success, result.get_step_failure_events()
            evaluations[name] = _evaluations(result)
    return store, evaluations


def test_the_first_drop_has_nothing_to_compare_with(runs):
    _, evaluations = runs
    assert set(evaluations["old"]) == {NEW_LABELS, CLASS_BALANCE}
    assert all(e.passed and "first drop" in e.description for e in evaluations["old"].values())


def test_a_drop_like_the_data_before_it_passes_all_three(runs):
    _, evaluations = runs
    same = evaluations["same"]
    assert set(same) == set(DROP_CHECK_NAMES)
    for name, evaluation in same.items():
        assert evaluation.passed, (name, evaluation.description)
        assert evaluation.description.startswith("drop same-")
    assert "no new labels" in same[NEW_LABELS].description
    assert same[FOREIGN_DOMAIN].metadata["value"].value > 0.5   # mixing with the earlier images


def test_a_foreign_drop_with_new_labels_warns_on_all_three(runs):
    store, evaluations = runs
    foreign = evaluations["foreign"]
    for name, evaluation in foreign.items():
        assert not evaluation.passed, (name, evaluation.description)
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "2 new labels on 20 of 20 images: shirt (10), shoe (10)" in foreign[NEW_LABELS].description
    assert "shirt 0%→50%" in foreign[CLASS_BALANCE].description
    assert "looks like another domain" in foreign[FOREIGN_DOMAIN].description
    # Both kinds of evidence point the same way: the patterns neighbour each other far more than a random
    # drop would (their pixels correlate only weakly, so not below the 0.5 mixing that alone warns), and
    # they score as more off-topic than the earlier images.
    details = foreign[FOREIGN_DOMAIN].metadata["details"].value
    assert details["graph"]["p_value"] < 1e-6 and details["graph"]["mixing"] < 0.8
    assert details["off_topic"]["auc"] > 0.9 and details["off_topic"]["p_value"] < 1e-6
    # Recorded for the report and later runs, never blocking: verify_gates ignores them.
    with store.connect(read_only=True) as conn:
        gates = run_query(conn, "latest_gates").set_index("gate")
    for name in DROP_CHECK_NAMES:
        assert not gates.loc[name, "passed"] and not gates.loc[name, "blocking"]
        assert gates.loc[name, "version"].startswith("foreign-")


def test_an_identical_rerun_reuses_the_domain_verdict_of_the_same_scores(runs):
    store, evaluations = runs
    first, again = evaluations["foreign"][FOREIGN_DOMAIN], evaluations["again"][FOREIGN_DOMAIN]
    assert first.metadata["reused"].value is False and again.metadata["reused"].value is True
    assert (again.passed, again.description) == (first.passed, first.description)
    assert again.metadata["value"].value == first.metadata["value"].value
    # The label checks are cheap and run again; the verdict recorded last is the reused one.
    assert evaluations["again"][NEW_LABELS].description == evaluations["foreign"][NEW_LABELS].description
    with store.connect(read_only=True) as conn:
        gates = run_query(conn, "latest_gates").set_index("gate")
    assert gates.loc[FOREIGN_DOMAIN, "version"].startswith("foreign-")
    assert "@" in gates.loc[FOREIGN_DOMAIN, "version"] and not gates.loc[FOREIGN_DOMAIN, "passed"]
