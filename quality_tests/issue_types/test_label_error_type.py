"""The label-error issue type: fused evidence finds flips, and samples flagged as off-topic are
reported as off-topic, not as label errors."""

import numpy as np
import pandas as pd

from quality_assets.issue_types import IssueResult, ScoringInputs, View, get_issue_type
from quality_assets.knn import build_knn_graph


def _inputs(rng):
    centres = rng.normal(0, 3, size=(3, 24))
    x = np.concatenate([c + rng.normal(0, 1, size=(100, 24)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.repeat(np.array(["a", "b", "c"], dtype=object), 100)
    flipped = np.array([3, 150, 280])
    labels[flipped] = ["b", "c", "a"]
    manifest = pd.DataFrame({"sample_id": [f"s{i}" for i in range(300)], "label": labels,
                             "split": ["train"] * 300})
    inputs = ScoringInputs(manifest.sample_id.to_numpy(dtype=object), manifest,
                           {"ssl": View(build_knn_graph(x, 10), x)})
    return inputs, flipped


def test_flips_rank_first_with_the_true_class_suggested():
    inputs, flipped = _inputs(np.random.default_rng(0))
    t = get_issue_type("label_error")
    result = t.score(inputs, t.Options(), {})
    assert set(np.argsort(result.score)[:3]) == set(flipped)
    assert list(result.suggested[flipped]) == ["a", "b", "c"]
    assert (result.confidence[flipped] > 0.5).all()


def test_off_topic_samples_are_not_scored_as_label_errors():
    inputs, flipped = _inputs(np.random.default_rng(0))
    off_topic = np.zeros(300, dtype=bool)
    off_topic[flipped[0]] = True
    t = get_issue_type("label_error")
    found = {"off_topic": IssueResult(score=np.where(off_topic, 0.0, 1.0), is_issue=off_topic)}
    result = t.score(inputs, t.Options(), found)
    assert np.isnan(result.score[flipped[0]]) and result.suggested[flipped[0]] is None
    assert not result.is_issue[flipped[0]]
    assert set(np.argsort(result.score)[:2]) == set(flipped[1:])
    kept = t.score(inputs, t.Options(skip_off_topic=False), found)
    assert np.isfinite(kept.score[flipped[0]])


def test_trusted_samples_are_never_label_error_candidates():
    inputs, flipped = _inputs(np.random.default_rng(0))
    splits = np.array(["train"] * 300, dtype=object)
    splits[flipped[0]] = "trusted"          # the label book says this label is right, whatever it looks like
    splits[np.arange(1, 300, 10)] = "trusted"
    inputs.manifest["split"] = splits
    t = get_issue_type("label_error")
    result = t.score(inputs, t.Options(), {})
    trusted = splits == "trusted"
    assert np.isnan(result.score[trusted]).all() and not result.is_issue[trusted].any()
    assert all(s is None for s in result.suggested[trusted])
    assert set(np.argsort(result.score)[:2]) == set(flipped[1:])
    assert result.is_issue[flipped[1:]].all()
