"""The drop judgements on data with known answers: samples from known distributions, a real faiss graph."""

import numpy as np
import pandas as pd
import pytest

from quality_assets.knn import build_knn_graph
from quality_assets.scores.drop_shift import (
    DropBatch, DropShiftSettings, graph_separation, judge_class_balance, judge_foreign_domain, judge_new_labels,
    off_topic_shift,
)


def _batch(before_labels, drop_labels, drop_id="drop_2-abc"):
    labels = list(before_labels) + list(drop_labels)
    frame = pd.DataFrame({
        "sample_id": [f"s{i:05d}" for i in range(len(labels))],
        "label": labels,
        "labels": [None] * len(labels),
        "in_drop": [False] * len(before_labels) + [True] * len(drop_labels),
        "latest_drop_id": drop_id,
    })
    return DropBatch.from_frame(frame)


def _vectors(centres, counts, rng, spread=1.0):
    parts = [c + spread * rng.normal(size=(n, len(c))) for c, n in zip(centres, counts)]
    x = np.concatenate(parts).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_new_labels_are_named_with_counts():
    verdict = judge_new_labels(_batch(["a"] * 20 + ["b"] * 20, ["a"] * 2 + ["shirt"] * 5 + ["shoe"] * 3))
    assert not verdict.passed
    assert verdict.value == 2
    assert verdict.details["new_labels"] == {"shirt": 5, "shoe": 3}
    assert verdict.line == "drop drop_2-abc: 2 new labels on 8 of 10 images: shirt (5), shoe (3)"


def test_known_labels_pass_and_the_first_drop_has_nothing_to_compare_with():
    assert judge_new_labels(_batch(["a", "b"] * 10, ["b", "a", "a"])).passed
    first = judge_new_labels(_batch([], ["a", "b"]))
    assert first.passed and "first drop" in first.message


def test_multi_label_tags_count_one_by_one():
    batch = _batch(["a|b"] * 6, ["a|c"] * 3)
    batch.frame["labels"] = [["a", "b"]] * 6 + [["a", "c"]] * 3
    verdict = judge_new_labels(batch)
    assert verdict.details["new_labels"] == {"c": 3}


def test_class_balance_same_distribution_passes_over_many_seeds():
    # Drops drawn from the earlier distribution: false warnings stay near alpha (0.001), here none in 30.
    classes = [str(c) for c in range(10)]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        before = rng.choice(classes, 500)
        drop = rng.choice(classes, 50)
        verdict = judge_class_balance(_batch(before, drop), DropShiftSettings(n_resamples=499))
        assert verdict.passed, verdict.message


def test_class_balance_shift_warns_and_names_the_classes_that_moved():
    rng = np.random.default_rng(0)
    before = rng.choice([str(c) for c in range(10)], 500)
    drop = ["3"] * 35 + ["7"] * 15
    verdict = judge_class_balance(_batch(before, drop))
    assert not verdict.passed
    assert verdict.value > 0.5
    assert list(verdict.details["moved_most"])[:2] == ["3", "7"]
    assert "3 " in verdict.message and "→70%" in verdict.message


def test_a_large_drop_with_a_tiny_shift_is_significant_but_not_worth_a_warning():
    before = ["a"] * 50_000 + ["b"] * 50_000
    drop = ["a"] * 26_000 + ["b"] * 24_000       # 52 % against 50 %: p tiny, total variation 0.02
    verdict = judge_class_balance(_batch(before, drop), DropShiftSettings(n_resamples=199))
    assert verdict.details["p_value"] <= 0.005
    assert verdict.passed


def test_too_small_a_drop_is_not_judged():
    verdict = judge_class_balance(_batch(["a", "b"] * 50, ["a", "a"]))
    assert verdict.passed and "too few" in verdict.message


@pytest.fixture(scope="module")
def blobs():
    """Three classes of 120 earlier points in 16 dimensions; the drops are added as rows at the end."""
    rng = np.random.default_rng(0)
    centres = [rng.normal(size=16) * 3 for _ in range(3)]
    return rng, centres


def _separation(before, drop, labels, in_drop):
    x = np.concatenate([before, drop])
    graph = build_knn_graph(x, k=10, method="flat")
    return graph_separation(graph.neighbors, in_drop, pd.Series(labels))


def test_a_drop_from_the_same_distribution_mixes_with_the_earlier_images(blobs):
    rng, centres = blobs
    before = _vectors(centres, [120, 120, 120], rng)
    drop = _vectors(centres, [20, 20, 20], rng)
    labels = ["a"] * 120 + ["b"] * 120 + ["c"] * 120 + ["a"] * 20 + ["b"] * 20 + ["c"] * 20
    result = _separation(before, drop, labels, np.r_[np.zeros(360, bool), np.ones(60, bool)])
    assert result.mixing > 0.8 and result.p_value > 0.01


def test_a_drop_of_one_known_class_is_not_another_domain(blobs):
    # Its neighbours are images of that class only; the null draws random drops from that class too.
    rng, centres = blobs
    before = _vectors(centres, [40, 160, 160], rng)
    drop = _vectors(centres[:1], [120], rng)
    labels = ["a"] * 40 + ["b"] * 160 + ["c"] * 160 + ["a"] * 120
    result = _separation(before, drop, labels, np.r_[np.zeros(360, bool), np.ones(120, bool)])
    assert result.mixing > 0.8 and result.p_value > 0.01


def test_a_drop_from_elsewhere_forms_its_own_region(blobs):
    rng, centres = blobs
    before = _vectors(centres, [120, 120, 120], rng)
    drop = _vectors([rng.normal(size=16) * 3, rng.normal(size=16) * 3], [25, 25], rng)
    labels = ["a"] * 120 + ["b"] * 120 + ["c"] * 120 + ["shirt"] * 25 + ["shoe"] * 25
    result = _separation(before, drop, labels, np.r_[np.zeros(360, bool), np.ones(50, bool)])
    assert result.mixing < 0.2 and result.p_value < 1e-6


def test_off_topic_shift_reads_the_direction_of_the_scores():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.uniform(0.3, 1.0, 200), rng.uniform(0.0, 0.4, 30)]
    in_drop = np.r_[np.zeros(200, bool), np.ones(30, bool)]
    shift = off_topic_shift(scores, scores < 0.1, in_drop)
    assert shift.auc > 0.95 and shift.p_value < 1e-10
    assert off_topic_shift(-scores, -scores < 0.1, in_drop).p_value > 0.5


def test_foreign_domain_verdict_from_the_graph_and_the_scores(blobs):
    rng, centres = blobs
    before = _vectors(centres, [120, 120, 120], rng)
    drop = _vectors([rng.normal(size=16) * 3], [40], rng)
    x = np.concatenate([before, drop])
    graph = build_knn_graph(x, k=10, method="flat")
    batch = _batch(["a"] * 120 + ["b"] * 120 + ["c"] * 120, ["shirt"] * 40)
    ids = list(batch.frame.sample_id)
    verdict = judge_foreign_domain(batch, graph_ids=ids, neighbors=graph.neighbors)
    assert not verdict.passed and verdict.line.startswith("drop drop_2-abc: looks like another domain")
    # Without a graph and with off-topic scores that do not single the drop out: nothing to warn about.
    scores = pd.DataFrame({"sample_id": ids, "score": rng.uniform(size=len(ids)), "is_issue": False})
    assert judge_foreign_domain(batch, off_topic=scores).passed
    assert judge_foreign_domain(batch).passed


def test_an_empty_manifest_has_no_drop_to_judge():
    empty = DropBatch.from_frame(pd.DataFrame(columns=["sample_id", "label", "labels", "in_drop", "latest_drop_id"]))
    for verdict in (judge_new_labels(empty), judge_class_balance(empty), judge_foreign_domain(empty)):
        assert verdict.passed and verdict.drop_id is None and verdict.message == "no drop to judge"


def test_graph_samples_outside_the_manifest_count_as_earlier_images(blobs):
    rng, centres = blobs
    x = np.concatenate([_vectors(centres, [60, 60, 60], rng), _vectors([rng.normal(size=16) * 3], [30], rng)])
    graph = build_knn_graph(x, k=10, method="flat")
    batch = _batch(["a"] * 60 + ["b"] * 60 + ["c"] * 50, ["shirt"] * 30)
    # Ten earlier samples left the manifest after the graph was built: the graph still holds them.
    ids = list(batch.frame.sample_id[:170]) + [f"gone{i}" for i in range(10)] + list(batch.frame.sample_id[170:])
    verdict = judge_foreign_domain(batch, graph_ids=ids, neighbors=graph.neighbors)
    assert not verdict.passed and verdict.details["graph"]["mixing"] < 0.2
