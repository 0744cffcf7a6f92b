"""The warm-started copy descriptor kept between runs, so that a drop embeds its new images with the
network it already has instead of fine-tuning it again (170-350 s on 2 CPU cores at 3,000 images).

A fit holds the fine-tuned network, the SSL backbone it started from (a digest of its weights), and
every row's dihedral descriptors by a 64-bit digest of the row's content key. It serves a later run
when that run's SSL backbone is the same one, its images are of the same side, and the rows changed
(new plus removed, against the rows the network trained among) by at most ``max_growth_fraction``
of those: the SSL model's own retraining rule (`ssl.policy`), so the two are kept and retrained
together on a growing set. Kept rows read their stored descriptors, new rows are embedded by the
kept network. Descriptors are stored and returned at half precision (cosine similarities of unit
vectors of 128 floats move by about 1e-3), so a fresh fit and a kept one give the same values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch.nn as nn

from quality_assets.copy_detection.descriptor import (
    DIHEDRAL, WARM_START_MAX_TRAIN_ROWS, embed_copies, load_copy_descriptor, warm_started_descriptors,
)

__all__ = ["CopyDescriptorFit", "KeptDescriptors", "MAX_GROWTH_FRACTION", "backbone_digest", "descriptor_settings",
           "kept_descriptors"]

# As the SSL model (`representation.max_growth_fraction`) and the pixel classifier: retrain when the
# rows changed by more than this fraction of those the network trained among.
MAX_GROWTH_FRACTION = 0.2


@dataclass
class CopyDescriptorFit:
    """One fine-tuned descriptor and the descriptors of every row it has embedded.

    `keys`: uint64 digests of the rows' content keys; the first `n_trained` are the rows the set had
    when the network trained (the training sample was drawn among them), the others were embedded
    later. `descriptors`: float16 [rows, 8, dim]. `state`: the network (`CopyDescriptor.state()`).
    `settings`: what else the fit depends on (the SSL backbone's digest, the recipe's settings)."""

    state: dict[str, Any]
    keys: np.ndarray
    descriptors: np.ndarray
    n_trained: int
    side: int
    settings: dict[str, Any]
    steps: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")


@dataclass
class KeptDescriptors:
    """What :func:`kept_descriptors` gives: float32 [n, 8, dim] descriptors in the caller's row
    order, the fit they came from, whether its network was trained in this call, why, and how many
    rows were embedded here."""

    descriptors: np.ndarray
    fit: CopyDescriptorFit
    trained: bool
    reason: str
    n_embedded: int

    @property
    def fit_changed(self) -> bool:
        """Whether `fit` holds anything the earlier fit did not (to be stored)."""
        return self.trained or self.n_embedded > 0


def backbone_digest(backbone: nn.Module) -> str:
    """16 hex digits over a backbone's weights and buffers (names, shapes, values): the identity of the
    SSL model a descriptor started from, whoever loaded it."""
    h = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()[:16]


def kept_descriptors(load: Callable[[np.ndarray], np.ndarray], digests: np.ndarray, ssl_backbone: nn.Module,
                     ssl_meta: dict[str, Any], *, previous: CopyDescriptorFit | None = None,
                     max_growth_fraction: float = MAX_GROWTH_FRACTION,
                     max_train_rows: int = WARM_START_MAX_TRAIN_ROWS,
                     chunk: int = 4096, device: str = "auto", seed: int = 0,
                     steps: int | None = None) -> KeptDescriptors:
    """The rows' dihedral copy descriptors from `previous` where it still serves them (see the module
    docstring), else from a descriptor fine-tuned here out of `ssl_backbone`
    (`warm_started_descriptors`). `load(rows)`: the images at those positions; `digests`: the rows'
    unique uint64 content-key digests (`scores.pixel_classifier.key_digests`)."""
    if max_growth_fraction < 0:
        raise ValueError(f"max_growth_fraction must be >= 0, got {max_growth_fraction}")
    digests = np.asarray(digests, dtype=np.uint64)
    if np.unique(digests).size != digests.size:
        raise ValueError("the copy descriptor's content keys must be unique")
    settings = descriptor_settings(ssl_backbone, max_train_rows=max_train_rows, seed=seed, steps=steps)
    reason = _change_reason(previous, settings, digests, max_growth_fraction)
    if reason is None:
        kept = _keep(previous, load, digests, chunk=chunk, device=device)
        if kept is not None:
            return kept
        reason = "the images' size changed"
    out, descriptor = warm_started_descriptors(load, digests.size, ssl_backbone, ssl_meta,
                                               max_train_rows=max_train_rows, chunk=chunk, device=device,
                                               seed=seed, steps=steps)
    stored = out.astype(np.float16)
    side = int(np.asarray(load(np.arange(1))[0]).shape[1])
    fit = CopyDescriptorFit(descriptor.state(), digests.copy(), stored, int(digests.size), side, settings,
                            descriptor.steps_done, float(descriptor.seconds), float(descriptor.final_loss))
    return KeptDescriptors(stored.astype(np.float32), fit, True, reason, int(digests.size))


def descriptor_settings(ssl_backbone: nn.Module, *, max_train_rows: int = WARM_START_MAX_TRAIN_ROWS, seed: int = 0,
                        steps: int | None = None) -> dict[str, Any]:
    """What a fit depends on besides the rows: a kept fit must have been made with the same."""
    return {"ssl_backbone": backbone_digest(ssl_backbone), "max_train_rows": int(max_train_rows), "seed": int(seed),
            "steps": None if steps is None else int(steps)}


def _change_reason(previous: CopyDescriptorFit | None, settings: dict[str, Any], digests: np.ndarray,
                   max_growth_fraction: float) -> str | None:
    """Why `previous` cannot serve these rows (None: it can)."""
    if previous is None:
        return "no earlier fit"
    if previous.settings.get("ssl_backbone") != settings["ssl_backbone"]:
        return "the SSL model changed"
    if previous.settings != settings:
        return "the descriptor's settings changed"
    among_trained = pd.Index(previous.keys[:previous.n_trained]).get_indexer(digests) >= 0
    still_there = int(among_trained.sum())
    changed = (digests.size - still_there) + (previous.n_trained - still_there)
    growth = changed / max(previous.n_trained, 1)
    if growth > max_growth_fraction:
        return f"the rows changed by {growth:.0%} > {max_growth_fraction:.0%}"
    return None


def _keep(previous: CopyDescriptorFit, load: Callable[[np.ndarray], np.ndarray], digests: np.ndarray, *,
          chunk: int, device: str) -> KeptDescriptors | None:
    """The rows' descriptors from `previous`, its network embedding the rows it has not seen (None: their
    images are not of the side the fit's rows were embedded at)."""
    at = pd.Index(previous.keys).get_indexer(digests)
    new = np.flatnonzero(at < 0)
    dim = previous.descriptors.shape[2]
    out = np.empty((digests.size, DIHEDRAL, dim), dtype=np.float16)
    seen = np.flatnonzero(at >= 0)
    out[seen] = previous.descriptors[at[seen]]
    fit = previous
    if new.size:
        descriptor = load_copy_descriptor(previous.state)
        for start in range(0, new.size, chunk):
            part = new[start:start + chunk]
            images = load(part)
            if int(np.asarray(images[0]).shape[1]) != previous.side:
                return None
            out[part] = embed_copies(descriptor, images, device=device).astype(np.float16)
        fit = replace(previous, keys=np.concatenate([previous.keys, digests[new]]),
                      descriptors=np.concatenate([previous.descriptors, out[new]]))
    reason = (f"kept the earlier fit: {new.size} new rows embedded by its network" if new.size
              else "kept the earlier fit: no new rows")
    return KeptDescriptors(out.astype(np.float32), fit, False, reason, int(new.size))
