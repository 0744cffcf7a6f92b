"""The property view: each image as its ingest statistics (brightness percentiles, entropy, edge
and blur strength, colour or not, aspect ratio, size), robustly standardised, and their kNN graph.

Why a third view: a foreign image that keeps the dataset's content statistics close enough for the
learned views (a heavily blurred, posterised copy of a digit; a grayscale photo among colour
icons) is often far off in these plain statistics. The off-topic score reads this view's isolation
next to the learned views' (`scores.off_topic`). Built by the representation stage, from columns
ingest already stored; no image is read again.
"""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd

from quality_assets.knn import KnnGraph

__all__ = ["PROPERTY_COLUMNS", "property_graph", "property_vectors"]

EXACT_LIMIT = 50_000

# (column, transform): heavy-tailed magnitudes enter as logs so one sharp image is not an outlier.
PROPERTY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("brightness_p05", "identity"),
    ("brightness_p50", "identity"),
    ("brightness_p95", "identity"),
    ("entropy", "identity"),
    ("edge_strength", "identity"),
    ("blur_score", "log1p"),
    ("is_grayscale", "identity"),
    ("aspect_ratio", "log"),
    ("pixels", "log"),
)


def _column(manifest: pd.DataFrame, name: str) -> np.ndarray | None:
    if name == "pixels":
        if "width" not in manifest or "height" not in manifest:
            return None
        return pd.to_numeric(manifest["width"], errors="coerce").to_numpy(float) * \
            pd.to_numeric(manifest["height"], errors="coerce").to_numpy(float)
    if name not in manifest:
        return None
    return pd.to_numeric(manifest[name].astype(float), errors="coerce").to_numpy(float)


def property_vectors(manifest: pd.DataFrame) -> np.ndarray:
    """float32 [N, d]: the statistics, centred on their median and divided by a robust spread
    (IQR / 1.349, at least 5% of the standard deviation so a column that is nearly constant does not
    turn its few exceptions into infinities). Constant or missing columns are left out; missing
    values sit at the median."""
    columns = []
    for name, transform in PROPERTY_COLUMNS:
        values = _column(manifest, name)
        if values is None:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            if transform == "log1p":
                values = np.log1p(np.maximum(values, 0.0))
            elif transform == "log":
                values = np.log(np.where(values > 0, values, np.nan))
        columns.append(values)
    if not columns:
        return np.zeros((len(manifest), 1), dtype=np.float32)
    x = np.stack(columns, axis=1)
    med = np.nanmedian(x, axis=0)
    x = np.where(np.isfinite(x), x, med)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    spread = np.maximum((q75 - q25) / 1.349, 0.05 * x.std(axis=0))
    varying = spread > 1e-12
    if not varying.any():
        return np.zeros((len(manifest), 1), dtype=np.float32)
    return ((x[:, varying] - med[varying]) / spread[varying]).astype(np.float32)


def property_graph(vectors: np.ndarray, k: int = 16) -> KnnGraph:
    """Exact Euclidean kNN (the view has a handful of dimensions), distances mapped monotonically
    into [0, 1) as d / (d + median first-neighbour distance) so the merge-tree code that expects
    cosine-like distances reads it unchanged."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    kk = min(k, n - 1)
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatL2(x.shape[1])
    else:
        # Exact search is N^2 even in a handful of dimensions (about an hour at 1M on two cores); HNSW
        # keeps it N log N, and the off-topic score reads the graph's coarse structure, not exact ranks.
        index = faiss.IndexHNSWFlat(x.shape[1], 32)
        index.hnsw.efSearch = 64
    index.add(x)
    d2, nb = index.search(x, kk + 1)
    # Row i's own entry is usually first, but ties (identical statistics) can put it elsewhere.
    own = nb == np.arange(n)[:, None]
    drop = np.where(own.any(1), own.argmax(1), kk)
    keep = np.ones_like(own)
    keep[np.arange(n), drop] = False
    nb = nb[keep].reshape(n, kk)
    d = np.sqrt(np.maximum(d2[keep].reshape(n, kk), 0.0))
    scale = float(np.median(d[:, 0]))
    scale = scale if scale > 0 else (float(d[d > 0].min()) if (d > 0).any() else 1.0)
    return KnnGraph(neighbors=nb.astype(np.int64), distances=(d / (d + scale)).astype(np.float32),
                    index_kind="flat" if n <= EXACT_LIMIT else "hnsw", recall_at_k=None)
