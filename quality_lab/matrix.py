"""The benchmark matrix: every dataset x seed, contaminated by the published SelfClean protocol,
the service with one default configuration against the peers a user would pick instead, and the
service's flags and gates on the same data without contamination.

    python -m quality_lab.matrix --out bench_out/matrix [--seeds 0 1 2] [--datasets ...] [--quick]
    qaudit bench --matrix [same options]

Per dataset and seed (a *cell*; each is written to ``OUT/cells/`` as soon as it is done, and an
existing cell is kept unless ``--force``, so the command resumes where it stopped):

1. The clean set: the dataset's images (:mod:`quality_lab.datasets`) without pixel-identical
   repeats, at most ``--n-samples`` of them drawn by the seed, 20% to ``test``.
2. Contaminated: :func:`quality_lab.protocol.inject` (XR, BLUR, AUG, ARTE, LBL, LBLC at 1% each,
   leakage 1% in thirds exact / JPEG / cropped), shuffled, written as PNG files.
3. Ours: the service as shipped with its defaults: DINO trained on the files with the default
   configuration for their size and number (on CPU: until its stability stop, at most 60 epochs,
   no time stop; the epochs reached are in ``clean.csv``), embedded by the service's embedder,
   one kNN graph (k = 16), the service's thumbnails, ``compute_scores`` with the default ``ScoreConfig``. The same graph's
   LAD and mean-kNN off-topic rankings are reported as baselines.
4. Peers on the same files: cleanlab Datalab on raw pixels (PCA-64) and on ImageNet-pretrained
   EfficientNet-Lite0 features (:mod:`quality_lab.bench.pretrained`), fastdup
   (:mod:`quality_lab.bench.fastdup_peer`), perceptual hash (imagehash). A missing peer is skipped
   with the install step in the log and in ``skipped.txt``.
5. Clean data: the clean set alone, audited by the service the same way (its own DINO): the share
   of samples flagged as near duplicates and of test samples flagged as leaked, the two figures
   the blocking gates read. Then test copies of train images are appended until 2.4% of the test
   split is leaked (thirds exact / JPEG / cropped), embedded with the clean set's model, scored,
   and the 5% leakage gate is evaluated on that.

Every method's near-duplicate and leakage rankings are measured by two truths: the protocol's, and
the protocol's without the source's own duplicates (:mod:`quality_lab.source_duplicates`: pictures
the source held twice, which the protocol does not list; rows with ``truth`` =
``without_source_duplicates``, tables at the end of ``matrix.md``).

``--reuse EARLIER_OUT`` takes each cell's DINO checkpoints and peer rows from an earlier run of the
same cells (the generators are deterministic per seed), to re-measure a scoring change in minutes
(peer rows without the second truth are measured again);
``clean.csv`` then names the checkpoint in ``ssl_reused_from``. ``--keep-images`` keeps the PNG
trees for ``benchmarks/rescore_cell.py``.

The rankings of each method a cell runs are kept in ``OUT/work/CELL/rankings/`` (:func:`load_rankings`),
so a later truth can measure them without running the method again (peer rows taken with ``--reuse``
bring no rankings).

``OUT/results.csv`` (every metric row), ``OUT/clean.csv`` (the clean-data rates) and
``OUT/matrix.md`` (the tables, :mod:`quality_lab.matrix_report`) are rewritten after each cell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from quality_lab.bench.data import MARKER, BenchData
from quality_lab.bench.methods import (MethodResult, colour_grids_for, pixel_image_loader, selfclean_rankings,
                                       ssl_and_random_vectors, ssl_model_loader, thumbnails_for)
from quality_lab.bench.metrics import WITHOUT_SOURCE_DUPLICATES, _random_rows, evaluate_method
from quality_lab.datasets import DATASETS, DatasetUnavailable, foreign_photos, load_dataset
from quality_lab.protocol import ProtocolRates, inject, inject_leakage, leak_count_for_rate
from quality_lab.source_duplicates import pairs_within, source_duplicates

Progress = Callable[[str], None]
DEFAULT_DATASETS: tuple[str, ...] = ("mnist", "animal_mnist", "openclipart", "oxygen_icons")
PEERS: tuple[str, ...] = ("cleanlab_raw", "cleanlab_imagenet", "fastdup", "phash")
N_SAMPLES = 3000
QUICK_N_SAMPLES = 150
OWN_METHODS = ("ours", "lad", "mean_knn", "random")   # rows computed by this run; the rest are peers
TEST_FRACTION = 0.2
CLEAN_TRUE_LEAKAGE = 0.024   # the issue's case: a 5% leakage gate must pass at 2.4% true leakage
LEAKAGE_GATE = 0.05
# quick mode: a DINO that trains in seconds (the smoke test checks the plumbing, not the model)
QUICK_SSL = {"epochs": 1.0, "arch": "vit_micro_p4", "out_dim": 256, "head_hidden_dim": 128,
             "head_bottleneck_dim": 64, "batch_size": 64, "n_local_crops": 2}


def _clean_set(name: str, seed: int, n_max: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    images, labels = load_dataset(name)
    digests = [hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest() for im in images]
    _, first = np.unique(np.asarray(digests, dtype=object).astype("S32"), return_index=True)
    keep = np.sort(first)
    n_repeats = len(images) - len(keep)
    images, labels = images[keep], np.asarray(labels)[keep].astype(str)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    n = min(n_max, len(images))
    chosen = np.sort(rng.choice(len(images), size=n, replace=False))
    splits = np.full(n, "train", dtype="<U5")
    splits[rng.choice(n, size=int(round(n * TEST_FRACTION)), replace=False)] = "test"
    return [images[i] for i in chosen], labels[chosen], splits, n_repeats


def write_bench_data(name: str, root: Path, images: list[np.ndarray], labels: np.ndarray, splits: np.ndarray,
                     truth: pd.DataFrame, rng: np.random.Generator) -> BenchData:
    """Shuffle, write ``root/images/<split>/<label>/img_NNNNNN.png`` and ``ground_truth.csv``, and
    build the manifest from the written files as ingestion does."""
    from quality_assets.imaging import inspect_image

    if root.exists():
        if not (root / MARKER).exists():
            raise FileExistsError(f"{root} exists and was not written by the matrix; choose another --out")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("written by quality_lab.matrix; safe to delete\n")
    m = len(images)
    order = rng.permutation(m)
    new_pos = np.empty(m, dtype=np.int64)
    new_pos[order] = np.arange(m)
    imgs = [images[i] for i in order]
    labs, spl = np.asarray(labels)[order].astype(str), np.asarray(splits)[order].astype(str)
    paths = np.asarray([f"{spl[p]}/{labs[p]}/img_{p:06d}.png" for p in range(m)], dtype=object)
    image_dir = root / "images"
    for folder in sorted({p.rsplit("/", 1)[0] for p in paths}):
        (image_dir / folder).mkdir(parents=True, exist_ok=True)
    for p in range(m):
        Image.fromarray(imgs[p]).save(image_dir / paths[p], format="PNG")
    t = truth.copy()
    t["index"] = new_pos[t["index"].to_numpy()]
    partner = t["partner_index"].to_numpy()
    t["partner_index"] = np.where(partner >= 0, new_pos[np.maximum(partner, 0)], -1)
    t["path"] = paths[t["index"].to_numpy()]
    t["partner_path"] = [paths[q] if q >= 0 else "" for q in t["partner_index"]]
    t = t.sort_values("index", kind="stable").reset_index(drop=True)
    t.to_csv(root / "ground_truth.csv", index=False, lineterminator="\n")
    manifest = pd.DataFrame.from_records([inspect_image(image_dir / p) for p in paths])
    for i, (col, values) in enumerate((("sample_id", paths), ("path", paths), ("label", labs), ("split", spl))):
        manifest.insert(i, col, values)
    manifest["phash"] = manifest["phash"].astype(np.int64)
    counts = {str(k): int(v) for k, v in t["detail"].value_counts().items()} if len(t) else {}
    return BenchData(name, root, image_dir, paths, imgs, labs, spl, t, manifest, counts)


# Two source images are the *same picture* when their RMS difference at the dataset's resolution,
# same orientation, no alignment, is at most this (8-bit units): icon themes and clip-art sets ship
# one picture under several names with an imperceptible change (docs/benchmarks/matrix.md shows
# them). Independent of every detector measured here; such pairs are real duplicates that the
# ground truth does not list, so the clean-data rates are reported with and without them.
SOURCE_REPEAT_RMS = 8.0


def source_repeat_groups(images: Sequence[np.ndarray], rms: float = SOURCE_REPEAT_RMS) -> np.ndarray:
    """Group id per image of the same pictures (see ``SOURCE_REPEAT_RMS``), -1 where none."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(images)
    groups = np.full(n, -1, dtype=np.int64)
    if n < 2 or len({im.shape for im in images}) != 1:
        return groups
    x = np.stack([np.asarray(im, dtype=np.float32).reshape(-1) for im in images])
    a, b = pairs_within(x, [x], rms)
    if not a.size:
        return groups
    graph = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    in_group = sizes[component] > 1
    groups[in_group] = component[in_group]
    return groups


def _flag_rates(vectors: np.ndarray, data: BenchData, thumbs: np.ndarray) -> dict[str, float]:
    """What the gates read: flagged near-duplicate rate (samples beyond the first of each flagged
    group, over all samples) and flagged leakage rate (flagged eval samples over eval samples);
    ``*_without_source_repeats``: the same with the flagged pairs that are one picture in the source
    (:func:`source_repeat_groups`) taken out; ``source_leak_rate``: eval samples whose same picture
    sits in train (real leakage the ground truth does not list)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from quality_assets.knn import build_knn_graph
    from quality_assets.scoring import compute_scores

    ids = list(data.manifest["sample_id"])
    position = {sid: p for p, sid in enumerate(ids)}
    graph = build_knn_graph(np.ascontiguousarray(vectors, dtype=np.float32), k=16)
    out = compute_scores(ids, graph, data.manifest, None, vectors=vectors, thumbnails=thumbs,
                         colour_grids=colour_grids_for(data))
    rows = out.issue_rows
    is_eval = np.isin(data.splits, ("val", "test"))
    is_train = data.splits == "train"
    n_eval = max(1, int(is_eval.sum()))
    leak = rows[(rows.issue_type == "leakage") & rows.is_issue.astype(bool)]
    flagged_pairs = out.pair_rows[out.pair_rows.is_issue.astype(bool)]
    a = flagged_pairs.sample_a.map(position).to_numpy(dtype=np.int64)
    b = flagged_pairs.sample_b.map(position).to_numpy(dtype=np.int64)
    # Among the source's own images only: an injected leak is a copy of its source by construction.
    natural = np.setdiff1d(np.arange(len(ids)), data.truth["index"].to_numpy(dtype=np.int64))
    repeats = np.full(len(ids), -1, dtype=np.int64)
    repeats[natural] = source_repeat_groups([data.images[p] for p in natural])
    other = ~((repeats[a] >= 0) & (repeats[a] == repeats[b]))

    def rates(keep: np.ndarray) -> tuple[float, float, float]:
        ka, kb = a[keep], b[keep]
        members = np.unique(np.concatenate([ka, kb]))
        if members.size:
            linked = coo_matrix((np.ones(ka.size), (ka, kb)), shape=(len(ids), len(ids)))
            _, component = connected_components(linked, directed=False)
            beyond_first = members.size - np.unique(component[members]).size
        else:
            beyond_first = 0
        crossing = np.concatenate([ka[is_eval[ka] & is_train[kb]], kb[is_eval[kb] & is_train[ka]]])
        return beyond_first / len(ids), members.size / len(ids), np.unique(crossing).size / n_eval

    summary = getattr(out, "summary", {}) or {}
    nd_without, flagged_without, _ = rates(other)
    leaked_positions = np.flatnonzero(is_eval & np.isin(np.asarray(ids, dtype=object), leak.sample_id.to_numpy()))
    # Eval samples the service flags although their only flagged train partners are source repeats.
    explained = np.setdiff1d(leaked_positions, np.unique(np.concatenate(
        [a[other & is_eval[a] & is_train[b]], b[other & is_eval[b] & is_train[a]]])))
    train_groups = set(repeats[is_train & (repeats >= 0)].tolist())
    source_leaks = int(sum(1 for p in np.flatnonzero(is_eval) if repeats[p] >= 0 and repeats[p] in train_groups))
    return {
        "near_duplicate_rate": float(summary.get("near_duplicate_rate", 0.0)),
        "near_duplicate_flagged_samples": float(np.unique(np.concatenate([a, b])).size / len(ids)),
        "leakage_rate": float(summary.get("leakage_rate", len(leak) / n_eval)),
        "near_duplicate_rate_without_source_repeats": float(nd_without),
        "near_duplicate_flagged_samples_without_source_repeats": float(flagged_without),
        "leakage_rate_without_source_repeats": float((leaked_positions.size - explained.size) / n_eval),
        "source_repeat_share": float((repeats >= 0).mean()),
        "source_leak_rate": source_leaks / n_eval,
        "n": len(ids), "n_eval": int(is_eval.sum()),
    }


def _service_time_budget(data: BenchData) -> float | None:
    """The time stop the service's default DINO configuration carries (170 s on CPU up to 20k
    images): the matrix runs the service as shipped, so a busy machine trains fewer epochs, and
    the epochs reached are recorded per cell."""
    from quality_assets.ssl.dino import default_config

    return default_config(int(max(data.images[0].shape[:2])), data.n, "cpu").time_budget_s


def _peer_results(data: BenchData, peers: Sequence[str], seed: int, say: Progress,
                  skipped: dict[str, str]) -> list[MethodResult]:
    from quality_lab.bench import fastdup_peer, pretrained
    from quality_lab.bench import peers as base

    status = base.peer_status()
    reasons = {"cleanlab_raw": status["cleanlab"], "cleanlab_imagenet": status["cleanlab"] or pretrained.unavailable_reason(),
               "fastdup": fastdup_peer.unavailable_reason(), "phash": status["phash"]}
    results = []
    abs_paths = [str(data.image_dir / p) for p in data.paths]
    for peer in peers:
        if reasons[peer]:
            skipped[peer] = reasons[peer]
            say(f"[{data.name}] skipping peer {peer}: {reasons[peer]}")
            continue
        t0 = time.perf_counter()
        if peer == "phash":
            r = base.phash_rankings(base.phash_hashes(data.images), data.splits)
            results.append(MethodResult("phash", "-", r, time.perf_counter() - t0))
        elif peer == "cleanlab_raw":
            raw = np.stack([np.asarray(im, dtype=np.float32).reshape(-1) for im in data.images])
            x = base.pca_features(raw, 64, seed)
            r, info = base.cleanlab_rankings(x, data.labels, data.splits, seed=seed)
            results.append(MethodResult("cleanlab", "raw_pca64", r, time.perf_counter() - t0, info))
        elif peer == "cleanlab_imagenet":
            x = base.pca_features(pretrained.imagenet_features(abs_paths), 64, seed)
            r, info = base.cleanlab_rankings(x, data.labels, data.splits, seed=seed)
            results.append(MethodResult("cleanlab", "imagenet_effnet_lite0_pca64", r, time.perf_counter() - t0, info))
        elif peer == "fastdup":
            r = fastdup_peer.fastdup_rankings(data.image_dir, list(data.paths), data.labels, data.splits,
                                              data.root / "fastdup")
            results.append(MethodResult("fastdup", "-", r, time.perf_counter() - t0))
        say(f"[{data.name}] {peer}: {time.perf_counter() - t0:.1f}s")
    return results


def _rankings_file(folder: Path, method: str, features: str) -> Path:
    return Path(folder) / f"{method}__{features.replace('/', '_')}.npz"


def save_rankings(result: MethodResult, folder: Path) -> Path:
    """A method's rankings of one cell, so a later truth can measure them without running the
    method again (:func:`load_rankings`); near duplicates as their two position columns."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for issue_type, ranking in result.rankings.items():
        if issue_type == "near_duplicate":
            arrays["near_duplicate_a"], arrays["near_duplicate_b"] = (np.asarray(x, dtype=np.int64) for x in ranking)
        else:
            arrays[issue_type] = np.asarray(ranking, dtype=np.int64)
    path = _rankings_file(folder, result.method, result.features)
    np.savez_compressed(path, **arrays)
    return path


def load_rankings(folder: Path, method: str, features: str) -> MethodResult:
    """The rankings :func:`save_rankings` wrote, as a result :func:`evaluate_method` measures."""
    with np.load(_rankings_file(folder, method, features)) as stored:
        rankings: dict[str, Any] = {k: stored[k] for k in stored.files if not k.startswith("near_duplicate_")}
        if "near_duplicate_a" in stored.files:
            rankings["near_duplicate"] = (stored["near_duplicate_a"], stored["near_duplicate_b"])
    return MethodResult(method, features, rankings, 0.0)


def _reused_cell(reuse: Path | None, name: str, seed: int) -> dict[str, Any] | None:
    """The same cell of an earlier matrix run (``--reuse``): its clean-data row and metric rows."""
    if reuse is None:
        return None
    stem = Path(reuse) / "cells" / f"{name}-s{seed}"
    if not (stem.with_suffix(".csv").is_file() and stem.with_suffix(".json").is_file()):
        return None
    return {"root": Path(reuse) / "work" / f"{name}-s{seed}", "rows": pd.read_csv(stem.with_suffix(".csv")),
            "clean": json.loads(stem.with_suffix(".json").read_text())["clean"]}


def _ssl_vectors(data: BenchData, part: str, *, seed: int, quick: bool, reused: dict[str, Any] | None,
                 say: Progress) -> tuple[np.ndarray, dict[str, Any]]:
    """The service's DINO on ``data``, trained here, or, with ``--reuse``, the checkpoint that the
    earlier run trained on the same files (the generators are deterministic per seed), so a
    scoring change is measured on the same models without paying for training again."""
    from quality_assets.embedders import SSLCheckpointEmbedder

    earlier = reused["root"] / part / "ssl_checkpoint.pt" if reused else None
    if earlier is not None and earlier.is_file():
        t0 = time.perf_counter()
        shutil.copyfile(earlier, data.root / "ssl_checkpoint.pt")
        vectors = SSLCheckpointEmbedder(data.root / "ssl_checkpoint.pt").embed(
            [str(data.image_dir / p) for p in data.paths])
        row = reused["clean"]
        epochs = row["ssl_epochs"] if part == "contaminated" else row["clean_ssl_epochs"]
        say(f"[{data.name}] DINO reused from {earlier} ({epochs} epochs)")
        return vectors, {"epochs_completed": epochs, "train_seconds": row["ssl_seconds"] if part == "contaminated"
                         else float("nan"), "seconds": round(time.perf_counter() - t0, 1), "reused": str(earlier)}
    overrides = QUICK_SSL if quick else None
    budget = None if quick else _service_time_budget(data)
    vectors, _, info = ssl_and_random_vectors(data, seed=seed, time_budget_s=budget, overrides=overrides,
                                              random_init=False, progress=say)
    return vectors, info


def run_cell(name: str, seed: int, out: Path, *, n_samples: int, peers: Sequence[str], quick: bool,
             say: Progress, reuse: Path | None = None, keep_images: bool = False) -> tuple[pd.DataFrame, dict[str, Any], dict[str, str]]:
    """One dataset at one seed: contaminated run (ours + peers) and the clean-data flags."""
    t_cell = time.perf_counter()
    images, labels, splits, n_repeats = _clean_set(name, seed, n_samples)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 1])
    res = inject(images, labels, splits, rng, ProtocolRates(), foreign_pool=foreign_photos())
    work = out / "work" / f"{name}-s{seed}"
    data = write_bench_data(name, work / "contaminated", res.images, res.labels, res.splits, res.truth, rng)
    say(f"[{name} s{seed}] {data.n} images ({len(images)} clean, {n_repeats} pixel-identical repeats dropped "
        f"from the source), injected " + ", ".join(f"{k}={v}" for k, v in sorted(data.counts.items())))
    reused = _reused_cell(reuse, name, seed)
    ssl, ssl_info = _ssl_vectors(data, "contaminated", seed=seed, quick=quick, reused=reused, say=say)
    thumbs = thumbnails_for(data)
    t0 = time.perf_counter()
    rankings, extra, _ = selfclean_rankings(ssl, data.manifest, k=16, thumbnails=thumbs,
                                            images=pixel_image_loader(data), colour_grids=colour_grids_for(data),
                                            ssl_model=ssl_model_loader(data))
    t_ours = time.perf_counter() - t0 + ssl_info["seconds"]
    results = [
        MethodResult("ours", "service", rankings, t_ours, ssl_info),
        MethodResult("lad", "dino_ssl", {"off_topic": extra["off_topic_lad"]}, 0.0),
        MethodResult("mean_knn", "dino_ssl", {"off_topic": extra["off_topic_knn_baseline"]}, 0.0),
    ]
    summary = extra["summary"] or {}
    contaminated_rates = {key: float(summary.get(key, float("nan"))) for key in ("near_duplicate_rate", "leakage_rate")}
    skipped: dict[str, str] = {}
    earlier_peers = reused["rows"][~reused["rows"]["method"].isin(OWN_METHODS)] if reused else None
    if earlier_peers is not None and WITHOUT_SOURCE_DUPLICATES not in set(earlier_peers.get("truth", ())):
        earlier_peers = None   # rows from before the second truth: the peers run again to be measured by it
    if earlier_peers is None or earlier_peers.empty:
        results += _peer_results(data, peers, seed, say, skipped)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    say(f"[{name} s{seed}] the source's own duplicates (second truth): {excluded.n_pairs} pairs, "
        f"{excluded.eval_images.size} eval images with a twin in train")
    rows = []
    for r in results:
        rows += evaluate_method(r, data) + evaluate_method(r, data, excluded)
        save_rankings(r, work / "rankings")
    rows += _random_rows(data) + _random_rows(data, excluded)
    frame = pd.DataFrame(rows)
    frame.insert(1, "seed", seed)
    if earlier_peers is not None and not earlier_peers.empty:
        say(f"[{name} s{seed}] peers' rows reused from the earlier run (same files)")
        frame = pd.concat([frame, earlier_peers[~earlier_peers["method"].eq("random")]], ignore_index=True)

    # Clean data: the service's own model on the clean files, its flags, then 2.4% true leakage.
    clean = write_bench_data(name, work / "clean", images, labels, splits,
                             res.truth.iloc[0:0], np.random.default_rng([seed, 2]))
    clean_ssl, clean_info = _ssl_vectors(clean, "clean", seed=seed, quick=quick, reused=reused, say=say)
    rates = _flag_rates(clean_ssl, clean, thumbnails_for(clean))
    n_test = int((splits == "test").sum())
    leak = inject_leakage(images, labels, splits, np.random.default_rng([seed, 3]),
                          leak_count_for_rate(n_test, CLEAN_TRUE_LEAKAGE))
    leaky = write_bench_data(name, work / "clean_leak", leak.images, leak.labels, leak.splits, leak.truth,
                             np.random.default_rng([seed, 4]))
    from quality_assets.embedders import SSLCheckpointEmbedder

    leaky_vectors = SSLCheckpointEmbedder(clean.root / "ssl_checkpoint.pt").embed(
        [str(leaky.image_dir / p) for p in leaky.paths])
    leak_rates = _flag_rates(leaky_vectors, leaky, thumbnails_for(leaky))
    true_leak = len(leak.truth) / int(np.isin(leaky.splits, ("val", "test")).sum())
    clean_row = {
        "dataset": name, "seed": seed, "n_clean": len(images),
        "clean_near_duplicate_rate": rates["near_duplicate_rate"],
        "clean_near_duplicate_flagged_samples": rates["near_duplicate_flagged_samples"],
        "clean_leakage_rate": rates["leakage_rate"],
        "source_repeat_share": rates["source_repeat_share"],
        "clean_near_duplicate_rate_without_source_repeats": rates["near_duplicate_rate_without_source_repeats"],
        "clean_leakage_rate_without_source_repeats": rates["leakage_rate_without_source_repeats"],
        "true_leakage": true_leak, "flagged_leakage_at_true": leak_rates["leakage_rate"],
        "true_leakage_with_source_repeats": true_leak + leak_rates["source_leak_rate"],
        "leakage_gate_passes": bool(leak_rates["leakage_rate"] <= LEAKAGE_GATE),
        "contaminated_near_duplicate_rate": contaminated_rates["near_duplicate_rate"],
        "contaminated_leakage_rate": contaminated_rates["leakage_rate"],
        "ssl_epochs": ssl_info["epochs_completed"], "ssl_seconds": ssl_info["train_seconds"],
        "clean_ssl_epochs": clean_info["epochs_completed"],
        "cell_seconds": round(time.perf_counter() - t_cell, 1),
        "ssl_reused_from": ssl_info.get("reused", ""),
    }
    say(f"[{name} s{seed}] clean: near-duplicate rate {rates['near_duplicate_rate']:.4f}, leakage rate "
        f"{rates['leakage_rate']:.4f}; at {true_leak:.3f} true leakage flagged {leak_rates['leakage_rate']:.4f} "
        f"(gate {'passes' if clean_row['leakage_gate_passes'] else 'FAILS'}); cell {clean_row['cell_seconds']:.0f}s")
    if not quick and not keep_images:
        for d in (data, clean, leaky):  # keep the checkpoints and truth, drop the PNG trees
            shutil.rmtree(d.image_dir, ignore_errors=True)
            shutil.rmtree(d.root / "fastdup", ignore_errors=True)
    return frame, clean_row, skipped


def run_matrix(out: Path, *, datasets: Sequence[str] = DEFAULT_DATASETS, seeds: Sequence[int] = (0, 1, 2),
               peers: Sequence[str] = PEERS, quick: bool = False, n_samples: int | None = None,
               force: bool = False, reuse: Path | None = None, keep_images: bool = False,
               say: Progress = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    from quality_lab.matrix_report import write_report

    out = Path(out)
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    n = n_samples or (QUICK_N_SAMPLES if quick else N_SAMPLES)
    unavailable: dict[str, str] = {}
    for seed in seeds:
        for name in datasets:
            if name in unavailable:
                continue
            stem = cells / f"{name}-s{seed}"
            if not force and stem.with_suffix(".csv").is_file() and stem.with_suffix(".json").is_file():
                say(f"[{name} s{seed}] done earlier, kept ({stem}.csv)")
                continue
            try:
                frame, clean_row, skipped = run_cell(name, seed, out, n_samples=n, peers=peers, quick=quick, say=say,
                                                     reuse=reuse, keep_images=keep_images)
            except DatasetUnavailable as err:
                unavailable[name] = str(err)
                say(f"[{name}] SKIPPED: dataset not installed: {err}")
                continue
            frame.to_csv(stem.with_suffix(".csv"), index=False, lineterminator="\n", float_format="%.6g")
            stem.with_suffix(".json").write_text(json.dumps({"clean": clean_row, "skipped_peers": skipped}, indent=1))
            write_report(out, command=" ".join(sys.argv), unavailable=unavailable)
    return write_report(out, command=" ".join(sys.argv), unavailable=unavailable)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quality_lab.matrix", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench_out/matrix"))
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS), choices=sorted(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS) + ["none"])
    p.add_argument("--n-samples", type=int, default=None,
                   help=f"clean images per dataset (default {N_SAMPLES}; --quick: {QUICK_N_SAMPLES})")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny sets, a DINO that trains in seconds")
    p.add_argument("--force", action="store_true", help="recompute cells already in OUT/cells")
    p.add_argument("--keep-images", action="store_true",
                   help="keep each cell's PNG files (for benchmarks/rescore_cell.py); by default only the "
                        "checkpoints and ground truth stay")
    p.add_argument("--reuse", type=Path, default=None, metavar="EARLIER_OUT",
                   help="take each cell's DINO checkpoints and peer rows from an earlier run's OUT (same "
                        "datasets, seeds and --n-samples): re-measures a scoring change without retraining")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    peers = [] if "none" in args.peers else args.peers
    run_matrix(args.out, datasets=args.datasets, seeds=args.seeds, peers=peers, quick=args.quick,
               n_samples=args.n_samples, force=args.force, reuse=args.reuse,
               keep_images=args.keep_images, say=say)
    print(f"wrote {args.out / 'matrix.md'}, {args.out / 'results.csv'}, {args.out / 'clean.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
