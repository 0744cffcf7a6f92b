"""A training consumer that can show what cleaning did: a small CNN trained from scratch.

The linear probe (`training_probe`) reads the frozen embeddings the audit itself scored, so it
learns little from a relabelled sample the embedding already placed right; a network trained on
the pixels memorises the flipped labels it is given, which is the harm cleaning removes.

`run_consumer_experiments` trains one model on the raw train split (given labels, nothing dropped)
and one on the cleaned train split (dropped rows left out, relabelled rows with their new label),
per seed, and scores both on

- the raw eval split (eval rows with their given labels) and the cleaned eval split (eval rows the
  policy kept, with their cleaned labels): PETA's four experiments raw/raw, cleaned/cleaned,
  cleaned train/raw eval, raw train/cleaned eval (SelfClean's third question asks the same);
- when given, a clean eval set (the `trusted` label book, reviewed labels, or in the lab the
  ground truth): the figure that says whether cleaning helped, because every other eval set
  carries the label noise the audit was meant to find.

Each figure is reported per seed and as mean and standard deviation over the seeds. The model is a
timm architecture created without weights (no download), default `test_resnet` (0.37 M
parameters, ~1,000 img/s training at 32 px on two cores, where `resnet10t` runs at ~260), fed at
the data's own resolution (at least 32 px, at most `max_image_size`). Single-label data only.

Speed on CPU: each network trains on one thread, channels-last, and independent networks (seeds and
arms here, the pixel classifier's folds) train side by side, one per core (`train_side_by_side`). A
network this small gains little from a second thread (nothing at 32 px, 1.5x at 64 px); on two
cores the pixel classifier's five folds now train 2.7x faster at 32 px and 1.9x at 64 px
(`benchmarks/bench_cnn_training.py`). One thread per network also keeps the weights the same on every
machine: the float sums of a convolution depend on how many threads share it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from quality_assets.side_by_side import map_side_by_side
from quality_assets.splits import EVAL_SPLITS, TRAIN_SPLITS, TRUSTED_SPLITS

__all__ = ["CnnConfig", "ConsumerResult", "EXPERIMENTS", "build_cnn", "consumer_experiments_from_frame",
           "load_images", "run_consumer_experiments", "side_by_side_workers", "train_cnn", "train_side_by_side",
           "predict"]

# (train labels, eval labels) of PETA's four experiments, in the order they are reported.
EXPERIMENTS: tuple[tuple[str, str], ...] = (("raw", "raw"), ("cleaned", "cleaned"), ("cleaned", "raw"),
                                            ("raw", "cleaned"))


@dataclass(frozen=True)
class CnnConfig:
    arch: str = "test_resnet"
    image_size: int | None = None     # None: the data's own size, clipped to [32, max_image_size]
    max_image_size: int = 64
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    augment: bool = True              # random shift by up to 1/8 of the side (no flips: digits, text)
    threads: int = 1                  # per network (see the module docstring); more changes the weights' float sums
    channels_last: bool = True        # 1.2-1.3x faster on CPU (oneDNN's preferred layout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_side(width: int, height: int, max_size: int = 64) -> int:
    """The side the network sees for images of this size: the largest side clipped to [32, max_size]."""
    return int(min(max(32, max(int(width), int(height))), max_size))


def load_images(paths: Sequence[str], size: int | None = None, *, max_size: int = 64) -> np.ndarray:
    """[n, size, size, 3] uint8 RGB, decoded as the SSL model's images are (`ssl.data.load_image_tensor`:
    EXIF turn, 16-bit, palette and alpha normalised as the ingest statistics see them, large JPEGs
    drafted; torchvision's decoders do not load on CPU torch here). `paths` may be open binary files.
    `size` None: the largest side of the first image, clipped to [32, max_size]."""
    from quality_assets.ssl.data import load_image_tensor

    if not len(paths):
        raise ValueError("no images to load")
    if size is None:
        with Image.open(paths[0]) as first:
            size = image_side(*first.size, max_size=max_size)
    return load_image_tensor(list(paths), size, channels=3).permute(0, 2, 3, 1).contiguous().numpy()


def _as_tensor(images: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x / 127.5) - 1.0


def _shift(batch, generator, pad: int):
    """Random translation per sample by up to `pad` pixels (reflect padding, then crop)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = batch.shape
    padded = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])                    # [n, h]
    cols = (dx[:, None] + torch.arange(w)[None, :])                    # [n, w]
    idx = torch.arange(n)[:, None, None, None]
    ch = torch.arange(batch.shape[1])[None, :, None, None]
    return padded[idx, ch, rows[:, None, :, None], cols[:, None, None, :]]


# A network's initial weights come from torch's global generator: networks built side by side must
# not interleave its draws, or a seed would not give the same network twice.
_BUILD_LOCK = threading.Lock()
_T = TypeVar("_T")
_R = TypeVar("_R")


def side_by_side_workers(n_networks: int) -> int:
    """How many networks train at once: one per core this process may use, at most `n_networks`, and
    at most `QUALITY_CNN_WORKERS` when set (a machine shared with other jobs)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("QUALITY_CNN_WORKERS", "").strip()
    if limit:
        try:
            cores = min(cores, int(limit))
        except ValueError:
            raise ValueError(f"QUALITY_CNN_WORKERS must be a whole number, got {limit!r}") from None
    return max(1, min(int(n_networks), cores))


def train_side_by_side(fit: Callable[[_T], _R], items: Sequence[_T], *, workers: int | None = None) -> list[_R]:
    """`[fit(item) for item in items]`, with up to `workers` (default: `side_by_side_workers`) calls
    at once in threads: torch runs the networks' kernels without the GIL. Each `fit` should train
    with `train_cnn` on one thread (`CnnConfig.threads`, the default), whose networks are the same
    whatever ran beside them."""
    items = list(items)
    workers = side_by_side_workers(len(items)) if workers is None else workers
    return map_side_by_side(fit, items, workers, name="cnn")


def build_cnn(config: CnnConfig, n_classes: int):
    """The untrained timm network of `config` (no pretrained weights: nothing is downloaded)."""
    import quality_assets._torchvision_compat  # noqa: F401  (timm imports torchvision)
    import timm

    return timm.create_model(config.arch, pretrained=False, num_classes=n_classes, in_chans=3)


def train_cnn(images: np.ndarray, codes: np.ndarray, n_classes: int, config: CnnConfig = CnnConfig(), *,
              seed: int = 0, margins: np.ndarray | None = None):
    """A timm model (no pretrained weights) trained with AdamW and a one-cycle schedule; returns it in
    eval mode. `images` [n, s, s, 3] uint8, `codes` in 0..n_classes-1. Safe to call from several
    threads at once (`train_side_by_side`): the seed alone decides the network.

    `margins` ([n] float64, optional) receives each row's area under the margin (Pleiss et al.,
    NeurIPS 2020): its given class's logit over the largest other one, averaged over the epochs, as
    the network saw the row while it trained. A mislabelled row's margin stays low or negative until
    the network memorises it; a correct but hard one's rises early."""
    import torch

    codes = np.asarray(codes, dtype=np.int64)
    if codes.size != len(images) or codes.size == 0:
        raise ValueError(f"need one label per image and at least one image, got {codes.size} for {len(images)}")
    if codes.min() < 0 or codes.max() >= n_classes:
        raise ValueError("labels must be class codes in 0..n_classes-1")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(images, codes, n_classes, config, seed, margins)
    finally:
        torch.set_num_threads(previous_threads)   # the process's other torch work keeps its threads


def _train(images: np.ndarray, codes: np.ndarray, n_classes: int, config: CnnConfig, seed: int,
           margins: np.ndarray | None = None):
    import torch

    with _BUILD_LOCK:
        torch.manual_seed(seed)
        model = build_cnn(config, n_classes)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    generator = torch.Generator().manual_seed(seed)
    x = _as_tensor(images)
    y = torch.from_numpy(codes)
    steps_per_epoch = max(1, math.ceil(len(y) / config.batch_size))
    # foreach: one kernel per step for all parameters, not one per tensor (the same arithmetic).
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr,
                                                   total_steps=steps_per_epoch * config.epochs)
    pad = max(1, x.shape[-1] // 8)
    if margins is not None:
        if margins.shape != (len(y),):
            raise ValueError(f"margins must hold one value per image, got {margins.shape} for {len(y)}")
        margins[:] = 0.0
        seen = np.zeros(len(y))
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start:start + config.batch_size]
            if batch.numel() < 2:   # batch norm needs two samples
                continue
            xb = (_shift(x[batch], generator, pad) if config.augment else x[batch]).contiguous(memory_format=layout)
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, y[batch])
            if margins is not None:
                rows = batch.numpy()
                margins[rows] += _margins(logits.detach(), y[batch])
                seen[rows] += 1
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    if margins is not None:
        margins /= np.maximum(seen, 1)
    return model.eval()


def _margins(logits, labels) -> np.ndarray:
    """Each row's logit of its label minus its largest other logit."""
    import torch

    given = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return (given - other).to(torch.float64).numpy()


def predict(model, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    import torch

    x = _as_tensor(images)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            out.append(model(x[start:start + batch_size]).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class ConsumerResult:
    per_seed: pd.DataFrame                      # seed, train, eval, accuracy, n_train, n_eval
    summary: pd.DataFrame                       # train, eval, mean, std, n_seeds
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def figure(self, train: str, eval: str) -> tuple[float, float]:
        """(mean, std) accuracy of the model trained on `train` scored on `eval`."""
        row = self.summary[(self.summary["train"] == train) & (self.summary["eval"] == eval)]
        if row.empty:
            return float("nan"), float("nan")
        return float(row["mean"].iloc[0]), float(row["std"].iloc[0])

    def metadata(self) -> dict[str, float]:
        """Flat figures for asset metadata: `cnn_<train>_train_<eval>_eval_mean` / `_std`."""
        out: dict[str, float] = {}
        for row in self.summary.itertuples(index=False):
            key = f"cnn_{row.train}_train_{row.eval}_eval"
            out[f"{key}_mean"] = round(float(row.mean), 4)
            out[f"{key}_std"] = round(float(row.std), 4)
        return out


def _label_array(values: Sequence[Any]) -> np.ndarray:
    """Labels as an object array with None for a missing one (NaN, None, pd.NA alike)."""
    return np.asarray(pd.Series(list(values), dtype=object).where(lambda s: s.notna(), None), dtype=object)


def run_consumer_experiments(
    images: np.ndarray,
    raw_labels: Sequence[Any],
    cleaned_labels: Sequence[Any],
    is_train: np.ndarray,
    is_eval: np.ndarray,
    *,
    clean_eval: tuple[np.ndarray, Sequence[Any]] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    config: CnnConfig = CnnConfig(),
    extra_train: Mapping[str, Sequence[Any]] | None = None,
) -> ConsumerResult:
    """Train on raw and cleaned train labels, score on raw, cleaned and (optional) clean eval labels.

    Per row: `raw_labels` the given label, `cleaned_labels` the cleaned split's label (None/NaN for
    a dropped row). `clean_eval` = (mask, labels): the rows and labels of a clean evaluation set,
    reported as eval "clean". `extra_train` adds named train arms on other labels of the same train
    rows, e.g. {"truth": ground-truth labels} for a benchmark's perfect-cleaning reference."""
    t0 = time.perf_counter()
    raw, cleaned = _label_array(raw_labels), _label_array(cleaned_labels)
    is_train, is_eval = np.asarray(is_train, bool), np.asarray(is_eval, bool)
    n = len(images)
    if not (raw.size == cleaned.size == is_train.size == is_eval.size == n):
        raise ValueError("images, labels and masks must have one entry per sample")
    extra = {}
    for name, labels in (extra_train or {}).items():
        if name in ("raw", "cleaned"):
            raise ValueError(f"train arm {name!r} exists already")
        extra[name] = _label_array(labels)
        if extra[name].size != n:
            raise ValueError(f"train arm {name!r} must have one label per sample")
    known = [v for v in np.concatenate([raw, cleaned, *extra.values()]) if v is not None]
    if any("|" in str(v) for v in known):
        raise ValueError("the CNN consumer takes single-label data only (a label holds '|')")
    eval_sets: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "raw": (is_eval & pd.notna(raw), raw),
        "cleaned": (is_eval & pd.notna(cleaned), cleaned),
    }
    if clean_eval is not None:
        mask, labels = clean_eval
        labels = np.asarray(list(labels), dtype=object)
        eval_sets["clean"] = (np.asarray(mask, bool) & pd.notna(labels), labels)
    train_sets = {"raw": (is_train & pd.notna(raw), raw), "cleaned": (is_train & pd.notna(cleaned), cleaned)}
    for name, labels in extra.items():
        train_sets[name] = (is_train & pd.notna(labels), labels)
    for name, (mask, _) in {**train_sets, **{f"eval {k}": v for k, v in eval_sets.items()}}.items():
        if not mask.any():
            raise ValueError(f"no labelled samples for the {name} set")
    classes = pd.Index(sorted({str(v) for v in known}
                              | {str(v) for v in eval_sets.get("clean", (None, []))[1] if pd.notna(v)}))
    arms = [(int(seed), name) for seed in seeds for name in train_sets]

    def fit(arm: tuple[int, str]):
        seed, name = arm
        mask, labels = train_sets[name]
        return train_cnn(images[mask], classes.get_indexer(labels[mask].astype(str)), len(classes), config, seed=seed)

    rows = []
    for (seed, train_name), model in zip(arms, train_side_by_side(fit, arms)):
        train_mask = train_sets[train_name][0]
        for eval_name, (eval_mask, eval_labels) in eval_sets.items():
            predicted = classes[predict(model, images[eval_mask])].to_numpy()
            accuracy = float((predicted == eval_labels[eval_mask].astype(str)).mean())
            rows.append({"seed": seed, "train": train_name, "eval": eval_name, "accuracy": accuracy,
                         "n_train": int(train_mask.sum()), "n_eval": int(eval_mask.sum())})
    per_seed = pd.DataFrame(rows)
    summary = (per_seed.groupby(["train", "eval"], sort=False)["accuracy"]
               .agg(mean="mean", std=lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0, n_seeds="size")
               .reset_index())
    return ConsumerResult(per_seed, summary, config.to_dict(), round(time.perf_counter() - t0, 1))


def consumer_experiments_from_frame(frame: pd.DataFrame, images: np.ndarray, *, seeds: Sequence[int] = (0, 1, 2),
                                    config: CnnConfig = CnnConfig()) -> ConsumerResult:
    """The experiments on a cleaned split: `frame` has split, label (cleaned), original_label and
    action per row of `images`. Train rows are the train split; the raw and cleaned eval sets are
    the val/test rows; the clean eval set is the `trusted` split with its given labels (never
    changed by cleaning), when there is one."""
    split = frame["split"].astype(str).str.lower().to_numpy()
    kept = (frame["action"] != "drop").to_numpy()
    cleaned = np.where(kept, frame["label"].to_numpy(dtype=object), None)
    is_trusted = np.isin(split, TRUSTED_SPLITS)
    clean_eval = (is_trusted, frame["original_label"].to_numpy(dtype=object)) if is_trusted.any() else None
    return run_consumer_experiments(images, frame["original_label"].to_numpy(dtype=object), cleaned,
                                    np.isin(split, TRAIN_SPLITS), np.isin(split, EVAL_SPLITS),
                                    clean_eval=clean_eval, seeds=seeds, config=config)
