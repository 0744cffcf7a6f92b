"""Features of images under a trained backbone (what the embedding stage stores)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.augment import normalize
from quality_assets.ssl.backbones import embedding_dim
from quality_assets.ssl.config import precision_autocast, resolve_device
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, ImageSource, as_source


def embed_images(
    backbone: nn.Module,
    images: torch.Tensor | ImageSource,
    *,
    mean: tuple[float, ...] | list[float] = DEFAULT_MEAN,
    std: tuple[float, ...] | list[float] = DEFAULT_STD,
    batch_size: int = 512,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Backbone features of uint8 `[N, 3, S, S]` images (a tensor, or an `ImageSource` read a batch at
    a time): float32 `[N, D]`, rows L2-normalised."""
    dev = resolve_device(device)
    model = backbone.to(dev).eval()
    images = as_source(images)
    n = len(images)
    out: np.ndarray | None = None
    with torch.inference_mode(), precision_autocast(dev, "auto" if dev.type == "cuda" else "fp32"):
        for start in range(0, n, batch_size):
            x = images.take(slice(start, start + batch_size)).to(dev).float().div_(255.0)
            f = model(normalize(x, tuple(mean), tuple(std))).float()
            f = F.normalize(f, dim=1).cpu().numpy()
            if out is None:
                out = np.empty((n, f.shape[1]), dtype=np.float32)
            out[start:start + len(f)] = f
            if progress is not None:
                progress(min(start + batch_size, n), n)
    if out is None:
        return np.zeros((0, embedding_dim(backbone)), dtype=np.float32)
    return out
