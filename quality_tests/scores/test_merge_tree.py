"""The single-linkage merge tree of a kNN graph and its walks (`scores.merge_tree`)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

import quality_assets.scores.off_topic as off_topic
from quality_assets.knn import build_knn_graph
from quality_assets.scores.merge_tree import (
    _closest_between,
    _closest_pair,
    _nearest_outside,
    group_join_heights,
    merge_tree_from_graph,
)

from .dense_reference import clustered_vectors, dense_distances
from .test_off_topic import _with_offtopic_batch


def test_graph_merge_tree_is_exact_single_linkage_when_graph_holds_the_mst() -> None:
    x, _ = clustered_vectors(800, 16, n_clusters=1, spread=0.5, seed=2)
    d = dense_distances(x)
    _, heights, _ = merge_tree_from_graph(build_knn_graph(x, 5))
    z = linkage(squareform(d, checks=False), method="single")
    np.testing.assert_allclose(np.sort(heights), np.sort(z[:, 2]), atol=1e-6)


def test_group_join_height_of_size_two_is_the_nearest_neighbour_distance() -> None:
    x, _ = clustered_vectors(400, 16, n_clusters=3, spread=0.5, seed=30)
    graph = build_knn_graph(x, 10)
    tree = merge_tree_from_graph(graph, x)
    np.testing.assert_allclose(group_join_heights(*tree, 2), graph.distances[:, 0], atol=1e-6)
    # A size above N is capped at the root: everyone gets the top height.
    np.testing.assert_allclose(group_join_heights(*tree, 10_000), tree[1].max())


def test_group_join_height_gives_a_far_small_batch_its_join_height() -> None:
    xs, truth = _with_offtopic_batch()
    tree = merge_tree_from_graph(build_knn_graph(xs, 10), xs)
    h2, h32 = group_join_heights(*tree, 2), group_join_heights(*tree, 32)
    # Tight batch (25 < 32): close to each other, but all at the height where it joins the rest.
    assert np.median(h2[truth]) < np.median(np.delete(h2, truth))
    assert h32[truth].min() > np.quantile(np.delete(h32, truth), 0.99)
    assert np.allclose(h32[truth], h32[truth][0])


def test_closest_pair_is_the_brute_force_closest_pair_whatever_the_blocks() -> None:
    x, _ = clustered_vectors(1300, 8, n_clusters=4, spread=0.5, seed=40)
    x = x.astype(np.float32)
    lab = np.random.default_rng(40).integers(0, 3, size=x.shape[0])
    a, b = np.flatnonzero(lab == 0), np.flatnonzero(lab != 0)
    sims = x[a] @ x[b].T
    qi, bi = np.unravel_index(int(np.argmax(sims)), sims.shape)
    for block in (7, 100, b.size):
        sim, i, j = _closest_pair(x, a, b, block)
        assert (i, j) == (int(a[qi]), int(b[bi]))
        assert np.isclose(sim, sims[qi, bi], atol=1e-6)
    assert _closest_between(x, a, b)[1:] == (int(a[qi]), int(b[bi]))
    assert _nearest_outside(x, a, lab, 0)[1:] == (int(a[qi]), int(b[bi]))


def test_tree_names_stay_importable_from_off_topic() -> None:
    assert off_topic.merge_tree_from_graph is merge_tree_from_graph
    assert off_topic.group_join_heights is group_join_heights
