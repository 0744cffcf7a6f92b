"""A 2-D map of the embeddings (t-SNE from scikit-learn) for the review app.

t-SNE keeps local neighbourhoods, so a batch of foreign images that sits together in the
embedding shows up as its own island, apart from the classes. Large sets are subsampled
(flagged off-topic samples always stay in) to keep the map a few seconds of CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

MAX_POINTS = 3000
# The map rings the lowest-scoring few percent for off-topic even when the cut-off flags none:
# a small foreign batch can sit just above an automatic cut-off and still form its own island.
SUSPECT_FRACTION = 0.05


@dataclass
class MapPoint:
    sample_id: str
    path: str
    split: str
    label: str | None
    off_topic: bool
    suspect: bool  # among the lowest off-topic scores (SUSPECT_FRACTION), flagged or not
    x: float  # in [0, 1]
    y: float


def embedding_map(frame: pd.DataFrame, *, max_points: int = MAX_POINTS, seed: int = 0) -> list[MapPoint]:
    """Points in the unit square from `frame` (columns sample_id, vector, path, split, label, off_topic)."""
    if len(frame) < 3:
        coords = np.full((len(frame), 2), 0.5)
        return _points(frame, coords)
    if len(frame) > max_points:
        flagged = frame[frame["off_topic"]]
        rest = frame[~frame["off_topic"]].sample(n=max(0, max_points - len(flagged)), random_state=seed)
        frame = pd.concat([flagged.head(max_points), rest]).sort_values("sample_id")
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in frame["vector"]])
    perplexity = float(min(30.0, max(2.0, (len(frame) - 1) / 3)))
    coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                  metric="cosine").fit_transform(vectors)
    low, high = coords.min(axis=0), coords.max(axis=0)
    coords = (coords - low) / np.where(high > low, high - low, 1.0)
    return _points(frame, coords)


def _points(frame: pd.DataFrame, coords: np.ndarray) -> list[MapPoint]:
    scores = frame["off_topic_score"] if "off_topic_score" in frame else pd.Series(np.nan, index=frame.index)
    n_suspects = max(1, int(round(SUSPECT_FRACTION * len(frame))))
    suspects = set(scores.dropna().nsmallest(n_suspects).index)
    return [MapPoint(str(r.sample_id), str(r.path), str(r.split), None if pd.isna(r.label) else str(r.label),
                     bool(r.off_topic), index in suspects, float(x), float(y))
            for index, r, (x, y) in zip(frame.index, frame.itertuples(), coords)]
