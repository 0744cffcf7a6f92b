"""The property view: robust standardisation of the ingest statistics and its kNN graph."""

import numpy as np
import pandas as pd

from quality_assets.knn import KnnGraph
from quality_assets.property_view import property_graph, property_vectors
from quality_assets.scores.merge_tree import group_join_heights, merge_tree_from_graph
from quality_assets.scores.off_topic import fused_off_topic_scores, property_isolation


def _manifest(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "brightness_p05": rng.uniform(0.0, 0.05, n), "brightness_p50": rng.uniform(0.1, 0.3, n),
        "brightness_p95": rng.uniform(0.9, 1.0, n), "entropy": rng.normal(1.8, 0.2, n),
        "edge_strength": rng.normal(0.08, 0.01, n), "blur_score": rng.normal(12000, 2000, n),
        "is_grayscale": np.ones(n, bool), "aspect_ratio": np.ones(n), "width": np.full(n, 28), "height": np.full(n, 28),
    })


def test_constant_columns_are_left_out_and_missing_values_sit_at_the_median():
    rng = np.random.default_rng(0)
    m = _manifest(200, rng)
    m.loc[5, "entropy"] = np.nan
    x = property_vectors(m)
    # is_grayscale, aspect_ratio and the pixel count are constant here: six columns remain.
    assert x.shape == (200, 6) and np.isfinite(x).all()
    assert abs(float(np.median(x[:, 3]))) < 1e-6 and x[5, 3] == 0.0


def test_a_batch_of_blurred_images_joins_late_in_the_property_view():
    rng = np.random.default_rng(1)
    m = _manifest(400, rng)
    batch = np.arange(390, 400)  # ten heavily blurred, washed-out images, alike among themselves
    m.loc[batch, "blur_score"] = rng.uniform(1.0, 5.0, batch.size)
    m.loc[batch, "entropy"] = rng.normal(4.0, 0.1, batch.size)
    graph = property_graph(property_vectors(m), k=8)
    assert graph.neighbors.shape == (400, 8) and not (graph.neighbors == np.arange(400)[:, None]).any()
    iso = property_isolation(graph)
    assert set(np.argsort(-iso)[:10]) == set(batch)
    # Fused with a learned score that sees nothing: the batch still ranks first, and a sample the
    # learned views single out stays near the top too.
    learned = np.full(400, 0.5)
    learned[7] = 0.01
    fused = fused_off_topic_scores(learned, graph)
    assert set(np.argsort(fused, kind="stable")[:11]) == set(batch) | {7}


def test_a_far_property_batch_outranks_a_weak_learned_views_tail():
    # A learned view that sees nothing but noise still has a top ten; ranked, those ten sat level
    # with the property view's far batch (rank fusion put 9 of the batch behind them). In spreads
    # above each view's bulk, the batch is far out and the noise's tail is not.
    rng = np.random.default_rng(3)
    m = _manifest(400, rng)
    batch = np.arange(390, 400)
    m.loc[batch, "blur_score"] = rng.uniform(1.0, 5.0, batch.size)
    m.loc[batch, "entropy"] = rng.normal(4.0, 0.1, batch.size)
    graph = property_graph(property_vectors(m), k=8)
    learned = 1.0 / (1.0 + np.exp(rng.normal(0.0, 1.0, 400)))
    fused = fused_off_topic_scores(learned, graph)
    assert set(np.argsort(fused, kind="stable")[:10]) == set(batch)
    assert fused.shape == (400,) and ((fused > 0) & (fused < 1)).all()


def test_property_isolation_reads_the_unsquashed_distances():
    # The stored graph squashes d into d / (d + s); the isolation must equal the one computed on
    # d / s itself, where a batch twice as far reads about log(2) more isolated, not about the same.
    rng = np.random.default_rng(4)
    m = _manifest(300, rng)
    near, far = np.arange(290, 294), np.arange(294, 298)  # smaller than k: linked to the bulk in the graph
    m.loc[near, "entropy"] = 1.8 + 20 * 0.2
    m.loc[far, "entropy"] = 1.8 - 40 * 0.2  # the other side: the batches do not meet first
    graph = property_graph(property_vectors(m), k=8)
    d = graph.distances.astype(np.float64)
    unsquashed = KnnGraph(neighbors=graph.neighbors, distances=(d / (1.0 - d)).astype(np.float32),
                          index_kind="flat", recall_at_k=None)
    tree = merge_tree_from_graph(unsquashed, None)
    expected = np.log(np.maximum(h := group_join_heights(*tree, 32), 0.01 * np.median(h)) / np.median(h))
    np.testing.assert_allclose(property_isolation(graph), expected, rtol=1e-4, atol=1e-4)
    assert property_isolation(graph)[far].min() > property_isolation(graph)[near].max() + 0.3


def test_unusual_statistics_count_less_for_a_sample_the_learned_views_find_typical():
    # Two property outliers equally far out; the learned views hold one deep in a dense
    # neighbourhood (a large silhouette among its kind) and find the other ordinary.
    rng = np.random.default_rng(5)
    m = _manifest(400, rng)
    held, ordinary = 398, 399
    m.loc[[held, ordinary], "entropy"] = 1.8 + 30 * 0.2
    m.loc[held, "edge_strength"], m.loc[ordinary, "edge_strength"] = 0.08, 0.08
    graph = property_graph(property_vectors(m), k=8)
    learned = 1.0 / (1.0 + np.exp(rng.normal(0.0, 1.0, 400)))
    learned[ordinary] = 0.5                        # log-odds 0: about the median
    learned[held] = 1.0 / (1.0 + np.exp(-3.0))     # log-odds -3: far more typical than the median
    fused = fused_off_topic_scores(learned, graph)
    order = list(np.argsort(fused, kind="stable"))
    assert order[0] == ordinary and order.index(held) > 0
    assert fused[held] > fused[ordinary]
