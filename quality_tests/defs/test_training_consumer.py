"""The training asset's CNN consumer in a real Dagster run: the four experiments and the trusted
split's clean-eval figure land in the materialization's metadata and, per seed, in the store."""

import dagster as dg

from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.consumer_results import read_latest_consumer_result
from quality_assets.store import run_query
from quality_tests.imagefolders import make_imagefolder

TINY_SSL = {"epochs": 1, "batch_size": 16, "time_budget_s": 20.0}


def test_cnn_consumer_reports_four_experiments_and_the_trusted_eval(tmp_path, store, dagster_instance):
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 16, "b": 16}, "test": {"a": 4, "b": 4}, "trusted": {"a": 3, "b": 3}})
    run_config = {"ops": {"raw_manifest": {"config": {"data_root": str(data)}},
                          "ssl_model": {"config": TINY_SSL},
                          "training_probe": {"config": {"consumer": "cnn", "cnn_epochs": 2, "cnn_seeds": [0, 1]}}}}
    resources = {"store": QualityStoreResource(home=str(store.home)),
                 "gates": GateThresholds(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)}
    result = dg.materialize(ALL_ASSETS + ALL_CHECKS, resources=resources, run_config=run_config,
                            instance=dagster_instance, raise_on_error=False)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "training_probe" in materialized, result.get_step_failure_events()
    [probe] = result.asset_materializations_for_node("training_probe")
    meta = {k: v.value for k, v in probe.metadata.items()}
    assert meta["consumer"] == "cnn"
    for train, eval_ in (("raw", "raw"), ("cleaned", "cleaned"), ("cleaned", "raw"), ("raw", "cleaned"),
                         ("raw", "clean"), ("cleaned", "clean")):
        assert 0.0 <= meta[f"cnn_{train}_train_{eval_}_eval_mean"] <= 1.0
    assert abs(meta["accuracy_raw_split"] - meta["cnn_raw_train_clean_eval_mean"]) < 1e-4   # the trusted split's figure
    with store.connect() as conn:
        manifest = run_query(conn, "manifest_counts")
        runs = conn.execute("SELECT consumer_version, consumer, config_json FROM consumer_runs").fetchall()
        accuracies = conn.execute("SELECT * FROM consumer_accuracies").df()
        summary = read_latest_consumer_result(conn)
    assert manifest[manifest["split"] == "trusted"]["n"].sum() == 6
    # Every seed's figure is stored under the run's consumer version; the report's summary of them
    # agrees with the materialization's metadata and judges the trusted split's difference.
    [(version, consumer, config_json)] = runs
    assert version == meta["consumer_version"] and consumer == "cnn" and '"cnn_seeds": [0, 1]' in config_json
    assert len(accuracies) == 2 * 2 * 3 and set(accuracies.seed) == {0, 1}
    for e in summary.experiments:
        assert e.n_seeds == 2 and abs(e.mean - meta[f"cnn_{e.train}_train_{e.eval}_eval_mean"]) < 1e-4
    assert summary.headline.eval == "clean"
    assert abs(summary.headline.difference - meta["accuracy_change"]) < 1e-4
    # The seeds won, paired by seed, count the stored per-seed figures of the trusted split.
    clean = accuracies[accuracies["eval"] == "clean"].pivot(index="seed", columns="train", values="accuracy")
    assert meta["seeds_paired"] == 2
    assert meta["seeds_won"] == int((clean["cleaned"] > clean["raw"]).sum()) == summary.headline.seeds_won


def test_unknown_consumer_is_refused(tmp_path, store, dagster_instance):
    from quality_assets.defs.training.assets import training_probe

    result = dg.materialize([training_probe], resources={"store": QualityStoreResource(home=str(store.home))},
                            run_config={"ops": {"training_probe": {"config": {"consumer": "xgboost"}}}},
                            instance=dagster_instance, raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "linear, cnn" in failure.step_failure_data.user_failure_data.description


def test_an_audit_of_a_train_split_alone_succeeds_and_says_the_consumer_had_nothing_to_score_on(
        tmp_path, monkeypatch, capsys):
    """A training set audited before anyone split it (no val, test or trusted folder): every score
    and the cleaned split are written, the run succeeds with exit code 0, and the consumer's step
    says why it trained nothing (in its metadata and in the audit's summary) instead of failing."""
    from quality_assets.cli import _print_outcome
    from quality_assets.runner import EXIT_OK, run_audit

    data, home = tmp_path / "data", tmp_path / "home"
    make_imagefolder(data, {"train": {"a": 12, "b": 12}})
    monkeypatch.setenv("QUALITY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    outcome = run_audit(home, data, [], extra_op_config={"ssl_model": TINY_SSL}, log_level="ERROR",
                        say=lambda _: None)
    assert outcome.success, outcome.error
    assert outcome.exit_code == EXIT_OK
    assert {"issue_scores", "cleaned_split", "training_probe"} <= set(outcome.materialized)
    assert set(outcome.skipped) == {"training_probe"}
    assert "no labelled eval samples" in outcome.skipped["training_probe"]
    _print_outcome(outcome)
    assert "  skipped training_probe: no labelled eval samples" in capsys.readouterr().out
    with QualityStoreResource(home=str(home)).store().connect() as conn:
        assert conn.execute("SELECT count(*) FROM cleaned_split").fetchone()[0] == 24
        assert conn.execute("SELECT count(*) FROM consumer_runs").fetchone()[0] == 0
