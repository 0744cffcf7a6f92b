"""Benchmark of `build_knn_graph`: wall time, recall@k and peak memory against N.

Each (N, method, dim) case runs in its own subprocess so its peak RSS (``ru_maxrss`` of the child)
is its own: it includes the synthetic vectors (N x dim float32, 128 unless `--dims`) and the index.

Data: a clustered Gaussian mixture on the unit sphere that looks like embeddings rather than
uniform noise: ~sqrt(N) clusters of Dirichlet-distributed sizes, each a random 16-dimensional
subspace around a random centre with its own spread, plus a little isotropic noise.

Exact (flat) search at 1M is too slow to run in full; it is timed on a subset of queries and
extrapolated linearly in the number of queries (the cost per query is exactly N d).

Usage:
    .venv/bin/python benchmarks/bench_knn.py                  # 10k, 100k, 1M (minutes)
    .venv/bin/python benchmarks/bench_knn.py --sizes 10000 100000 --methods flat hnsw
    .venv/bin/python benchmarks/bench_knn.py --sizes 100000 --methods ivf --dims 64 196   # the pixel graph
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from quality_lab.bench.scaling import clustered_vectors  # noqa: E402  (after the path fix)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _recall_at(nb_d: np.ndarray, exact_d: np.ndarray, k: int) -> float:
    return float((nb_d[:, :k] <= exact_d[:, k - 1 : k] + 1e-6).mean())


def run_case(
    n: int, method: str, k: int, threads: int, exact_queries: int | None, save: Path | None, dim: int = 128
) -> dict:
    from quality_assets.knn import build_knn_graph, exact_knn

    import faiss

    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    x, _ = clustered_vectors(n, dim)
    gen_s = time.perf_counter() - t0
    rss_data = _peak_rss_mb()
    out: dict = {"n": n, "dim": dim, "method": method, "k": k, "threads": threads, "gen_seconds": round(gen_s, 1)}
    if method == "flat" and exact_queries is not None and exact_queries < n:
        # Exact search cost is linear in the number of queries: time a subset, scale up.
        q = np.random.default_rng(1).choice(n, size=exact_queries, replace=False)
        t = time.perf_counter()
        cpu0 = _cpu_seconds()
        exact_knn(x, q, k)
        sec = time.perf_counter() - t
        out["cpu_seconds"] = round((_cpu_seconds() - cpu0) * n / exact_queries, 1)
        out.update(
            {
                "seconds": round(sec * n / exact_queries, 1),
                "extrapolated_from_queries": exact_queries,
                "measured_seconds": round(sec, 1),
                "recall_at_k": 1.0,
            }
        )
    else:
        t = time.perf_counter()
        cpu0 = _cpu_seconds()
        graph = build_knn_graph(x, k, method=method, exact_limit=n, threads=threads)
        sec = time.perf_counter() - t
        out["cpu_seconds"] = round(_cpu_seconds() - cpu0, 1)
        if k > 10 and graph.index_kind != "flat":
            # recall@10 of the first 10 columns, on a fresh sample of 1000 queries
            q = np.random.default_rng(2).choice(n, size=min(n, 1000), replace=False)
            _, exact_d = exact_knn(x, q, 10)
            out["recall_at_10"] = round(_recall_at(graph.distances[q], exact_d, 10), 4)
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            np.savez(save, neighbors=graph.neighbors, distances=graph.distances,
                     index_kind=graph.index_kind, recall=graph.recall_at_k or 1.0)
        out.update(
            {
                "seconds": round(sec, 1),
                "recall_at_k": None if graph.recall_at_k is None else round(graph.recall_at_k, 4),
                "params": {
                    key: v for key, v in graph.params.items() if key not in ("n", "dim", "k")
                },
            }
        )
    out["peak_rss_mb"] = round(_peak_rss_mb(), 0)
    out["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    out["rss_after_data_mb"] = round(rss_data, 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--methods", nargs="+", default=["flat", "hnsw", "ivf"])
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--dims", type=int, nargs="+", default=[128],
                    help="vector dimensions, each size and method run at each (the pixel view's graph: 196)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exact-max", type=int, default=100_000, help="largest N run exactly in full")
    ap.add_argument("--exact-queries", type=int, default=20_000)
    ap.add_argument("--ivf-max", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    ap.add_argument(
        "--save-graph", type=Path, default=None,
        help="folder: save each approximate graph as knn_<N>_<method>_k<k>[_d<dim>].npz (for bench_scores)",
    )
    ap.add_argument("--case", nargs=3, metavar=("N", "METHOD", "DIM"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.case:
        n, method, dim = int(args.case[0]), args.case[1], int(args.case[2])
        exact_q = args.exact_queries if (method == "flat" and n > args.exact_max) else None
        save = None
        if args.save_graph is not None and method != "flat":
            save = args.save_graph / (f"knn_{n}_{method}_k{args.k}" + ("" if dim == 128 else f"_d{dim}") + ".npz")
        print(json.dumps(run_case(n, method, args.k, args.threads, exact_q, save, dim)))
        return

    for n in args.sizes:
        for method, dim in ((m, d) for m in args.methods for d in args.dims):
            if method in ("hnsw", "ivf") and n < 10_000:
                continue
            if method == "ivf" and n > args.ivf_max:
                continue
            cmd = [
                sys.executable, __file__, "--case", str(n), method, str(dim), "--k", str(args.k),
                "--threads", str(args.threads), "--exact-max", str(args.exact_max),
                "--exact-queries", str(args.exact_queries),
            ]
            if args.save_graph is not None:
                cmd += ["--save-graph", str(args.save_graph)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"FAILED n={n} {method}: {res.stderr[-2000:]}", file=sys.stderr)
                continue
            line = res.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
