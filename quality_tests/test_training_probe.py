import numpy as np
import pandas as pd
import pytest

from quality_assets.training_probe import consumer_skip_reason, train_probes


def test_cleaning_flipped_training_labels_improves_the_probe():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=600)
    x = centers[y] + rng.normal(size=(600, 8))
    split = np.where(np.arange(600) < 450, "train", "test")
    given = y.astype(str).astype(object)
    flipped = (split == "train") & (rng.random(600) < 0.45)
    given[flipped] = ((y[flipped] + 1) % 3).astype(str)
    frame = pd.DataFrame({
        "split": split, "original_label": given,
        "label": np.where(flipped, y.astype(str), given),  # the cleaned split restored them
        "action": np.where(flipped, "relabel", "keep"),
    })
    result = train_probes(frame, x)
    assert result.n_eval == 150
    assert result.accuracy_cleaned > result.accuracy_raw
    assert result.accuracy_cleaned > 0.9


def test_probe_needs_an_eval_split():
    frame = pd.DataFrame({"split": ["train"] * 4, "original_label": list("aabb"), "label": list("aabb"),
                          "action": ["keep"] * 4})
    with pytest.raises(ValueError, match="eval"):
        train_probes(frame, np.eye(4))


def _split_frame(splits, actions=None):
    n = len(splits)
    return pd.DataFrame({"split": splits, "original_label": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
                         "label": ["a", "b"] * (n // 2) + ["a"] * (n % 2), "action": actions or ["keep"] * n})


def test_a_split_without_train_or_eval_rows_says_why_each_consumer_skips():
    """Auditing a training set before anyone split it, or a test set on its own, is ordinary input:
    the consumers say what they lack instead of failing the audit."""
    assert consumer_skip_reason(_split_frame(["train", "train", "test", "test"])) is None
    assert consumer_skip_reason(_split_frame(["train", "train", "test", "test"]), "cnn") is None
    train_only = _split_frame(["train"] * 4)
    for consumer in ("linear", "cnn"):
        assert "no labelled" in consumer_skip_reason(train_only, consumer)
        assert "val or test" in consumer_skip_reason(train_only, consumer)
    test_only = _split_frame(["test"] * 4)
    assert "no labelled train samples" in consumer_skip_reason(test_only)
    assert "no labelled train samples" in consumer_skip_reason(test_only, "cnn")
    # The linear probe is scored on a trusted split alone; the CNN reports val/test figures too.
    trusted = _split_frame(["train", "train", "trusted", "trusted"])
    assert consumer_skip_reason(trusted) is None
    assert "val or test" in consumer_skip_reason(trusted, "cnn")
    # Eval rows without a label do not count, and neither does a train split the cleaning emptied.
    unlabelled = _split_frame(["train", "train", "test", "test"])
    unlabelled.loc[2:, "original_label"] = None
    assert "eval" in consumer_skip_reason(unlabelled)
    dropped = _split_frame(["train", "train", "test", "test"], ["drop", "drop", "keep", "keep"])
    assert "dropped every train sample" in consumer_skip_reason(dropped)
    with pytest.raises(ValueError, match="dropped every train sample"):
        train_probes(dropped, np.eye(4))


def test_multi_label_probe_is_one_vs_rest_and_scores_sets_and_tags():
    rng = np.random.default_rng(1)
    tags = np.array(["a", "b", "c", "d"], dtype=object)
    truth = rng.random((600, 4)) < 0.4
    truth[~truth.any(1), 0] = True
    x = truth @ (rng.normal(size=(4, 12)) * 3) + rng.normal(size=(600, 12))
    split = np.where(np.arange(600) < 450, "train", "test")
    given = truth.copy()
    noisy = (split == "train")[:, None] & (rng.random((600, 4)) < 0.3)   # 30% of train tags flipped
    given ^= noisy
    given[~given.any(1), 1] = True
    as_label = lambda m: np.asarray(["|".join(tags[r]) for r in m], dtype=object)  # noqa: E731
    frame = pd.DataFrame({
        "split": split, "original_label": as_label(given), "label": as_label(truth),
        "action": np.where(noisy.any(1), "relabel", "keep"),
    })
    result = train_probes(frame, x)
    assert result.multi_label and result.n_eval == 150
    # Measured: set accuracy 0.87 raw -> 1.0 cleaned, tag accuracy 0.97 -> 1.0. One class per set
    # (the old probe) reached 0.60 on the raw split: a flipped tag made each noisy set its own class.
    assert result.tag_accuracy_cleaned > result.tag_accuracy_raw > 0.9
    assert result.accuracy_cleaned > result.accuracy_raw > 0.75


def test_trusted_split_is_the_eval_set_and_never_trained_on():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=600)
    x = centers[y] + rng.normal(size=(600, 8))
    split = np.where(np.arange(600) < 400, "train", np.where(np.arange(600) < 500, "test", "trusted")).astype(object)
    given = y.astype(str).astype(object)
    noisy = (split == "test") & (rng.random(600) < 0.5)     # the test split's labels are half wrong
    given[noisy] = ((y[noisy] + 1) % 3).astype(str)
    frame = pd.DataFrame({"split": split, "original_label": given, "label": given, "action": "keep"})
    result = train_probes(frame, x)
    assert result.eval_set == "trusted" and result.n_eval == 100 and result.n_train_raw == 400
    assert result.accuracy_raw > 0.9          # scored on the checked labels, not the noisy test ones
    without = train_probes(frame[split != "trusted"].reset_index(drop=True), x[split != "trusted"])
    assert without.eval_set == "cleaned eval" and without.accuracy_raw < 0.75
