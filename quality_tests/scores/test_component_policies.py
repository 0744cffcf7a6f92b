"""Component policies on synthetic components with planted label noise: each policy does what its
definition says, per tag for multi-label data and per whole label for single-label data."""

from __future__ import annotations

import numpy as np
import pytest

from quality_assets.scores.component_policies import (
    ComponentPolicy,
    component_decisions,
    label_variance,
    variance_threshold,
)


def _planted_multi_label():
    """Four components and two singletons of pedestrian-attribute-like tag sets.

    group 0 (5): all carry hat|male, one also carries a planted extra tag `bag`
    group 1 (4): a clean component, all carry female|skirt
    group 2 (3): members disagree on everything (hat / skirt / bag|coat): a bad component
    group 3 (4): all carry coat, three carry male and one (planted) female
    singletons: carry rare tags that would be pruned if they counted
    """
    labels = (["hat|male"] * 4 + ["bag|hat|male"]
              + ["female|skirt"] * 4
              + ["hat", "skirt", "bag|coat"]
              + ["coat|male"] * 3 + ["coat|female"]
              + ["bag", "umbrella"])
    groups = [0] * 5 + [1] * 4 + [2] * 3 + [3] * 4 + [-1, -1]
    return np.asarray(groups), np.asarray(labels, dtype=object)


def test_label_variance_and_thresholds_follow_their_definitions():
    assert label_variance([1.0, 1.0]) == 0.0
    assert label_variance([0.5, 0.5]) == pytest.approx(0.5)          # a split pair, single-label
    assert label_variance([2 / 3, 1 / 3]) == pytest.approx(4 / 9)
    for kind in ("plain", "geometric", "cubic"):
        assert variance_threshold(0.4, kind, 2) == pytest.approx(0.4)  # every kind agrees on a pair
    assert variance_threshold(0.4, "plain", 8) == pytest.approx(0.4)
    assert variance_threshold(0.4, "geometric", 6) == pytest.approx(0.4 ** 3)
    assert variance_threshold(0.4, "cubic", 4) == pytest.approx(0.4 / 8)
    with pytest.raises(ValueError, match="variance_kind"):
        ComponentPolicy(variance_kind="quadratic")
    with pytest.raises(ValueError, match="label_min_ratio"):
        ComponentPolicy(label_min_ratio=0.0)


def test_nothing_is_decided_when_every_policy_is_off():
    groups, labels = _planted_multi_label()
    out = component_decisions(groups, labels, ComponentPolicy())
    assert (out.action == None).all()  # noqa: E711 (elementwise)


def test_bad_component_pruning_drops_exactly_the_incoherent_component():
    groups, labels = _planted_multi_label()
    out = component_decisions(groups, labels, ComponentPolicy(prune_bad_components=True, variance_threshold=1.0))
    # group 2: tags hat, skirt, bag, coat each on 1 of 3 members: V = 4 * (1/3)(2/3) = 8/9 < 1
    assert (out.action == None).all()  # noqa: E711
    stats = out.components.set_index("group_id")
    assert stats.loc[2, "variance"] == pytest.approx(8 / 9)
    assert stats.loc[1, "variance"] == 0.0
    assert -1 not in stats.index  # singletons are no component

    out = component_decisions(groups, labels, ComponentPolicy(prune_bad_components=True, variance_threshold=0.6))
    dropped = np.flatnonzero(out.action == "drop")
    assert dropped.tolist() == [9, 10, 11]
    assert all(r.startswith("component bad_component: group 2 (") for r in out.reason[dropped])
    # geometric: group 3 (n 4, V = 2 * 0.25 * 0.75 = 0.375 > 0.6^2 = 0.36) is bad too; group 0
    # (n 5, V = 0.2 * 0.8 = 0.16 < 0.6^2.5 = 0.28) is not.
    geometric = component_decisions(groups, labels, ComponentPolicy(prune_bad_components=True, variance_threshold=0.6,
                                                                    variance_kind="geometric"))
    assert set(np.flatnonzero(geometric.action == "drop")) == {9, 10, 11} | set(range(12, 16))
    strict = component_decisions(groups, labels, ComponentPolicy(prune_bad_components=True, variance_threshold=0.6,
                                                                 variance_kind="cubic"))
    # cubic: 0.6 * (2/5)^3 = 0.0384 for group 0 (V 0.16: bad), 0.6 * (2/4)^3 = 0.075 for group 3
    # (V 0.375: bad); group 1 (V 0) stays.
    assert set(np.flatnonzero(strict.action == "drop")) == set(range(0, 5)) | {9, 10, 11} | set(range(12, 16))


def test_label_pruning_removes_the_planted_rare_tags_only():
    groups, labels = _planted_multi_label()
    out = component_decisions(groups, labels, ComponentPolicy(prune_labels=True, label_min_ratio=0.3))
    assert out.action[4] == "relabel" and out.new_label[4] == "hat|male"          # planted `bag` removed
    assert out.reason[4] == "component label_pruning: group 0 (removed: bag)"
    assert out.action[15] == "relabel" and out.new_label[15] == "coat"            # planted `female` removed
    assert out.reason[15] == "component label_pruning: group 3 (removed: female)"
    # Each tag of group 2 has share 1/3 >= 0.3: nothing pruned; clean members untouched; singletons excluded.
    untouched = [i for i in range(len(labels)) if i not in (4, 15)]
    assert (out.action[untouched] == None).all()  # noqa: E711


def test_label_intersection_keeps_only_the_shared_tags():
    groups, labels = _planted_multi_label()
    out = component_decisions(groups, labels, ComponentPolicy(intersect_labels=True))
    assert out.new_label[4] == "hat|male" and out.action[4] == "relabel"
    assert (out.action[:4] == None).all()  # noqa: E711 (already the intersection)
    # group 3 shares only `coat`: every member loses its gender tag.
    assert out.new_label[12:16].tolist() == ["coat"] * 4
    assert (out.action[12:16] == "relabel").all()
    # group 2 shares nothing: an empty set is no label, so its members are dropped.
    assert (out.action[9:12] == "drop").all()
    assert out.reason[9].startswith("component label_intersection: group 2 (no shared label")
    assert (out.action[16:] == None).all()  # noqa: E711 (singletons)


def test_image_pruning_drops_members_with_a_label_rare_in_their_component():
    groups, labels = _planted_multi_label()
    out = component_decisions(groups, labels, ComponentPolicy(prune_images=True, image_min_ratio=0.3))
    assert np.flatnonzero(out.action == "drop").tolist() == [4, 15]
    assert out.reason[4] == "component image_pruning: group 0 (rare: bag)"


def test_precedence_bad_component_then_image_pruning_then_relabels():
    groups, labels = _planted_multi_label()
    policy = ComponentPolicy(prune_bad_components=True, variance_threshold=0.6, prune_images=True,
                             image_min_ratio=0.3, intersect_labels=True, prune_labels=True)
    out = component_decisions(groups, labels, policy)
    assert out.policy[9:12].tolist() == ["bad_component"] * 3
    assert out.policy[4] == out.policy[15] == "image_pruning"
    assert out.policy[12:15].tolist() == ["label_intersection"] * 3


def test_single_label_components_work_on_whole_labels():
    # group 0: four `cat` and one planted `dog`; group 1: a split pair; group 2: clean.
    labels = np.asarray(["cat"] * 4 + ["dog"] + ["cat", "dog"] + ["dog"] * 3, dtype=object)
    groups = np.asarray([0] * 5 + [1] * 2 + [2] * 3)
    pruned = component_decisions(groups, labels, ComponentPolicy(prune_labels=True))
    # the planted label is replaced by the component's label; a 1:1 pair has no minority (0.5 >= 0.5)
    assert (pruned.action[4], pruned.new_label[4]) == ("relabel", "cat")
    assert np.flatnonzero(pruned.action != None).tolist() == [4]  # noqa: E711
    bad = component_decisions(groups, labels, ComponentPolicy(prune_bad_components=True))
    # V: group 0 = 1 - (0.8^2 + 0.2^2) = 0.32, group 1 = 0.5, group 2 = 0: only the split pair is bad
    assert np.flatnonzero(bad.action == "drop").tolist() == [5, 6]
    images = component_decisions(groups, labels, ComponentPolicy(prune_images=True))
    assert np.flatnonzero(images.action == "drop").tolist() == [4]
    # `cat|dog` would be two tags; forced single-label it is one whole label, rare in its component
    forced = component_decisions([0, 0, 0], ["a", "a", "a|b"], ComponentPolicy(prune_images=True, image_min_ratio=0.5),
                                 multi_label=False)
    assert forced.action.tolist() == [None, None, "drop"] and forced.reason[2].endswith("(rare: a|b)")


def test_members_that_do_not_count_change_the_shares_and_get_no_decision():
    labels = np.asarray(["cat", "cat", "dog", "dog", "dog"], dtype=object)
    groups = np.zeros(5, dtype=np.int64)
    counted = np.array([True, True, True, False, False])  # two dogs already dropped by an earlier rule
    out = component_decisions(groups, labels, ComponentPolicy(prune_images=True), counted=counted)
    assert out.action.tolist() == [None, None, "drop", None, None]
    # with only one labelled member left a group is no component
    lone = component_decisions([0, 0], ["cat", None], ComponentPolicy(intersect_labels=True))
    assert (lone.action == None).all() and lone.components.empty  # noqa: E711
