"""Benchmark of every score on a 1M-node kNN graph (k = 16): time and peak memory per score.

The graph is the approximate (HNSW) graph of the 1M clustered vectors that
`bench_knn.py --save-graph DIR` writes (real structure: clusters, hubs, duplicates none), or,
without one, it is built here the same way and saved. Inputs the scores need besides the graph
are synthesised from the same vectors, deterministically:

* labels: cluster id mod 100 as strings, 5% flipped to another label, 1% missing
* splits: 80% train, 10% val, 10% test
* file/pixel sha256: unique per sample except 1% that copy another sample's hash
  (pairs the graph does not hold, so the hash path is exercised)
* phash: a 64-bit SimHash of each vector
* image properties: random plausible manifest columns

Each case runs in its own subprocess so its peak RSS (ru_maxrss) is its own; it includes the
loaded graph (~0.2 GB) and the inputs. Case `all` runs the whole chain in one process, which
is what the issue_scores asset would do.

Usage:
    .venv/bin/python benchmarks/bench_knn.py --sizes 1000000 --methods hnsw --save-graph /tmp/g
    .venv/bin/python benchmarks/bench_scores.py --graph /tmp/g/knn_1000000_hnsw_k16.npz
    .venv/bin/python benchmarks/bench_scores.py --contamination   # precision vs baselines
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CASES = (
    "pairs",
    "pairs_distance",
    "duplicate_derived",
    "lad",
    "lad_vectors",
    "mean_knn",
    "label_error",
    "leakage",
    "image_properties",
    "data_value",
    "cutoff",
    "all",
)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def load_inputs(graph_path: Path, n: int) -> dict:
    from bench_knn import clustered_vectors

    from quality_assets.knn import KnnGraph, build_knn_graph

    x, cluster = clustered_vectors(n)
    if graph_path.exists():
        z = np.load(graph_path)
        graph = KnnGraph(z["neighbors"], z["distances"], str(z["index_kind"]), float(z["recall"]))
    else:
        graph = build_knn_graph(x, 16, threads=2)
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(graph_path, neighbors=graph.neighbors, distances=graph.distances,
                 index_kind=graph.index_kind, recall=graph.recall_at_k or 1.0)
    rng = np.random.default_rng(0)
    lab = cluster % 100
    flip = rng.random(n) < 0.05
    lab = np.where(flip, (lab + 1 + rng.integers(0, 99, n)) % 100, lab)
    labels = np.array([f"c{v}" for v in range(100)], dtype=object)[lab]
    labels[rng.random(n) < 0.01] = None
    splits = np.array(["train", "val", "test"], dtype=object)[
        np.searchsorted([0.8, 0.9], rng.random(n), side="right")
    ]
    hashes = np.array([f"{i:064x}" for i in range(n)], dtype=object)
    copy = np.flatnonzero(rng.random(n) < 0.01)
    hashes[copy] = hashes[rng.integers(0, n, copy.size)]
    planes = rng.standard_normal((64, x.shape[1])).astype(np.float32)
    bits = (x @ planes.T) > 0
    phash = (bits.astype(np.uint64) << np.arange(64, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    props = pd.DataFrame(
        {
            "brightness_p05": rng.uniform(0, 0.3, n),
            "brightness_p50": rng.uniform(0.3, 0.7, n),
            "brightness_p95": rng.uniform(0.6, 1.0, n),
            "entropy": rng.normal(6.5, 1.0, n).clip(0, 8),
            "blur_score": rng.lognormal(6, 1, n),
            "edge_strength": rng.uniform(0, 0.2, n),
            "width": rng.choice([256, 320, 640, 1024], n),
            "height": rng.choice([256, 240, 480, 768], n),
            "is_grayscale": rng.random(n) < 0.05,
            "file_sha256": hashes,
            "pixel_sha256": hashes,
        }
    )
    return {
        "x": x,
        "graph": graph,
        "labels": labels,
        "splits": splits,
        "hashes": hashes,
        "phash": phash.view(np.int64),
        "props": props,
    }


def run_case(case: str, inp: dict) -> dict:
    from quality_assets.scores import rank_ascending
    from quality_assets.scores.cutoff import fraction_cut
    from quality_assets.scores.data_value import data_value_scores
    from quality_assets.scores.image_properties import image_property_scores
    from quality_assets.scores.label_error import class_confusion, label_error_scores
    from quality_assets.scores.leakage import leakage_pairs, leakage_rate, leakage_scores
    from quality_assets.scores.near_duplicate import (
        duplicate_groups,
        group_label_conflicts,
        near_duplicate_pairs,
        sample_duplicate_scores,
    )
    from quality_assets.scores.off_topic import lad_scores, mean_knn_distance_scores

    g, n = inp["graph"], inp["graph"].n
    extra: dict = {}

    def pairs(kind: str = "combined") -> pd.DataFrame:
        return near_duplicate_pairs(
            g,
            file_sha256=inp["hashes"],
            pixel_sha256=inp["hashes"],
            phash=inp["phash"],
            labels=inp["labels"],
            score_kind=kind,
        )

    def duplicate_chain(p: pd.DataFrame) -> None:
        best = sample_duplicate_scores(p, n)
        _, flag = fraction_cut(p["score"].to_numpy(), alpha=0.1, q=0.05, n_samples=n)
        p["is_issue"] = flag
        groups = duplicate_groups(p, n)
        conflicts = group_label_conflicts(groups, inp["labels"])
        rank_ascending(best)
        extra.update(flagged_pairs=int(flag.sum()), groups=int(len(conflicts)),
                     conflicts=int(conflicts["is_conflict"].sum()))

    def leakage_chain(p: pd.DataFrame) -> None:
        if "is_issue" not in p.columns:
            p["is_issue"] = p["score"] < 0.05
        leakage_pairs(p, inp["splits"])
        leakage_scores(p, inp["splits"], n)
        extra["leakage_rate"] = round(leakage_rate(p, inp["splits"]), 5)

    def label_chain() -> None:
        le = label_error_scores(g, inp["labels"])
        _, flag = fraction_cut(le["score"].to_numpy())
        class_confusion(inp["labels"], le["suggested_label"].to_numpy(), flag)
        extra["label_flagged"] = int(flag.sum())

    pre = None
    if case in ("duplicate_derived", "leakage"):
        pre = pairs()  # untimed: these cases time what follows the pair table
    t0, c0 = time.perf_counter(), _cpu()
    if case == "pairs":
        extra["n_pairs"] = len(pairs())
    elif case == "pairs_distance":
        extra["n_pairs"] = len(pairs("distance"))
    elif case == "duplicate_derived":
        duplicate_chain(pre)
    elif case == "lad":
        fraction_cut(lad_scores(g))
    elif case == "lad_vectors":
        fraction_cut(lad_scores(g, inp["x"]))
    elif case == "mean_knn":
        fraction_cut(mean_knn_distance_scores(g))
    elif case == "label_error":
        label_chain()
    elif case == "leakage":
        leakage_chain(pre)
    elif case == "image_properties":
        extra["rows"] = len(image_property_scores(inp["props"]))
    elif case == "data_value":
        fraction_cut(data_value_scores(g, inp["labels"], inp["splits"]))
    elif case == "cutoff":
        s = np.random.default_rng(1).beta(20, 4, n)
        fraction_cut(s)
        rank_ascending(s)
    elif case == "all":
        p = pairs()
        duplicate_chain(p)
        leakage_chain(p)
        del p
        fraction_cut(lad_scores(g))
        fraction_cut(mean_knn_distance_scores(g))
        label_chain()
        image_property_scores(inp["props"])
        fraction_cut(data_value_scores(g, inp["labels"], inp["splits"]))
    else:
        raise ValueError(case)
    return {
        "case": case,
        "n": n,
        "k": g.k,
        "seconds": round(time.perf_counter() - t0, 2),
        "cpu_seconds": round(_cpu() - c0, 2),
        **extra,
    }


def contamination(seeds: int = 5) -> list[dict]:
    """Precision of each score against its baseline on sets contaminated with known issues."""
    from quality_assets.knn import build_knn_graph
    from quality_assets.scores.near_duplicate import near_duplicate_pairs
    from quality_assets.scores.off_topic import lad_scores, mean_knn_distance_scores
    from quality_lab.synthetic_vectors import (
        clustered_vectors,
        density_copies,
        normalise,
        precision_at_n,
        twin_copies,
    )

    def prec_pairs(p: pd.DataFrame, truth: set) -> float:
        return precision_at_n(p["i"].to_numpy(), p["j"].to_numpy(), truth)

    rows = []
    for seed in range(seeds):
        x, phash, truth = twin_copies(seed=seed)
        g = build_knn_graph(x, 16)
        rows.append({"set": "natural twins + copies (40 of 2040)", "seed": seed,
                     "distance": prec_pairs(near_duplicate_pairs(g, score_kind="distance"), truth),
                     "combined_no_hash": prec_pairs(near_duplicate_pairs(g), truth),
                     "combined": prec_pairs(near_duplicate_pairs(g, phash=phash), truth)})
        x, truth = density_copies(seed=seed)
        g = build_knn_graph(x, 16)
        row = {"set": "20x density range + copies (40 of 2040)", "seed": seed,
               "distance": prec_pairs(near_duplicate_pairs(g, score_kind="distance"), truth),
               "combined_no_hash": prec_pairs(near_duplicate_pairs(g), truth)}
        for term in ("abs", "rel", "gap"):
            w = {"abs": 1.0, "rel": 1.0, "gap": 1.0, term: 0.0}
            row[f"without_{term}"] = prec_pairs(near_duplicate_pairs(g, weights=w), truth)
        rows.append(row)
        rng = np.random.default_rng(seed + 1000)
        base, _ = clustered_vectors(1500, 32, n_clusters=6, spread=0.5, seed=seed + 23)
        batch = normalise(normalise(rng.standard_normal((1, 32))) + 0.05 * rng.standard_normal((25, 32)))
        xs = np.vstack([base, batch])
        truth_idx = set(range(1500, 1525))
        for k in (10, 40):
            g = build_knn_graph(xs, k)

            def prec(scores: np.ndarray) -> float:
                return len(set(np.argsort(scores, kind="stable")[:25].tolist()) & truth_idx) / 25

            rows.append({"set": f"off-topic batch of 25 in 1525, k={k}", "seed": seed,
                         "mean_knn_distance": prec(mean_knn_distance_scores(g)),
                         "lad": prec(lad_scores(g)), "lad_vectors": prec(lad_scores(g, xs))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--graph", type=Path, default=Path("/tmp/quality_bench/knn_1000000_hnsw_k16.npz"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--contamination", action="store_true",
                    help="only the contaminated-set precision table (small sets, ~1 min)")
    args = ap.parse_args()

    if args.contamination:
        df = pd.DataFrame(contamination())
        print(df.groupby("set", sort=False).mean(numeric_only=True).drop(columns="seed").round(3).to_string())
        return

    if args.case:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        t = time.perf_counter()
        inp = load_inputs(args.graph, args.n)
        load_s = time.perf_counter() - t
        rss_inputs = _rss_mb()
        res = run_case(args.case, inp)
        res.update(
            load_seconds=round(load_s, 1),
            rss_after_inputs_mb=round(rss_inputs),
            peak_rss_mb=round(_rss_mb()),
            loadavg_1m=round(os.getloadavg()[0], 2),
        )
        print(json.dumps(res))
        return

    if not args.graph.exists():
        # Build once (and save) before the cases, so no case pays for it.
        load_inputs(args.graph, args.n)
    for case in args.cases:
        cmd = [sys.executable, __file__, "--case", case, "--graph", str(args.graph),
               "--n", str(args.n), "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(f"FAILED {case}: {res.stderr[-3000:]}", file=sys.stderr)
            continue
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(line + "\n")


if __name__ == "__main__":
    main()
