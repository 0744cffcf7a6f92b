"""Out-of-fold class probabilities from a small network trained on the images: label-error evidence
that does not depend on what the self-supervised representation learned.

cleanlab's own recipe: K-fold cross-validation of a model fitted on the data, each sample's
probabilities from the fold model that never saw it. The representation classifiers of
:mod:`quality_assets.scores.confident_learning` read the frozen SSL vectors; where those do not
separate the classes (a short CPU DINO on 3,000 colour clip-art pictures of 64 px), a network
trained on the labelled pixels does: on the benchmark matrix's clip-art cell its out-of-fold
probabilities rank the protocol's label flips at AP 0.54 where the service reached 0.35
(docs/benchmarks/matrix.md, "Update 2026-12-03"). The network is the CNN consumer's
(:func:`quality_assets.consumer_cnn.train_cnn`: a timm `test_resnet` from scratch, no outside
weights, random-shift augmentation, the data's own resolution clipped to [32, 64] px, colour kept).

Folds are dealt as the representation classifiers deal them (`confident_learning.deal_folds`, in
content order when keys are given); anchored rows (the `trusted` label book) sit in every fold's
training data and get their own label as probability.

Scale: a fold's network trains on at most `max_train_rows` of its training rows (anchored rows first,
then a per-class share in content order), and the images come from a loader by row positions, so neither the
training cost nor the memory grows past that bound with the data; every row is still predicted, in
chunks, by the network that did not see it.

Training dynamics: the fold networks also record each training row's area under the margin (AUM,
Pleiss et al., NeurIPS 2020: its label's logit over the largest other one, averaged over the epochs,
then over the folds that trained on it). A flipped label is learned late, by memorising it; a hard
but right one early. It is free (the logits of the training steps) and independent enough of the
held-out probabilities to add to them: on the matrix's clip-art cells self-confidence alone ranks
the flips at AP 0.52 / 0.38, with the margins 0.57 / 0.47 (`benchmarks/bench_label_dynamics.py`).

Incremental: a fit (:class:`PixelClassifierFit`) keeps its fold networks and every row's
probabilities, by content key. A later run on grown data (:func:`pixel_probabilities`) keeps the
probabilities of the rows the fit already holds (each still from the network that never saw the
image: a row's probabilities do not depend on its own label), predicts new rows with the mean of all
fold networks (none saw them), and trains again only when the labelled rows changed by more than a
fraction of the fit's training rows (new, relabelled and removed rows together), as the SSL model
does. A 1% drop of 10k images then costs a prediction of 100 images, not five trainings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quality_assets.consumer_cnn import CnnConfig, build_cnn, train_cnn, train_side_by_side
from quality_assets.scores.kept_fits import (MAX_GROWTH_FRACTION, KeptFit, keep_rows, key_digests, reuse_reason,
                                             unique_digests)

__all__ = ["MAX_GROWTH_FRACTION", "MAX_TRAIN_ROWS", "PIXEL_CLASSIFIER_CONFIG", "FoldNetwork", "PixelClassifierFit",
           "PixelProbabilities", "fit_pixel_classifier", "key_digests", "out_of_fold_pixel_probabilities",
           "pixel_probabilities", "pixel_settings"]

# The consumer's network and schedule: 15 epochs, batch 64, AdamW with a one-cycle schedule.
PIXEL_CLASSIFIER_CONFIG = CnnConfig()
# Past this many training rows a fold's network sees a per-class share of them (anchors first, as the
# kernel model's folds take theirs): 5 folds x 15 epochs x 5,000 rows of 64 px is about 7 minutes on
# two CPU cores with the folds side by side (13 one at a time), the ceiling whatever the data's size
# (the representation's LDA sees every row).
MAX_TRAIN_ROWS = 5_000
_PREDICT_CHUNK = 2048

ImageRows = np.ndarray | Callable[[np.ndarray], np.ndarray]


def _rows_of(images: ImageRows, rows: np.ndarray) -> np.ndarray:
    out = np.asarray(images(rows) if callable(images) else images[rows])
    if out.ndim != 4 or out.shape[-1] != 3 or len(out) != len(rows):
        raise ValueError(f"need [n, s, s, 3] images, one per row asked for; got {out.shape} for {len(rows)} rows")
    return out


def out_of_fold_pixel_probabilities(images: ImageRows, codes: np.ndarray, n_classes: int, *,
                                    folds: int | None = None, seed: int = 0, anchor: np.ndarray | None = None,
                                    order_key: np.ndarray | None = None,
                                    config: CnnConfig = PIXEL_CLASSIFIER_CONFIG,
                                    max_train_rows: int = MAX_TRAIN_ROWS,
                                    margins: np.ndarray | None = None) -> np.ndarray:
    """[n, n_classes] softmax probabilities, each row from a network trained without it.

    `images`: [n, s, s, 3] uint8 (one size for all, as `consumer_cnn.load_images` gives), or a
    function that returns those of the row positions it is given. `codes` in 0..n_classes-1. Fold
    f's network trains with seed `seed + f`, so a run is reproducible on the same machine and thread
    count. `margins` ([n], optional) receives the rows' areas under the margin (see `_fit_folds`)."""
    return _fit_folds(images, codes, n_classes, folds=folds, seed=seed, anchor=anchor, order_key=order_key,
                      config=config, max_train_rows=max_train_rows, margins=margins)[0]


@dataclass
class FoldNetwork:
    """One fold's trained network (its `state_dict`; None when its training rows held one class,
    which it then predicts) and the classes its training rows held (the others get probability 0)."""

    state: dict | None
    present: np.ndarray


@dataclass
class PixelClassifierFit(KeptFit):
    """The fold networks of one out-of-fold fit and the rows it has seen (`kept_fits.KeptFit`):
    `side` the image side the networks were trained at, `settings` what else the fit depends on
    (seed, training cap, network config), `margins` how the networks learned each row's label while
    they trained (`_fit_folds`)."""

    folds: list[FoldNetwork]
    side: int
    settings: dict[str, Any] = field(default_factory=dict)
    # Each row's area under the margin while the fold networks trained on it (float32, NaN for a row
    # none trained on: a predicted row, one past the training cap, one relabelled since); None: a fit
    # stored before margins were kept.
    margins: np.ndarray | None = None


@dataclass
class PixelProbabilities:
    """What :func:`pixel_probabilities` gives: the rows' probabilities (columns in the caller's class
    order), the fit they came from, whether the folds were trained in this call, why, and how many
    rows the fold networks predicted here (a kept fit's new rows)."""

    probabilities: np.ndarray
    fit: PixelClassifierFit
    trained: bool
    reason: str
    n_predicted: int = 0
    margins: np.ndarray | None = None   # per row, as `PixelClassifierFit.margins` (NaN where none)

    @property
    def fit_changed(self) -> bool:
        """Whether `fit` holds anything the earlier fit did not (to be stored)."""
        return self.trained or self.n_predicted > 0


def pixel_settings(*, seed: int = 0, max_train_rows: int = MAX_TRAIN_ROWS,
                   config: CnnConfig = PIXEL_CLASSIFIER_CONFIG, folds: int | None = None) -> dict[str, Any]:
    """What a fit depends on besides the rows: a kept fit must have been made with the same."""
    return {"seed": int(seed), "max_train_rows": int(max_train_rows), "folds": folds, "config": config.to_dict()}


def fit_pixel_classifier(images: ImageRows, codes: np.ndarray, classes, keys: np.ndarray, *,
                         folds: int | None = None, seed: int = 0, anchor: np.ndarray | None = None,
                         config: CnnConfig = PIXEL_CLASSIFIER_CONFIG,
                         max_train_rows: int = MAX_TRAIN_ROWS) -> PixelClassifierFit:
    """:func:`out_of_fold_pixel_probabilities` that keeps its fold networks, for later runs. `keys`:
    the rows' content keys (unique; the folds are dealt in their order)."""
    return _fit(images, np.asarray(codes, dtype=np.int64), tuple(str(c) for c in classes), keys,
                unique_digests(keys, "pixel classifier"), folds=folds, seed=seed, anchor=anchor, config=config,
                max_train_rows=max_train_rows)


def pixel_probabilities(images: ImageRows, codes: np.ndarray, classes, keys: np.ndarray, *,
                        previous: PixelClassifierFit | None = None,
                        max_growth_fraction: float = MAX_GROWTH_FRACTION, folds: int | None = None, seed: int = 0,
                        anchor: np.ndarray | None = None, config: CnnConfig = PIXEL_CLASSIFIER_CONFIG,
                        max_train_rows: int = MAX_TRAIN_ROWS) -> PixelProbabilities:
    """Out-of-sample probabilities of the rows from `previous` where it still holds (see the module
    docstring), else from a new fit. `classes`: the class name of each code; `keys`: unique content
    keys of the rows."""
    if max_growth_fraction < 0:
        raise ValueError(f"max_growth_fraction must be >= 0, got {max_growth_fraction}")
    classes = tuple(str(c) for c in classes)
    codes = np.asarray(codes, dtype=np.int64)
    anchored = np.zeros(len(codes), bool) if anchor is None else np.asarray(anchor, dtype=bool)
    settings = pixel_settings(seed=seed, max_train_rows=max_train_rows, config=config, folds=folds)
    digests = unique_digests(keys, "pixel classifier")
    reason, at, columns = reuse_reason(previous, settings, classes, digests, codes, anchored, max_growth_fraction)
    if reason is None:
        kept = _keep(previous, images, at, columns, digests, codes, anchored, config)
        if kept is not None:
            return kept
        reason = "the images' size changed"
    fit = _fit(images, codes, classes, keys, digests, folds=folds, seed=seed, anchor=anchored, config=config,
               max_train_rows=max_train_rows)
    return PixelProbabilities(fit.probabilities.astype(np.float64), fit, True, reason,
                              margins=fit.margins.astype(np.float64))


def _fit(images: ImageRows, codes: np.ndarray, classes: tuple[str, ...], keys: np.ndarray, digests: np.ndarray, *,
         folds: int | None, seed: int, anchor: np.ndarray | None, config: CnnConfig,
         max_train_rows: int) -> PixelClassifierFit:
    margins = np.empty(len(codes))
    probs, networks, side = _fit_folds(images, codes, len(classes), folds=folds, seed=seed, anchor=anchor,
                                       order_key=np.asarray(keys), config=config, max_train_rows=max_train_rows,
                                       margins=margins)
    anchored = np.zeros(len(codes), bool) if anchor is None else np.asarray(anchor, dtype=bool)
    return PixelClassifierFit(classes, digests, codes.astype(np.int32), anchored.copy(), np.ones(len(codes), bool),
                              probs.astype(np.float32), networks, side,
                              pixel_settings(seed=seed, max_train_rows=max_train_rows, config=config, folds=folds),
                              margins.astype(np.float32))


def _keep(previous: PixelClassifierFit, images: ImageRows, at: np.ndarray, columns: np.ndarray, digests: np.ndarray,
          codes: np.ndarray, anchored: np.ndarray, config: CnnConfig) -> PixelProbabilities | None:
    """The rows' probabilities from `previous` and its fold networks (None: the new rows' images are
    not of the size the networks were trained at)."""
    new = at < 0
    seen = np.flatnonzero(~new)
    # A row's margin was measured for the label it had then: a row relabelled since has none.
    kept_margins = np.full(len(previous.keys), np.nan, dtype=np.float32) if previous.margins is None \
        else previous.margins
    margins = np.full(len(digests), np.nan)
    same_label = previous.labels[at[seen]] == columns[codes[seen]]
    margins[seen] = np.where(same_label, kept_margins[at[seen]], np.nan)
    kept = keep_rows(previous, at, columns, digests, codes, anchored,
                     lambda rows: _ensemble(previous, images, rows, config),
                     margins=np.concatenate([kept_margins, np.full(int(new.sum()), np.nan, dtype=np.float32)]))
    if kept is None:
        return None
    reason = (f"kept the earlier fit: {kept.n_new} new rows predicted by its {len(previous.folds)} fold networks"
              if kept.n_new else "kept the earlier fit: no new rows")
    return PixelProbabilities(kept.probabilities, kept.fit, False, reason, kept.n_predicted, margins)


def _ensemble(fit: PixelClassifierFit, images: ImageRows, rows: np.ndarray, config: CnnConfig) -> np.ndarray | None:
    """[len(rows), len(fit.classes)]: the mean of the fold networks' probabilities (None: the images
    are not of the fit's size)."""
    import torch

    from quality_assets.consumer_cnn import _as_tensor

    n_classes = len(fit.classes)
    out = np.zeros((rows.size, n_classes))
    networks = []
    for fold in fit.folds:
        if fold.state is None:
            networks.append((None, fold.present))
            continue
        model = build_cnn(config, n_classes)
        model.load_state_dict(fold.state)
        layout = torch.channels_last if config.channels_last else torch.contiguous_format
        networks.append((model.to(memory_format=layout).eval(), fold.present))
    with torch.inference_mode():
        for start in range(0, rows.size, _PREDICT_CHUNK):
            chunk = np.arange(start, min(start + _PREDICT_CHUNK, rows.size))
            pixels = _rows_of(images, rows[chunk])
            if pixels.shape[1] != fit.side:
                return None
            x = _as_tensor(pixels)
            for model, present in networks:
                if model is None:
                    out[chunk, present[0]] += 1.0
                    continue
                out[chunk] += _softmax_of_present(model, x, present, n_classes)
    return (out / max(len(networks), 1)).astype(np.float32)


def _softmax_of_present(model, x, present: np.ndarray, n_classes: int) -> np.ndarray:
    """The network's class probabilities on `x`, in batches; classes absent from its training data
    keep probability 0."""
    import torch

    absent = np.setdiff1d(np.arange(n_classes), present)
    out = []
    for at in range(0, len(x), 256):
        logits = model(x[at:at + 256]).float()
        logits[:, absent] = -torch.inf
        out.append(torch.softmax(logits, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, n_classes))


def _fit_folds(images: ImageRows, codes: np.ndarray, n_classes: int, *, folds: int | None, seed: int,
               anchor: np.ndarray | None, order_key: np.ndarray | None, config: CnnConfig,
               max_train_rows: int, margins: np.ndarray | None = None) -> tuple[np.ndarray, list[FoldNetwork], int]:
    """(out-of-fold probabilities, the fold networks, the image side they were trained at).

    `margins` ([n], optional) receives each row's area under the margin (`consumer_cnn.train_cnn`)
    averaged over the folds that trained on it; NaN for a row no fold network trained on."""
    import torch

    from quality_assets.consumer_cnn import _as_tensor
    # Here, not at the top: the label-error unit reads this module's limits as its options' defaults
    # whenever the registry loads, and confident_learning brings scikit-learn.
    from quality_assets.scores.confident_learning import (_content_order, _training_rows, anchored_probabilities,
                                                          deal_folds)

    codes = np.asarray(codes, dtype=np.int64)
    if not callable(images):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(codes):
            raise ValueError(f"need [n, s, s, 3] images and one code per image, got {images.shape} and {codes.shape}")
    if max_train_rows < 2:
        raise ValueError(f"max_train_rows must be at least 2, got {max_train_rows}")
    if codes.size and (codes.min() < 0 or codes.max() >= n_classes):
        raise ValueError("labels must be class codes in 0..n_classes-1")
    n = len(codes)
    anchored, probs = anchored_probabilities(codes, anchor, n_classes)
    networks: list[FoldNetwork] = []
    side = 0
    if anchored.all():
        if margins is not None:
            margins[:] = np.nan
        return probs, networks, side
    order = _content_order(n, order_key)
    fold_in_order, k = deal_folds(codes[order], anchored[order], n_classes, folds=folds, seed=seed)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = fold_in_order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    plans: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []   # (fold, held rows, train rows, classes)
    single: dict[int, FoldNetwork] = {}
    for fold in range(k):
        held = np.flatnonzero(fold_of == fold)
        if held.size == 0:
            continue
        # Training rows in content order too: the batches a seed draws then pick the same images.
        train = _training_rows(order[fold_in_order != fold], codes, anchored, rank, max_train_rows)
        present = np.unique(codes[train])
        if present.size == 1:
            probs[held, present[0]] = 1.0
            single[fold] = FoldNetwork(None, present)
            continue
        plans.append((fold, held, train, present))
    # The image loader may read an object store or a cache that is not thread-safe: one read at a time.
    read_lock = threading.Lock()
    margin_sum, margin_count = np.zeros(n), np.zeros(n)

    def read(rows: np.ndarray) -> np.ndarray:
        with read_lock:
            return _rows_of(images, rows)

    def fit_fold(plan: tuple[int, np.ndarray, np.ndarray, np.ndarray]) -> tuple[FoldNetwork, int]:
        fold, held, train, present = plan
        pixels = read(train)
        fold_side = int(pixels.shape[1])
        fold_margins = None if margins is None else np.zeros(train.size)
        model = train_cnn(pixels, codes[train], n_classes, config, seed=seed + fold, margins=fold_margins)
        del pixels
        if fold_margins is not None:
            with read_lock:
                margin_sum[train] += fold_margins
                margin_count[train] += 1
        with torch.inference_mode():   # each fold writes only its own held rows
            for start in range(0, held.size, _PREDICT_CHUNK):
                chunk = held[start:start + _PREDICT_CHUNK]
                probs[chunk] = _softmax_of_present(model, _as_tensor(read(chunk)), present, n_classes)
        return FoldNetwork(model.state_dict(), present), fold_side

    # The folds' networks train side by side (one per core), each the same as if trained alone.
    trained = dict(zip((plan[0] for plan in plans), train_side_by_side(fit_fold, plans)))
    networks = [single[fold] if fold in single else trained[fold][0] for fold in sorted({*single, *trained})]
    side = next((fold_side for _, fold_side in trained.values()), 0)
    if margins is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            margins[:] = np.where(margin_count > 0, margin_sum / margin_count, np.nan)
    return probs, networks, side
