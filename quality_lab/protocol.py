"""Contamination of a whole dataset by the published SelfClean protocol, plus train/test leakage.

The per-image transforms and the source of each parameter are in :mod:`quality_lab.protocol_images`.
Dataset-level rules, from Digital-Dermatology/SelfClean-Evaluation ``src/perturbed_datasets/``:

- counts are ``ceil(fraction x N)`` (``nd_augment_dataset.py:59``, ``blur_augment_dataset.py:56``,
  ``artefact_augmentation_dataset.py:71``, ``combined_dataset.py:33``, ``label_error_dataset.py:57``);
- ``LBL`` flips ``ceil(fraction x N)`` labels, each to a uniformly drawn other class
  (``label_error_dataset.py:54-60, 70-75``); ``LBLC`` does so per class, ``ceil(fraction x n_class)``
  in every class (``change_for_every_label=True``, ``label_error_dataset.py:39-52``;
  ``evaluate_synthetic.py:153-158``);
- ``AUG`` / ``ARTE`` append one transformed copy of each drawn source (``nd_augment_dataset.py:61-72``,
  ``artefact_augmentation_dataset.py:73-85``); the pair (source, copy) is the ground truth
  (``get_errors``, ``nd_augment_dataset.py:113-121``);
- ``BLUR`` replaces the drawn samples by their blurred version (the originals are dropped,
  ``blur_augment_dataset.py:71``); ``XR`` appends images of another domain
  (``combined_dataset.py:47-51``). The protocol files both under a new class (``blur:74``,
  ``combined:59``); here they get a random existing label, because a folder named "off-topic"
  would announce them to any tool that reads folder names.
- one fraction per kind for a mixed contamination, as ``evaluate_mixed_contamination.py:72``
  (fractions 0.01 ... 0.5, seeds 1, 42, 111 at line 75); the default here is its lowest, 0.01.

Leakage is ours (the protocol has no train/test split): copies of train images appended to the
eval split, one third byte-exact, one third re-encoded as JPEG, one third lightly cropped.

Each original sample carries at most one injected issue (as target or as copy source), so every
copy has exactly one clean partner and label flips never hit a copy's source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from quality_lab import protocol_images as P

OFF_TOPIC, NEAR_DUPLICATE, LABEL_ERROR, LEAKAGE = "off_topic", "near_duplicate", "label_error", "leakage"
KIND_ISSUE: dict[str, str] = {
    "XR": OFF_TOPIC, "BLUR": OFF_TOPIC, "AUG": NEAR_DUPLICATE, "ARTE": NEAR_DUPLICATE,
    "LBL": LABEL_ERROR, "LBLC": LABEL_ERROR, "LEAK": LEAKAGE,
}
LEAK_VARIANTS: tuple[str, ...] = ("LEAK-exact", "LEAK-jpeg", "LEAK-crop")
TRUTH_COLUMNS: tuple[str, ...] = (
    "issue_type", "kind", "detail", "index", "partner_index", "given_label", "true_label",
)


@dataclass(frozen=True)
class ProtocolRates:
    """Fraction of the clean dataset per kind (``LBLC``: of each class)."""

    xr: float = 0.01
    blur: float = 0.01
    aug: float = 0.01
    arte: float = 0.01
    lbl: float = 0.01
    lblc: float = 0.01
    leak: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            if not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"ProtocolRates.{f.name} must be in [0, 1], got {getattr(self, f.name)}")

    def count(self, kind: str, n: int) -> int:
        return int(math.ceil(getattr(self, kind.lower()) * n - 1e-9))


@dataclass
class Injected:
    """A dataset after contamination: new arrays (inputs are never modified) and the ground truth."""

    images: list[np.ndarray]
    labels: np.ndarray
    splits: np.ndarray
    truth: pd.DataFrame


def _truth(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    frame["index"] = frame["index"].astype(np.int64)
    frame["partner_index"] = frame["partner_index"].astype(np.int64)
    return frame.sort_values("index", kind="stable").reset_index(drop=True)


def _other_class(label: str, classes: np.ndarray, rng: np.random.Generator) -> str:
    return str(rng.choice(classes[classes != label]))


def _draw(free: np.ndarray, n: int, rng: np.random.Generator, what: str, mask: np.ndarray | None = None) -> np.ndarray:
    pool = np.flatnonzero(free if mask is None else free & mask)
    if n > pool.size:
        raise ValueError(f"{what}: need {n} free samples, only {pool.size} available")
    picked = np.sort(rng.choice(pool, size=n, replace=False)) if n else np.zeros(0, np.int64)
    free[picked] = False
    return picked


def inject(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    splits: Sequence[str],
    rng: np.random.Generator,
    rates: ProtocolRates,
    *,
    foreign_pool: Sequence[np.ndarray],
    source_split: str = "train",
    eval_split: str = "test",
) -> Injected:
    """Contaminate a clean dataset with every kind of ``rates`` (see the module docstring)."""
    labels = np.asarray(labels).astype(str)
    splits = np.asarray(splits).astype(str)
    n = len(images)
    if not (n == len(labels) == len(splits)):
        raise ValueError(f"images/labels/splits lengths differ: {n}, {len(labels)}, {len(splits)}")
    classes = np.unique(labels)
    out_images = list(images)
    out_labels = labels.copy().astype(object)
    out_splits = splits.copy().astype(object)
    free = np.ones(n, dtype=bool)
    rows: list[dict] = []
    appended: list[tuple[np.ndarray, str, str]] = []

    def append(img: np.ndarray, label: str, split: str) -> int:
        appended.append((img, label, split))
        return n + len(appended) - 1

    # Leakage first: its sources must come from the source split.
    leak_src = _draw(free, rates.count("LEAK", n), rng, "LEAK", splits == source_split)
    variants = np.resize(np.asarray(LEAK_VARIANTS), leak_src.size)
    rng.shuffle(variants)
    for src, variant in zip(leak_src, variants):
        if variant == "LEAK-exact":
            copy = np.array(images[src], copy=True)
        elif variant == "LEAK-jpeg":
            copy = P.jpeg_copy(images[src])
        else:
            copy = P.light_crop_copy(images[src], rng)
        idx = append(copy, labels[src], eval_split)
        rows.append(dict(issue_type=LEAKAGE, kind="LEAK", detail=str(variant), index=idx, partner_index=int(src),
                         given_label=labels[src], true_label=labels[src]))

    # LBLC: ceil(fraction x class size) in every class (label_error_dataset.py:41-52).
    for cls in classes:
        k = int(math.ceil(rates.lblc * int((labels == cls).sum()) - 1e-9))
        for i in _draw(free, k, rng, f"LBLC class {cls}", labels == cls):
            out_labels[i] = _other_class(cls, classes, rng)
            rows.append(dict(issue_type=LABEL_ERROR, kind="LBLC", detail="LBLC", index=int(i), partner_index=-1,
                             given_label=out_labels[i], true_label=labels[i]))

    for kind, make in (("AUG", lambda i: P.aug_copy(images[i], rng)),
                       ("ARTE", lambda i: P.arte_copy(images[i], rng, images[int(rng.integers(n))]))):
        for src in _draw(free, rates.count(kind, n), rng, kind):
            idx = append(make(int(src)), labels[src], splits[src])
            rows.append(dict(issue_type=NEAR_DUPLICATE, kind=kind, detail=kind, index=idx, partner_index=int(src),
                             given_label=labels[src], true_label=labels[src]))

    for i in _draw(free, rates.count("BLUR", n), rng, "BLUR"):
        out_images[i] = P.blur_off_topic(images[i], rng)
        out_labels[i] = str(rng.choice(classes))
        rows.append(dict(issue_type=OFF_TOPIC, kind="BLUR", detail="BLUR", index=int(i), partner_index=-1,
                         given_label=out_labels[i], true_label=""))

    for i in _draw(free, rates.count("LBL", n), rng, "LBL"):
        out_labels[i] = _other_class(labels[i], classes, rng)
        rows.append(dict(issue_type=LABEL_ERROR, kind="LBL", detail="LBL", index=int(i), partner_index=-1,
                         given_label=out_labels[i], true_label=labels[i]))

    n_xr = rates.count("XR", n)
    if n_xr and not len(foreign_pool):
        raise ValueError("XR: the foreign-domain pool is empty")
    order = np.concatenate([rng.permutation(len(foreign_pool)) for _ in range(-(-n_xr // max(1, len(foreign_pool))))]) \
        if n_xr else np.zeros(0, np.int64)
    for j in range(n_xr):
        src = np.asarray(foreign_pool[int(order[j])])
        if j >= len(foreign_pool):  # a reused pool image gets a fresh crop, so no two are identical
            box = P.random_resized_crop_box(src.shape[1], src.shape[0], rng, (0.4, 0.8), (3 / 4, 4 / 3))
            src = np.asarray(P.to_pil(src).crop(box))
        like = images[int(rng.integers(n))]
        label = str(rng.choice(classes))
        idx = append(P.foreign_image(src, like), label, str(splits[int(rng.integers(n))]))
        rows.append(dict(issue_type=OFF_TOPIC, kind="XR", detail="XR", index=idx, partner_index=-1,
                         given_label=label, true_label=""))

    return Injected(
        images=out_images + [a[0] for a in appended],
        labels=np.asarray(list(out_labels) + [a[1] for a in appended]).astype(str),
        splits=np.asarray(list(out_splits) + [a[2] for a in appended]).astype(str),
        truth=_truth(rows),
    )


def leak_count_for_rate(n_eval: int, rate: float) -> int:
    """Copies to append to an eval split of ``n_eval`` so that leaked / eval = ``rate``."""
    return int(round(rate * n_eval / (1.0 - rate)))


def inject_leakage(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    splits: Sequence[str],
    rng: np.random.Generator,
    n_copies: int,
    *,
    source_split: str = "train",
    eval_split: str = "test",
) -> Injected:
    """Only leakage: ``n_copies`` train images copied into the eval split (thirds exact / JPEG /
    light crop). What the leakage-gate check runs on."""
    rates = ProtocolRates(xr=0, blur=0, aug=0, arte=0, lbl=0, lblc=0, leak=0)
    base = inject(images, labels, splits, rng, rates, foreign_pool=[], source_split=source_split,
                  eval_split=eval_split)
    n = len(images)
    free = np.ones(n, dtype=bool)
    src = _draw(free, n_copies, rng, "LEAK", np.asarray(splits).astype(str) == source_split)
    variants = np.resize(np.asarray(LEAK_VARIANTS), src.size)
    rng.shuffle(variants)
    makers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "LEAK-exact": lambda im: np.array(im, copy=True),
        "LEAK-jpeg": P.jpeg_copy,
        "LEAK-crop": lambda im: P.light_crop_copy(im, rng),
    }
    copies = [makers[str(v)](images[s]) for s, v in zip(src, variants)]
    lab = np.asarray(labels).astype(str)
    rows = [dict(issue_type=LEAKAGE, kind="LEAK", detail=str(v), index=n + j, partner_index=int(s),
                 given_label=lab[s], true_label=lab[s]) for j, (s, v) in enumerate(zip(src, variants))]
    return Injected(
        images=base.images + copies,
        labels=np.concatenate([base.labels, lab[src]]).astype(str),
        splits=np.concatenate([base.splits, np.full(len(src), eval_split)]).astype(str),
        truth=_truth(rows),
    )
