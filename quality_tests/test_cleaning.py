import json

import numpy as np
import pandas as pd
import pytest

from quality_assets.cleaning import CleaningPolicy, apply_policy


def _samples(**overrides):
    base = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d", "e", "f", "g"],
        "path": [f"p/{x}.png" for x in "abcdefg"],
        "split": ["train", "train", "test", "train", "train", "train", "train"],
        "label": ["1", "1", "1", "2", "3", "4", "5"],
        "off_topic_issue": [False] * 7,
        "duplicate_group": [-1] * 7,
        "leakage_partner_of": [False] * 7,
        "label_error_issue": [False] * 7,
        "label_error_suggested": [None] * 7,
        "label_error_confidence": [np.nan] * 7,
    })
    for column, values in overrides.items():
        base[column] = values
    return base


def test_every_row_gets_an_action_and_a_reason_and_clean_rows_are_kept():
    split = apply_policy(_samples(), CleaningPolicy())
    assert (split.action == "keep").all()
    assert (split.reason == "no issue").all()
    assert split.label.tolist() == _samples().label.tolist()


def test_duplicate_group_keeps_the_eval_member_and_drops_train_copies():
    samples = _samples(duplicate_group=[0, 0, 0, -1, -1, -1, -1])
    split = apply_policy(samples, CleaningPolicy()).set_index("sample_id")
    assert split.action["c"] == "keep"  # the test copy is the representative
    assert split.action["a"] == split.action["b"] == "drop"
    assert "near_duplicate" in split.reason["a"]


def test_confident_label_errors_are_relabelled_and_unconfident_ones_dropped():
    samples = _samples(
        label_error_issue=[False, False, False, True, True, False, False],
        label_error_suggested=[None, None, None, "7", "8", None, None],
        label_error_confidence=[np.nan, np.nan, np.nan, 0.95, 0.4, np.nan, np.nan],
    )
    split = apply_policy(samples, CleaningPolicy(relabel_confidence=0.8)).set_index("sample_id")
    assert (split.action["d"], split.label["d"], split.original_label["d"]) == ("relabel", "7", "2")
    assert split.action["e"] == "drop"
    keep_policy = apply_policy(samples, CleaningPolicy(unconfident_label_errors="keep")).set_index("sample_id")
    assert keep_policy.action["e"] == "keep" and "flagged" in keep_policy.reason["e"]


def test_off_topic_and_train_leaks_are_dropped_but_eval_rows_stay_fixed():
    samples = _samples(off_topic_issue=[False, False, True, False, True, False, False],
                       leakage_partner_of=[True, False, False, False, False, False, False])
    split = apply_policy(samples, CleaningPolicy()).set_index("sample_id")
    assert split.action["e"] == "drop" and split.reason["e"] == "off_topic"
    assert split.action["a"] == "drop" and "leakage" in split.reason["a"]
    assert split.action["c"] == "keep"  # an eval row is never dropped unless touch_eval_splits
    touched = apply_policy(samples, CleaningPolicy(touch_eval_splits=True)).set_index("sample_id")
    assert touched.action["c"] == "drop"


def test_the_trusted_label_book_is_never_cleaned_and_represents_its_duplicate_group():
    samples = _samples(split=["train", "trusted", "train", "trusted", "train", "train", "train"],
                       duplicate_group=[0, 0, -1, -1, -1, -1, -1],
                       off_topic_issue=[False, False, False, True, False, False, False],
                       label_error_issue=[False, True, False, False, False, False, False],
                       label_error_suggested=[None, "9", None, None, None, None, None],
                       label_error_confidence=[np.nan, 0.99, np.nan, np.nan, np.nan, np.nan, np.nan])
    for policy in (CleaningPolicy(), CleaningPolicy(touch_eval_splits=True)):
        split = apply_policy(samples, policy).set_index("sample_id")
        assert split.action["b"] == "keep" and split.label["b"] == "1"  # flagged, still kept as is
        assert split.action["d"] == "keep"                              # off-topic, still kept
        assert split.action["a"] == "drop" and "near_duplicate" in split.reason["a"]  # the train copy goes


def test_latest_human_review_overrides_the_policy():
    samples = _samples(off_topic_issue=[False, False, False, False, True, False, False])
    reviews = pd.DataFrame({
        "sample_id": ["e", "e", "f"],
        "issue_type": ["off_topic", "off_topic", "label_error"],
        "decision": ["drop", "keep", "relabel"],
        "new_label": [None, None, "9"],
        "decided_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-01"]),
    })
    split = apply_policy(samples, CleaningPolicy(), reviews).set_index("sample_id")
    assert split.action["e"] == "keep" and split.reason["e"].startswith("review: keep")
    assert (split.action["f"], split.label["f"]) == ("relabel", "9")


# ---------------------------------------------------------------- component policies


def test_component_policies_are_off_by_default_and_a_bad_kind_is_refused():
    samples = _samples(duplicate_group=[0, 0, 0, -1, -1, -1, -1], label=["1", "1", "2", "2", "3", "4", "5"])
    default = apply_policy(samples, CleaningPolicy()).set_index("sample_id")
    assert not default.reason.str.startswith("component").any()
    with pytest.raises(ValueError, match="variance_kind"):
        CleaningPolicy(component_variance_kind="exponential")


def test_component_drops_come_before_the_dedupe_and_relabels_after_it():
    # group 0: train a, b (label 1) and d (planted label 2), with eval c (label 1); group 1: e, f disagree.
    samples = _samples(duplicate_group=[0, 0, 0, 0, 1, 1, -1], label=["1", "1", "1", "2", "3", "4", "5"])
    pruned = apply_policy(samples, CleaningPolicy(prune_component_images=True)).set_index("sample_id")
    assert (pruned.action["d"], pruned.reason["d"]) == ("drop", "component image_pruning: group 0 (rare: 2)")
    assert pruned.action["c"] == "keep"                       # the eval member stays the representative
    assert pruned.reason["a"].startswith("near_duplicate")    # and the train copies still go
    assert pruned.action["e"] == "keep" and pruned.action["f"] == "drop"  # a 1:1 pair has no rare label

    # Label pruning relabels the kept representative: without an eval member it is the lowest sample_id.
    samples = _samples(duplicate_group=[-1, -1, -1, 0, 0, 0, -1], label=["1", "1", "1", "2", "3", "3", "5"],
                       split=["train"] * 7)
    relabelled = apply_policy(samples, CleaningPolicy(prune_component_labels=True)).set_index("sample_id")
    assert (relabelled.action["d"], relabelled.label["d"], relabelled.original_label["d"]) == ("relabel", "3", "2")
    assert relabelled.reason["d"] == "component label_pruning: group 0 (removed: 2)"
    assert relabelled.action["e"] == relabelled.action["f"] == "drop"  # dedupe keeps d
    bad = apply_policy(samples, CleaningPolicy(prune_bad_components=True, component_variance_threshold=0.4))
    bad = bad.set_index("sample_id")
    assert (bad.action[["d", "e", "f"]] == "drop").all()     # V = 4/9 > 0.4: the whole component goes
    assert bad.reason["d"].startswith("component bad_component: group 0 (label variance 0.444 > 0.4")


def test_multi_label_components_are_cleaned_per_tag():
    samples = _samples(duplicate_group=[0, 0, 0, -1, -1, -1, -1], split=["train"] * 7,
                       label=["hat|male", "hat|male", "bag|hat|male", "a", "b", "c", "d"])
    split = apply_policy(samples, CleaningPolicy(dedupe_groups=False, intersect_component_labels=True))
    split = split.set_index("sample_id")
    assert (split.action["c"], split.label["c"]) == ("relabel", "hat|male")
    assert split.reason["c"] == "component label_intersection: group 0 (removed: bag)"
    assert (split.action[["a", "b", "d"]] == "keep").all()


def _store_with_components(home, data_root):
    """A real store: a multi-label manifest, a score run whose flagged pairs form two components
    (one with a planted extra tag on one member, one whose members share no tag) and a singleton."""
    from datetime import datetime

    from quality_assets.store import Store, insert_df

    store = Store(home)
    labels = {"p0": "hat|male", "p1": "hat|male", "p2": "hat|male", "p3": "bag|hat|male",
              "q0": "skirt", "q1": "coat", "s0": "umbrella"}
    manifest = pd.DataFrame({
        "sample_id": list(labels), "drop_id": "drop-1", "path": [f"train/{k}.png" for k in labels],
        "label": list(labels.values()), "labels": [v.split("|") for v in labels.values()], "split": "train",
        "ingested_at": datetime(2026, 1, 1),
    })
    pairs = pd.DataFrame({"sample_a": ["p0", "p1", "p2", "q0"], "sample_b": ["p1", "p2", "p3", "q1"],
                          "group_id": [0, 0, 0, 1]})
    pairs = pairs.assign(score_version="score-1", distance=0.01, score=0.01, rank=np.arange(1, 5), is_issue=True,
                         evidence="embedding")
    with store.connect() as conn:
        insert_df(conn, "drops", pd.DataFrame([{"drop_id": "drop-1", "data_root": str(data_root), "drop_dir": ".",
                                                "layout": "csv", "n_accepted": len(manifest)}]))
        insert_df(conn, "raw_manifest", manifest)
        insert_df(conn, "score_runs", pd.DataFrame([{"score_version": "score-1", "model_version": "model-1",
                                                     "manifest_version": "m-1", "created_at": datetime(2026, 1, 2)}]))
        insert_df(conn, "pair_scores", pairs)
    return store


def test_component_policies_through_build_cleaned_split_on_a_real_store(tmp_path):
    from quality_assets.score_run import build_cleaned_split

    store = _store_with_components(tmp_path / "home", tmp_path / "data")
    policy = CleaningPolicy(dedupe_groups=False, prune_component_labels=True, component_label_min_ratio=0.5,
                            prune_bad_components=True)
    with store.connect() as conn:
        result = build_cleaned_split(conn, policy)
        stored = conn.execute("SELECT sample_id, label, action, reason FROM cleaned_split ORDER BY sample_id").df()
        policy_json = conn.execute("SELECT policy_json FROM split_versions").fetchone()[0]
    rows = stored.set_index("sample_id")
    assert (rows.action["p3"], rows.label["p3"]) == ("relabel", "hat|male")
    assert rows.reason["p3"] == "component label_pruning: group 0 (removed: bag)"
    # q0/q1 share nothing: V = 0.5 * 0.5 (skirt) + 0.5 * 0.5 (coat) = 0.5 > 0.45, the bad component is dropped whole.
    assert (rows.action[["q0", "q1"]] == "drop").all()
    assert rows.reason["q0"] == "component bad_component: group 1 (label variance 0.5 > 0.45, plain)"
    assert (rows.action[["p0", "p1", "p2", "s0"]] == "keep").all()
    assert result.counts["by_reason"]["component bad_component: group 1 (label variance 0.5 > 0.45, plain)"] == 2
    assert json.loads(policy_json)["prune_component_labels"] is True


def test_cleaned_split_asset_takes_the_component_policies_from_its_run_config(tmp_path, dagster_instance):
    import dagster as dg

    from quality_assets.defs.resources import QualityStoreResource
    from quality_assets.defs.scoring.assets import cleaned_split

    store = _store_with_components(tmp_path / "home", tmp_path / "data")
    config = {"dedupe_groups": False, "intersect_component_labels": True}
    result = dg.materialize([cleaned_split], resources={"store": QualityStoreResource(home=str(store.home))},
                            run_config={"ops": {"cleaned_split": {"config": config}}}, instance=dagster_instance)
    assert result.success
    metadata = result.asset_materializations_for_node("cleaned_split")[0].metadata
    reasons = metadata["reasons"].value
    assert reasons["component label_intersection: group 0 (removed: bag)"] == 1
    assert reasons["component label_intersection: group 1 (no shared label; removed: coat)"] == 1
    with store.connect() as conn:
        labels = dict(conn.execute("SELECT sample_id, label FROM cleaned_split WHERE action = 'relabel'").fetchall())
    assert labels == {"p3": "hat|male"}
