import numpy as np
import pandas as pd
import pytest

from quality_assets.training_probe import train_probes


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
