"""The detection benchmark's methods: our features (DINO on the data, raw pixels, random init,
thumbnails), our rankings through ``compute_scores``, and rank fusion of two methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quality_lab.bench.data import BenchData, Progress


def raw_pixel_vectors(data: BenchData) -> np.ndarray:
    """The raw-pixel ablation, through the service's own embedder (grayscale, mean-centred, L2)."""
    from quality_lab.ablation_embedders import RawPixelEmbedder

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
    from quality_assets.embedders import SSLCheckpointEmbedder
    from quality_lab.ablation_embedders import RandomInitEmbedder
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


def colour_grids_for(data: BenchData) -> np.ndarray:
    """The RGB colour grids the service stores beside the thumbnails (``scores.near_exact``), from the
    PNG files, decoded as ``representation.thumbnail_missing`` decodes them."""
    from PIL import Image

    from quality_assets.scores.near_exact import COLOUR_GRID_SIZE
    from quality_assets.ssl.data import decode_views

    view = [(COLOUR_GRID_SIZE, 3, Image.BOX)]
    return np.stack([decode_views(str(data.image_dir / p), view)[0].transpose(1, 2, 0) for p in data.paths])


def pixel_image_loader(data: BenchData):
    """Loads the data's images at given positions as the service's pixel classifier does
    (`score_run._image_loader`): decoded once on first use, kept in memory."""
    kept: list[np.ndarray] = []

    def load(rows: np.ndarray) -> np.ndarray:
        from quality_assets.consumer_cnn import load_images

        if not kept:
            kept.append(load_images([str(data.image_dir / p) for p in data.paths]))
        return kept[0][rows]
    return load


def ssl_model_loader(data: BenchData):
    """Loads the data's DINO model (``ssl_checkpoint.pt``) as the service's score stage does
    (`ScoringInputs.ssl_model`); None when the cell has none."""
    path = data.root / "ssl_checkpoint.pt"
    if not path.exists():
        return None

    def load():
        from quality_assets.ssl.checkpoints import load_checkpoint

        return load_checkpoint(path)
    return load


def selfclean_rankings(
    vectors: np.ndarray, manifest: pd.DataFrame, *, k: int = 16, config: Any = None,
    thumbnails: np.ndarray | None = None, images: Any = None, colour_grids: np.ndarray | None = None,
    pixel_classifier_fits: Any = None, ssl_model: Any = None,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Our scores on ``vectors`` (plus the pixel view when ``thumbnails`` are given, as the
    service does): (rankings, extra rankings, graph). ``images``: loads the images for options that
    train on the pixels (``ScoringInputs.images``). ``colour_grids``: the service's colour grids
    (:func:`colour_grids_for`), for near-exact copies. ``pixel_classifier_fits``: where the label-error
    pixel classifier's fit is kept between calls (``ScoringInputs.pixel_classifier_fits``).
    ``ssl_model``: loads the DINO model of the data (:func:`ssl_model_loader`), for options that start
    from it (near_duplicate's ``copy_descriptor``).

    rankings: off_topic, label_error, leakage, near_duplicate (pairs by the service's score).
    extra: ``off_topic_knn_baseline`` (mean kNN distance) and ``near_duplicate_distance``
    (pairs by plain cosine distance, SelfClean's original ranking).
    """
    from quality_assets.knn import build_knn_graph
    from quality_assets.scores.off_topic import lad_scores, mean_knn_distance_scores
    from quality_assets.scoring import compute_scores

    ids = manifest["sample_id"].to_numpy(dtype=object)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    graph = build_knn_graph(vectors, k=k)
    out = compute_scores(list(ids), graph, manifest, config, vectors=vectors, thumbnails=thumbnails, images=images,
                         colour_grids=colour_grids, pixel_classifier_fits=pixel_classifier_fits, ssl_model=ssl_model)
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
        # The service no longer writes the comparison-only baselines; the lab computes them itself.
        "off_topic_knn_baseline": np.argsort(mean_knn_distance_scores(graph), kind="stable").astype(np.int64),
        "off_topic_lad": np.argsort(lad_scores(graph, vectors), kind="stable").astype(np.int64),
        "near_duplicate_distance": (a[by_distance], b[by_distance]),
        "summary": getattr(out, "summary", {}),
        # The positions each issue type flags (its `is_issue`), for flag precision and recall.
        "flags": {t: pos.loc[g.loc[g["is_issue"].astype(bool), "sample_id"].to_numpy()].to_numpy()
                  for t, g in rows.groupby("issue_type")},
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
