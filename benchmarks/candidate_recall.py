"""Which of a benchmark-matrix cell's true copy pairs the thumbnail candidate searches hold, by kind,
and how many a crop search with given crop shapes holds (the service's code path for the
candidates; the crop search alone is searched here, on the cell's PNG files read as the service's
thumbnails are).

    python benchmarks/candidate_recall.py CELL_DIR [--shapes 0.8x0.8 0.8x0.72 0.72x0.8] [--show missed.png]

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`). Prints, per kind of
near-duplicate and leakage pair, how many pairs `pixel_view.pixel_candidate_pairs` holds (k = 8, the
service's `copy_k`; since 2026-12-04 its crop search has the three shapes below), then how many a crop
search alone holds with the square 0.8 crops only and with the given crop shapes (height x width as
shares of the side, each at the four corners and the centre; k raised by each image's own entries).
`--show` writes the missed near-duplicate pairs side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from quality_assets.knn import build_knn_graph
from quality_assets.pixel_view import CROP_PLACES, crop_search_vectors, pixel_candidate_pairs, search_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import load_cell  # noqa: E402

K = 8


def _pair_keys(truth: pd.DataFrame, n: int) -> np.ndarray:
    a, b = truth["index"].to_numpy(np.int64), truth["partner_index"].to_numpy(np.int64)
    return np.minimum(a, b) * n + np.maximum(a, b)


def crop_search_keys(thumbs: np.ndarray, shapes: list[tuple[float, float]], k: int = 2 * K) -> np.ndarray:
    """Pair keys (a * n + b) of a crop search: each image's plain vector among every image's plain
    vector and crops, its first k other images."""
    n = len(thumbs)
    plain = search_vectors(thumbs)
    index = np.vstack([plain, crop_search_vectors(thumbs, whole=plain, shapes=shapes)])
    graph = build_knn_graph(index, min(k + 1 + CROP_PLACES * len(shapes), len(index) - 1), seed=0, recall_sample=0,
                            queries=n)
    neighbours = graph.neighbors.astype(np.int64) % n
    keys = []
    for a in range(n):
        others = list(dict.fromkeys(int(b) for b in neighbours[a] if b != a))[:k]
        keys.extend(min(a, b) * n + max(a, b) for b in others)
    return np.unique(np.asarray(keys, dtype=np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cell", type=Path)
    parser.add_argument("--shapes", nargs="+", default=["0.8x0.8", "0.8x0.72", "0.72x0.8"])
    parser.add_argument("--show", type=Path)
    args = parser.parse_args()
    from quality_lab.bench.methods import thumbnails_for

    data, _ = load_cell(args.cell)
    thumbs = thumbnails_for(data)
    n = len(thumbs)
    truth = data.truth[data.truth.issue_type.isin(["near_duplicate", "leakage"])]
    a, b, _ = pixel_candidate_pairs(thumbs, K)
    candidates = a * n + b
    shapes = [tuple(float(v) for v in s.split("x")) for s in args.shapes]
    today = crop_search_keys(thumbs, [(0.8, 0.8)])
    shaped = crop_search_keys(thumbs, shapes)
    print(f"{args.cell}: {n} images, {candidates.size} candidate pairs")
    print("kind | pairs | among the candidates | crop search, 0.8x0.8 | crop search, " + " ".join(args.shapes)
          + " | candidates + that search")
    for kind, rows in truth.groupby("kind"):
        keys = _pair_keys(rows, n)
        print(f"{kind} | {keys.size} | {np.isin(keys, candidates).sum()} | {np.isin(keys, today).sum()} | "
              f"{np.isin(keys, shaped).sum()} | {np.isin(keys, np.union1d(candidates, shaped)).sum()}")
    if args.show:
        missed = truth[(truth.issue_type == "near_duplicate") & ~np.isin(_pair_keys(truth, n), candidates)]
        tiles = []
        for path, partner in zip(missed.path, missed.partner_path):
            pair = [np.asarray(Image.open(data.image_dir / p).convert("L").resize((84, 84), Image.NEAREST))
                    for p in (path, partner)]
            tiles.append(np.vstack([np.hstack([pair[0], np.full((84, 6), 128, np.uint8), pair[1]]),
                                    np.full((6, 174), 128, np.uint8)]))
        if tiles:
            Image.fromarray(np.vstack(tiles)).save(args.show)
            print(f"wrote {len(tiles)} missed pairs to {args.show}")


if __name__ == "__main__":
    main()
