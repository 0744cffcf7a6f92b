"""Off-topic AP on a demo home: LAD, mean kNN distance and the two-view score.

Usage: python benchmarks/off_topic_demo.py HOME [HOME ...]   (HOME = a `qaudit demo` home with
demo/data and demo/ground_truth.csv). The pixel view is built here the way the pipeline builds
it: 16x16 area-downsampled grayscale thumbnails, zero-mean, unit-norm, kNN graph with k = 8.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from quality_lab.evaluation import evaluate_sample_ranking
from quality_assets.knn import build_knn_graph
from quality_assets.representation import load_vectors
from quality_assets.view_graphs import load_graph
from quality_assets.scores.off_topic import lad_scores, mean_knn_distance_scores, off_topic_scores
from quality_assets.store import Store


def thumbnails(paths: list[Path]) -> np.ndarray:
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L"), np.float32)) for p in paths])
    t = F.interpolate(x[:, None] / 255.0, size=(16, 16), mode="area").flatten(1)
    t = t - t.mean(1, keepdim=True)
    return np.ascontiguousarray((t / (t.norm(dim=1, keepdim=True) + 1e-8)).numpy(), dtype=np.float32)


def main(home: str) -> None:
    store = Store(home)
    with store.connect(read_only=True) as conn:
        ids, graph, _, model_version = load_graph(conn)
        vids, vectors = load_vectors(conn, model_version)
        manifest = conn.execute("SELECT sample_id, path FROM raw_manifest").df()
    position = {v: i for i, v in enumerate(vids)}
    vectors = vectors[[position[i] for i in ids]]
    path = manifest.set_index("sample_id").loc[list(ids), "path"].to_numpy()
    truth = pd.read_csv(Path(home) / "demo" / "ground_truth.csv", dtype=str, keep_default_na=False)
    pixels = thumbnails([Path(home) / "demo" / "data" / p for p in path])
    pixel_graph = build_knn_graph(pixels, 8)
    scores = {
        "LAD (lad_scores)": lad_scores(graph, vectors),
        "mean kNN distance": mean_knn_distance_scores(graph),
        "two-view (off_topic_scores)": off_topic_scores(graph, vectors, pixel_graph, pixels),
    }
    for name, s in scores.items():
        ranked = pd.DataFrame({"path": path[np.argsort(s, kind="stable")]})
        m = evaluate_sample_ranking(ranked, truth, "off_topic")
        print(f"{home}\t{name}\tAP {m['AP']:.3f}\tAUROC {m['AUROC']:.3f}\tP@50 {m['P@50']:.2f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    for h in sys.argv[1:]:
        main(h)
