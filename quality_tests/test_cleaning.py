import numpy as np
import pandas as pd

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
