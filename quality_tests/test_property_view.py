"""The property view: robust standardisation of the ingest statistics and its kNN graph."""

import numpy as np
import pandas as pd

from quality_assets.property_view import property_graph, property_vectors
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
