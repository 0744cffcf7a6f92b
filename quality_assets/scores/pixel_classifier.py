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
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quality_assets.consumer_cnn import CnnConfig, train_cnn
from quality_assets.scores.confident_learning import (_content_order, _training_rows, anchored_probabilities,
                                                      deal_folds)

__all__ = ["MAX_TRAIN_ROWS", "PIXEL_CLASSIFIER_CONFIG", "out_of_fold_pixel_probabilities"]

# The consumer's network and schedule: 15 epochs, batch 64, AdamW with a one-cycle schedule.
PIXEL_CLASSIFIER_CONFIG = CnnConfig()
# Past this many training rows a fold's network sees a per-class share of them (anchors first, as the
# kernel model's folds take theirs): 5 folds x 15 epochs x 5,000 rows of 64 px is about 13 minutes on
# two CPU cores, the ceiling whatever the data's size (the representation's LDA sees every row).
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
                                    max_train_rows: int = MAX_TRAIN_ROWS) -> np.ndarray:
    """[n, n_classes] softmax probabilities, each row from a network trained without it.

    `images`: [n, s, s, 3] uint8 (one size for all, as `consumer_cnn.load_images` gives), or a
    function that returns those of the row positions it is given. `codes` in 0..n_classes-1. Fold
    f's network trains with seed `seed + f`, so a run is reproducible on the same machine and thread
    count."""
    import torch

    from quality_assets.consumer_cnn import _as_tensor

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
    if anchored.all():
        return probs
    order = _content_order(n, order_key)
    fold_in_order, k = deal_folds(codes[order], anchored[order], n_classes, folds=folds, seed=seed)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = fold_in_order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    for fold in range(k):
        held = np.flatnonzero(fold_of == fold)
        if held.size == 0:
            continue
        # Training rows in content order too: the batches a seed draws then pick the same images.
        train = _training_rows(order[fold_in_order != fold], codes, anchored, rank, max_train_rows)
        present = np.unique(codes[train])
        if present.size == 1:
            probs[held, present[0]] = 1.0
            continue
        model = train_cnn(_rows_of(images, train), codes[train], n_classes, config, seed=seed + fold)
        with torch.inference_mode():
            for start in range(0, held.size, _PREDICT_CHUNK):
                chunk = held[start:start + _PREDICT_CHUNK]
                x = _as_tensor(_rows_of(images, chunk))
                for at in range(0, chunk.size, 256):
                    logits = model(x[at:at + 256]).float()
                    # Classes absent from this fold's training data keep probability 0.
                    logits[:, np.setdiff1d(np.arange(n_classes), present)] = -torch.inf
                    probs[chunk[at:at + 256]] = torch.softmax(logits, 1).numpy()
    return probs
