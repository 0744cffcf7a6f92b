"""DINO self-distillation on the dataset's own images, as one import: the names of the modules below.

`config` (DinoConfig, default_config), `networks` (head, student/teacher), `loss` (DINO loss,
centering, KoLeo), `train` (train_dino), `checkpoints` (save/load, file_sha256), `embed`
(embed_images). Callers import from here; the split is by job, not an API boundary.
"""

from __future__ import annotations

from quality_assets.ssl.checkpoints import (
    CHECKPOINT_FORMAT,
    file_sha256,
    load_checkpoint,
    preprocessing_spec,
    save_checkpoint,
)
from quality_assets.ssl.config import DinoConfig, default_config, precision_autocast, resolve_device
from quality_assets.ssl.embed import embed_images
from quality_assets.ssl.loss import DINOLoss, dino_cross_entropy, koleo_loss, sinkhorn_knopp
from quality_assets.ssl.networks import DINOHead, MultiCropNet, WeightNormLinear, build_networks
from quality_assets.ssl.train import DinoResult, cosine_schedule, resize_images, train_dino

__all__ = [
    "CHECKPOINT_FORMAT",
    "DINOHead",
    "DINOLoss",
    "DinoConfig",
    "DinoResult",
    "MultiCropNet",
    "WeightNormLinear",
    "build_networks",
    "cosine_schedule",
    "default_config",
    "dino_cross_entropy",
    "embed_images",
    "file_sha256",
    "koleo_loss",
    "load_checkpoint",
    "precision_autocast",
    "preprocessing_spec",
    "resize_images",
    "resolve_device",
    "save_checkpoint",
    "sinkhorn_knopp",
    "train_dino",
]
