"""Scaling: wall time and peak memory of kNN graph + all scores against N, next to cleanlab.

Each (tool, N) case runs in its own child process (``python -m quality_lab.bench.scaling
--child TOOL --n N``); the parent reaps it with ``os.wait4``, which returns that child's own
``rusage`` (the per-child form of ``getrusage(RUSAGE_CHILDREN)``: a later, smaller case cannot
inherit an earlier case's peak), and kills it after ``timeout_s`` ("did not finish").

Both tools get the same inputs, generated in the child from the same seed:

- vectors: a clustered Gaussian mixture on the unit sphere that looks like embeddings
  (~sqrt(N) clusters of Dirichlet-distributed sizes, each a random 16-dimensional subspace
  around a random centre with its own spread, plus a little isotropic noise), 128-d, float32,
  L2-normalised; 0.1% of the rows are exact copies of another row (with the same hashes);
- labels: 10 classes (cluster id mod 10), 5% flipped at random;
- pred_probs (cleanlab only): a noisy softmax peaked on the clean label;
- manifest (ours only): the columns ``compute_scores`` reads (hashes, phash, image properties).

Ours = ``build_knn_graph(k=16)`` (exact flat index up to 100k, HNSW beyond, recall measured)
+ ``compute_scores`` (near-duplicate pairs/groups, LAD off-topic, mean-kNN baseline, label
errors, leakage, image properties, KNN-Shapley, cut-offs). cleanlab = ``Datalab.find_issues``
with ``features=`` and ``pred_probs=`` for the issue types label, outlier and near_duplicate
(its kNN graph: scikit-learn brute-force cosine search). Generating the data is not timed; its
memory is in both peaks and is reported separately (``data_rss_mb``).

Usage::

    python -m quality_lab.bench.scaling --sizes 10000 100000 --out bench_out/scaling
    python -m quality_lab.bench.scaling --sizes 1000000 --timeout 900 --out bench_out/scaling
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["TOOLS", "clustered_vectors", "main", "run_case", "run_scaling", "synthetic_inputs"]

TOOLS: tuple[str, ...] = ("ours", "cleanlab")
DEFAULT_SIZES: tuple[int, ...] = (10_000, 100_000, 1_000_000)
DEFAULT_TIMEOUT_S = 900.0


# --------------------------------------------------------------------------------------------
# synthetic inputs


def clustered_vectors(n: int, d: int = 128, *, n_clusters: int | None = None, rank: int = 16,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 [n, d] vectors and their cluster ids (see the module docstring).

    n_clusters defaults to max(8, sqrt(n)). benchmarks/bench_knn.py and bench_scores.py use the
    same generator, so their figures and the scaling figures describe the same data.
    """
    rng = np.random.default_rng(seed)
    c = n_clusters or max(8, int(round(np.sqrt(n))))
    centers = rng.standard_normal((c, d)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    sizes = rng.multinomial(n, rng.dirichlet(np.full(c, 2.0)))
    spreads = np.exp(rng.uniform(np.log(0.05), np.log(0.2), size=c)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    cluster = np.empty(n, dtype=np.int64)
    start = 0
    for j in range(c):
        m = int(sizes[j])
        if m == 0:
            continue
        basis = rng.standard_normal((rank, d)).astype(np.float32) / np.sqrt(d)
        block = centers[j] + spreads[j] * (rng.standard_normal((m, rank)).astype(np.float32) @ basis)
        block += rng.standard_normal((m, d)).astype(np.float32) * 0.01
        x[start:start + m] = block
        cluster[start:start + m] = j
        start += m
    perm = rng.permutation(n)
    x, cluster = x[perm], cluster[perm]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, cluster


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)
    return np.asarray([f"{a:016x}{b:016x}" for a, b in raw], dtype=object)


def synthetic_inputs(
    n: int, d: int = 128, *, seed: int = 0, n_classes: int = 10, label_noise: float = 0.05,
    dup_fraction: float = 0.001, with_manifest: bool = True, with_pred_probs: bool = False,
) -> dict[str, Any]:
    """Vectors, labels, splits and (optionally) a manifest and pred_probs, all aligned by position."""
    x, cluster = clustered_vectors(n, d, seed=seed)
    rng = np.random.default_rng(seed + 1)
    clean = cluster % n_classes
    noisy = clean.copy()
    flip = rng.random(n) < label_noise
    noisy[flip] = (clean[flip] + rng.integers(1, n_classes, size=int(flip.sum()))) % n_classes
    dup_src = rng.choice(n, size=max(1, int(n * dup_fraction)), replace=False)
    dup_dst = (dup_src + 1 + rng.integers(0, n - 1, size=dup_src.size)) % n
    keep = ~np.isin(dup_dst, dup_src)
    dup_src, dup_dst = dup_src[keep], dup_dst[keep]
    x[dup_dst] = x[dup_src]
    labels = np.asarray([f"c{v}" for v in range(n_classes)], dtype=object)[noisy]
    splits = np.where(rng.random(n) < 0.2, "test", "train").astype(object)
    out: dict[str, Any] = {"vectors": x, "labels": labels, "splits": splits}
    if with_manifest:
        sha = _hex_ids(rng, n)
        sha[dup_dst] = sha[dup_src]
        phash = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
        phash[dup_dst] = phash[dup_src]
        side = np.where(rng.random(n) < 0.001, 64, 28)
        p50 = rng.uniform(0.05, 0.4, n)
        out["manifest"] = pd.DataFrame({
            "sample_id": np.asarray([f"s{i:08d}" for i in range(n)], dtype=object),
            "path": np.asarray([f"img/{i:08d}.png" for i in range(n)], dtype=object),
            "label": labels, "split": splits, "file_sha256": sha, "pixel_sha256": sha, "phash": phash,
            "width": side, "height": side, "mode": "L", "is_grayscale": True, "bytes": rng.integers(200, 900, n),
            "brightness_p05": np.zeros(n), "brightness_p50": p50,
            "brightness_p95": np.clip(p50 + rng.uniform(0.3, 0.6, n), 0, 1),
            "entropy": rng.uniform(1.0, 2.5, n), "blur_score": rng.uniform(500, 5000, n),
            "edge_strength": rng.uniform(0.05, 0.3, n), "aspect_ratio": np.ones(n),
        })
    if with_pred_probs:
        logits = rng.normal(0.0, 1.0, size=(n, n_classes)).astype(np.float32)
        logits[np.arange(n), clean] += 3.0
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out["pred_probs"] = (p / p.sum(axis=1, keepdims=True)).astype(np.float64)
    return out


# --------------------------------------------------------------------------------------------
# child


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _child(tool: str, n: int, d: int, seed: int, k: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    inputs = synthetic_inputs(n, d, seed=seed, with_manifest=tool == "ours", with_pred_probs=tool == "cleanlab")
    result: dict[str, Any] = {"generate_s": round(time.perf_counter() - t0, 2), "data_rss_mb": round(_rss_mb(), 1)}
    if tool == "ours":
        from quality_assets.knn import build_knn_graph
        from quality_assets.scoring import ScoreConfig, compute_scores

        t = time.perf_counter()
        graph = build_knn_graph(inputs["vectors"], k=k)
        result["knn_s"] = round(time.perf_counter() - t, 2)
        result["index_kind"] = graph.index_kind
        result["recall_at_k"] = graph.recall_at_k
        manifest = inputs["manifest"]
        t = time.perf_counter()
        out = compute_scores(list(manifest["sample_id"]), graph, manifest, ScoreConfig())
        result["scores_s"] = round(time.perf_counter() - t, 2)
        result["method_s"] = round(result["knn_s"] + result["scores_s"], 2)
        result["n_issue_rows"] = int(len(out.issue_rows))
        result["n_pairs"] = int(len(out.pair_rows))
    elif tool == "cleanlab":
        from cleanlab import Datalab

        t = time.perf_counter()
        lab = Datalab(data={"label": inputs["labels"].astype(str)}, label_name="label", verbosity=0)
        lab.find_issues(features=inputs["vectors"], pred_probs=inputs["pred_probs"],
                        issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})
        result["method_s"] = round(time.perf_counter() - t, 2)
        result["n_label_issues"] = int(lab.get_issues("label")["is_label_issue"].sum())
    else:
        raise ValueError(f"unknown tool {tool!r}; choose from {TOOLS}")
    result["peak_rss_self_mb"] = round(_rss_mb(), 1)
    return result


# --------------------------------------------------------------------------------------------
# parent


def run_case(
    tool: str, n: int, *, timeout_s: float = DEFAULT_TIMEOUT_S, d: int = 128, seed: int = 0, k: int = 16,
) -> dict[str, Any]:
    """Run one case in a child process; wall time, peak RSS and the child's own figures."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "quality_lab.bench.scaling", "--child", tool, "--n", str(n),
               "--dim", str(d), "--seed", str(seed), "--k", str(k), "--result", str(result_path)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, start_new_session=True)
        status, rusage, finished = 0, None, True
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                finished = False
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; keep Popen consistent
        wall = time.perf_counter() - t0
        row: dict[str, Any] = {"tool": tool, "n": n, "wall_s": round(wall, 2),
                               "peak_rss_mb": round(rusage.ru_maxrss / 1024.0, 1)}
        if not finished:
            row["status"] = f"did not finish (> {timeout_s:.0f} s)"
        elif proc.returncode != 0 or not result_path.exists():
            row["status"] = f"failed (exit {proc.returncode})"
        else:
            row["status"] = "ok"
            row.update(json.loads(result_path.read_text()))
    return row


def run_scaling(
    out_dir: Path,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    tools: Sequence[str] = TOOLS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    skip_after_timeout: bool = True,
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every (N, tool) case, smallest N first; writes ``out_dir/scaling.csv`` and ``scaling.md``.

    With ``skip_after_timeout``, a tool that did not finish at some N is not run at larger N.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "scaling.csv"
    rows: list[dict[str, Any]] = []
    given_up: set[str] = set()
    for n in sorted(sizes):
        for tool in tools:
            if tool == "cleanlab" and importlib_missing("cleanlab", "datasets"):
                progress("skipping cleanlab: cleanlab[datalab] is not installed (pip install 'cleanlab[datalab]>=2.6')")
                continue
            if tool in given_up:
                row = {"tool": tool, "n": n, "status": "not run (did not finish at a smaller N)"}
            else:
                progress(f"scaling: {tool} N={n:,} (limit {timeout_s:.0f}s) ...")
                row = run_case(tool, n, timeout_s=timeout_s)
                if row["status"].startswith("did not finish") and skip_after_timeout:
                    given_up.add(tool)
                progress(f"scaling: {tool} N={n:,}: {row['status']}, wall {row.get('wall_s')}s, "
                         f"method {row.get('method_s')}s, peak {row.get('peak_rss_mb')} MB")
            rows.append(row)
            pd.DataFrame(rows).to_csv(csv, index=False, lineterminator="\n")  # rewritten after every case
    table = pd.DataFrame(rows)
    (out_dir / "scaling.md").write_text(markdown_table(table))
    return table


def importlib_missing(*modules: str) -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is None for m in modules)


def markdown_table(table: pd.DataFrame) -> str:
    cols = ["tool", "n", "status", "method_s", "knn_s", "scores_s", "index_kind", "recall_at_k",
            "peak_rss_mb", "data_rss_mb"]
    cols = [c for c in cols if c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in table[cols].to_dict("records"):
        cells = []
        for c in cols:
            v = rec.get(c)
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("")
            elif c == "n":
                cells.append(f"{int(v):,}")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}" if c == "recall_at_k" else f"{v:,.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m quality_lab.bench.scaling",
                                description="Wall time and peak memory of kNN graph + all scores vs cleanlab Datalab.")
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    p.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per case")
    p.add_argument("--out", type=Path, default=Path("bench_out/scaling"))
    # child mode
    p.add_argument("--child", choices=list(TOOLS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--dim", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        result = _child(args.child, args.n, args.dim, args.seed, args.k)
        args.result.write_text(json.dumps(result))
        return 0
    table = run_scaling(args.out, sizes=args.sizes, tools=args.tools, timeout_s=args.timeout)
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
