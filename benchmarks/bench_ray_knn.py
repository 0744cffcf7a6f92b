"""The kNN graph's search sharded over Ray workers (`distributed.knn`) against the in-process build.

For each method, the graph of the same vectors is built in process with 1 and 2 faiss threads, and on
a local Ray cluster of 1 and 2 worker nodes (one CPU each, beside a head node with none; the
cluster's start is not timed). The Ray build trains, adds and tunes on the driver with as many faiss
threads as there are workers (the same cores), then searches the rows in shards on the workers; a
warm-up build on a small subset first starts the worker processes and their imports. Reported per
build: total seconds and, for IVF, the search's seconds (the part that is sharded), the shards, and
whether the graph is identical to the in-process one (neighbours and distances, byte for byte; it
must be). Ratios: in-process seconds over Ray seconds at the same number of cores (above 1: Ray is
faster), and Ray with 1 worker over Ray with 2.

Data: `quality_lab.bench.scaling.clustered_vectors` (the data of bench_knn.py and
docs/benchmarks/scaling.md), N x d float32 on the unit sphere.

Usage:
    .venv/bin/python benchmarks/bench_ray_knn.py                       # 100k x 128, IVF (minutes)
    .venv/bin/python benchmarks/bench_ray_knn.py --n 5000              # a quick check that it runs
    .venv/bin/python benchmarks/bench_ray_knn.py --n 200000 --methods ivf flat --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from quality_assets.distributed.knn import build_knn_graph_on_ray  # noqa: E402
from quality_assets.distributed.local_cluster import local_ray_cluster  # noqa: E402
from quality_assets.knn import KnnGraph, build_knn_graph  # noqa: E402
from quality_lab.bench.scaling import clustered_vectors  # noqa: E402


def _row(engine: str, cores: int, method: str, graph: KnnGraph, seconds: float, reference: KnnGraph | None) -> dict:
    search = graph.params.get("search", {})
    return {
        "engine": engine, "cores": cores, "method": method, "n": graph.n, "k": graph.k,
        "seconds": round(seconds, 3),
        # Flat has no separate search phase: the whole build is the search.
        "search_seconds": graph.params.get("search_seconds", round(seconds, 3)),
        "shards": search.get("shards"), "shard_rows": search.get("shard_rows"),
        "index_mb": round(search.get("index_bytes", 0) / 2**20, 1) if search else None,
        "recall_at_k": graph.recall_at_k,
        "identical": None if reference is None else bool(
            np.array_equal(graph.neighbors, reference.neighbors)
            and np.array_equal(graph.distances, reference.distances)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--methods", nargs="+", default=["ivf"], choices=["ivf", "flat", "hnsw"])
    parser.add_argument("--chunk-rows", type=int, default=16_384, help="query rows per faiss call, both engines")
    parser.add_argument("--shard-rows", type=int, default=None,
                        help="rows per Ray task (default: about two shards per worker CPU)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    x, _ = clustered_vectors(args.n, args.dim, seed=0)
    common = {"chunk_rows": args.chunk_rows, "seed": 0}
    warm_n = min(args.n, max(args.k + 1, 2_000))
    # Each node's object store holds the vectors and the index (about the vectors' size again).
    store_mb = max(128, int(3 * x.nbytes / 2**20) + 64)
    rows: list[dict] = []
    references: dict[str, KnnGraph] = {}
    for method in args.methods:
        for threads in (1, 2):
            started = time.perf_counter()
            graph = build_knn_graph(x, args.k, method=method, threads=threads, **common)
            rows.append(_row("in-process", threads, method, graph, time.perf_counter() - started,
                             references.get(method)))
            references.setdefault(method, graph)
            print(json.dumps(rows[-1]), flush=True)
    import ray

    for workers in (1, 2):
        with local_ray_cluster(n_workers=workers, cpus_per_worker=1, object_store_mb=store_mb) as cluster:
            try:
                for method in args.methods:
                    build_knn_graph_on_ray(cluster.address, x[:warm_n], args.k, method=method, recall_sample=0,
                                           shard_rows=args.shard_rows, threads=workers, **common)
                    started = time.perf_counter()
                    graph = build_knn_graph_on_ray(cluster.address, x, args.k, method=method,
                                                   shard_rows=args.shard_rows, threads=workers, **common)
                    rows.append(_row("ray", workers, method, graph, time.perf_counter() - started,
                                     references[method]))
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                ray.shutdown()

    by = {(r["method"], r["engine"], r["cores"]): r for r in rows}
    ratios: dict[str, float] = {}
    for method in args.methods:
        for cores in (1, 2):
            local, ray_row = by[(method, "in-process", cores)], by[(method, "ray", cores)]
            ratios[f"{method}_in_process_over_ray_{cores}_core_seconds"] = local["seconds"] / ray_row["seconds"]
            ratios[f"{method}_in_process_over_ray_{cores}_core_search"] = (
                local["search_seconds"] / ray_row["search_seconds"])
        ratios[f"{method}_ray_1_worker_over_2_seconds"] = by[(method, "ray", 1)]["seconds"] / by[(method, "ray", 2)]["seconds"]
        ratios[f"{method}_ray_1_worker_over_2_search"] = (
            by[(method, "ray", 1)]["search_seconds"] / by[(method, "ray", 2)]["search_seconds"])
    print("ratios (above 1: the second is faster):")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if not all(r["identical"] in (None, True) for r in rows):
        sys.exit("a Ray graph differs from the in-process graph")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
