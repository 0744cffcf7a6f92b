"""Ontology insights on a planted confusion: a symmetric confusion between two classes (one class
labelled two ways) is the first merge suggestion; a larger one-way confusion is a correction, never
a merge."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quality_assets.scores.label_error import class_confusion
from quality_assets.scores.ontology import bar_chart, merge_suggestions, ontology_insights, top_corrections


def _planted():
    """Labels with planted suggestions: couch <-> sofa both ways (20 of 100, 15 of 80), wolf -> dog
    one way (30 of 100 wolves, no dog suggested wolf), and a sprinkle of single stray suggestions."""
    rng = np.random.default_rng(0)
    sizes = {"couch": 100, "sofa": 80, "wolf": 100, "dog": 300, "cat": 200, "fox": 60}
    given = np.concatenate([[c] * n for c, n in sizes.items()]).astype(object)
    suggested = given.copy()
    flagged = np.zeros(given.size, dtype=bool)

    def plant(src: str, dst: str, k: int) -> None:
        rows = rng.choice(np.flatnonzero((given == src) & ~flagged), size=k, replace=False)
        suggested[rows], flagged[rows] = dst, True

    plant("couch", "sofa", 20)
    plant("sofa", "couch", 15)
    plant("wolf", "dog", 30)
    plant("dog", "wolf", 1)      # a stray reverse suggestion is not a synonym
    plant("cat", "fox", 2)
    plant("fox", "cat", 1)
    return class_confusion(given, suggested, flagged), sizes


def test_symmetric_confusion_is_the_first_merge_and_a_one_way_confusion_is_none():
    confusion, sizes = _planted()
    merges = merge_suggestions(confusion, sizes)
    assert (merges.class_a.iloc[0], merges.class_b.iloc[0]) == ("couch", "sofa")
    assert merges.score.iloc[0] == pytest.approx(math.sqrt(20 / 100 * 15 / 80))
    assert (merges.a_to_b.iloc[0], merges.b_to_a.iloc[0]) == (20, 15)
    pairs = set(zip(merges.class_a, merges.class_b))
    assert ("dog", "wolf") not in pairs       # 30 one way, 1 back: below min_count in one direction
    assert ("cat", "fox") not in pairs        # 2 and 1
    # With min_count 1 the stray reverse counts, but its score stays far below the synonym pair's.
    loose = merge_suggestions(confusion, sizes, min_count=1, min_score=0.0)
    scores = dict(zip(zip(loose.class_a, loose.class_b), loose.score))
    assert scores[("dog", "wolf")] == pytest.approx(math.sqrt(30 / 100 * 1 / 300))
    assert scores[("couch", "sofa")] > 5 * scores[("dog", "wolf")]
    assert list(loose.score) == sorted(loose.score, reverse=True)


def test_top_corrections_are_the_most_common_in_order_and_the_chart_follows_them():
    confusion, _ = _planted()
    top = top_corrections(confusion, limit=3)
    assert list(zip(top.given_label, top.suggested_label, top["count"])) == [
        ("wolf", "dog", 30), ("couch", "sofa", 20), ("sofa", "couch", 15)]
    chart = bar_chart(top, width=600, label_width=200, count_width=40)
    assert [b.label for b in chart.bars] == ["wolf → dog", "couch → sofa", "sofa → couch"]
    assert chart.bars[0].length == chart.plot_width == 360
    assert chart.bars[1].length == pytest.approx(360 * 20 / 30, abs=0.1)
    assert [b.y for b in chart.bars] == sorted(b.y for b in chart.bars)


def test_absent_tags_missing_suggestions_and_unknown_sizes_make_no_merge():
    confusion = pd.DataFrame({
        "given_label": ["hat", "(no hat)", "a", "b", "x", "y"],
        "suggested_label": ["(no hat)", "hat", "b", "a", None, "x"],
        "count": [9, 7, 5, 5, 4, 4],
    })
    merges = merge_suggestions(confusion, {"hat": 50, "a": 10})   # b has no known size
    assert merges.empty
    assert top_corrections(confusion).suggested_label.tolist()[:2] == ["(no hat)", "hat"]
    assert "(none)" in top_corrections(confusion).suggested_label.tolist()


def test_insights_attach_examples_of_both_directions():
    confusion, sizes = _planted()
    examples = pd.DataFrame({
        "sample_id": ["s1", "s2", "s3", "s4", "w1"],
        "given_label": ["couch", "couch", "sofa", "couch", "wolf"],
        "suggested_label": ["sofa", "sofa", "couch", "sofa", "dog"],
    })
    class_sizes = pd.DataFrame({"label": list(sizes), "n": list(sizes.values())})
    insights = ontology_insights(confusion, class_sizes, examples, top=5, per_direction=2)
    first = insights.merges[0]
    assert [e["sample_id"] for e in first["examples"]] == ["s1", "s2", "s3"]
    assert len(insights.chart.bars) == 5 and not insights.empty
