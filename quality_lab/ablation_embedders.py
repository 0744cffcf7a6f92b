"""Ablation embedders for the benchmarks: what the SSL training adds over raw pixels and over the
same network left untrained. Never used by the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import quality_assets.ssl  # noqa: F401  (torchvision/compat-shim order before torch users)
import torch

from quality_assets.embedders import _DECODE_CHUNK, Embedder, ProgressFn, _BackboneEmbedder, _l2_normalise
from quality_assets.ssl.backbones import create_backbone, embedding_dim, recalibrate_batchnorm
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, load_image_tensor
from quality_assets.ssl.dino import DinoConfig

__all__ = ["RandomInitEmbedder", "RawPixelEmbedder"]


class RandomInitEmbedder(_BackboneEmbedder):
    """Ablation: the SSL architecture with its random initial weights (seeded), BatchNorm statistics
    re-estimated on the first chunk of images so that the untrained network is not degenerate.

    `arch` is a DinoConfig (or its dict) or an architecture name with `image_size` (and `arch_kwargs`).
    """

    def __init__(
        self, arch: DinoConfig | dict[str, Any] | str | None = None, image_size: int | None = None, seed: int = 0,
        arch_kwargs: dict[str, Any] | None = None, device: str = "cpu", threads: int | None = None,
    ) -> None:
        if isinstance(arch, str):
            cfg = DinoConfig(arch=arch, arch_kwargs=dict(arch_kwargs or {}))
            if image_size is not None:
                cfg.image_size = cfg.global_crop_size = int(image_size)
        else:
            cfg = arch if isinstance(arch, DinoConfig) else DinoConfig.from_dict(arch or {})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = create_backbone(cfg.arch, cfg.global_crop_size, cfg.arch_kwargs)
        super().__init__(model, cfg.global_crop_size, DEFAULT_MEAN, DEFAULT_STD, device, threads)
        self.dim = embedding_dim(model)
        self.model_version = f"random-{cfg.arch}-{cfg.global_crop_size}px-seed{seed}"

    def _prepare(self, images: torch.Tensor) -> None:
        recalibrate_batchnorm(self.model, images, self.mean, self.std, device=self.device)
        self.model.eval()


class RawPixelEmbedder(Embedder):
    """Ablation: the resized pixels themselves (3 x S x S values, centred per image, L2-normalised)."""

    def __init__(self, image_size: int = 28) -> None:
        self.image_size = int(image_size)
        self.dim = 3 * self.image_size * self.image_size
        self.model_version = f"raw-{self.image_size}px"

    def embed(
        self, paths: Sequence[Path], *, batch_size: int = 512, progress: ProgressFn | None = None
    ) -> np.ndarray:
        total = len(paths)
        out = np.empty((total, self.dim), dtype=np.float32)
        for start in range(0, total, _DECODE_CHUNK):
            chunk = paths[start:start + _DECODE_CHUNK]
            x = load_image_tensor(chunk, self.image_size).reshape(len(chunk), -1).float().numpy()
            out[start:start + len(chunk)] = _l2_normalise(x)
            if progress is not None:
                progress(start + len(chunk), total)
        return out
