"""The detection benchmark's data: load a clean dataset, contaminate it, shuffle, write PNG files
and the ground truth, build the manifest as ingestion does. Position i = sample i everywhere.
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from quality_lab.contamination import ContaminationRates, contaminate


ISSUE_TYPES: tuple[str, ...] = ("off_topic", "near_duplicate", "label_error", "leakage")
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
    from quality_lab import demo_data

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
    (root / MARKER).write_text("written by quality_lab.bench.detection; safe to delete\n")


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
    from quality_lab.demo_data import load_offtopic_pool
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
