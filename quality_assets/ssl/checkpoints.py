"""The trained artefact on disk: the teacher backbone plus what is needed to rebuild and use it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from quality_assets.ssl.backbones import create_backbone, embedding_dim
from quality_assets.ssl.config import DinoConfig
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD
from quality_assets.ssl.policy import SSL_CODE_VERSION

if TYPE_CHECKING:  # only annotated: loading a checkpoint needs none of the training code
    from quality_assets.ssl.train import DinoResult

CHECKPOINT_FORMAT = "quality-assets-dino/1"


def preprocessing_spec(config: DinoConfig) -> dict[str, Any]:
    """How to turn an image file into the backbone's input at embedding time."""
    # Embed the whole image at the global crop size: a global crop at scale 1.0, which the backbone saw.
    return {
        "image_size": config.global_crop_size, "channels": 3, "resize": "bilinear", "grayscale_to_rgb": True,
        "mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD),
    }


def save_checkpoint(result: DinoResult, path: str | Path) -> str:
    """Write the teacher backbone + metadata to `path`; return the file's sha256 (hex)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": cfg.arch,
        "arch_kwargs": dict(cfg.arch_kwargs),
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "code_version": SSL_CODE_VERSION,
        "embedding_dim": embedding_dim(result.backbone),
        "preprocessing": preprocessing_spec(cfg),
        "n_samples_trained": result.n_samples_trained,
        "epochs_completed": result.epochs_completed,
        "final_loss": result.final_loss,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in result.backbone.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint under the real name
    return file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the backbone from a checkpoint; returns `(backbone in eval mode, metadata without weights)`."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (format={payload.get('format')!r})")
    cfg = DinoConfig.from_dict(payload["config"])
    kwargs = dict(payload.get("arch_kwargs") or {})
    backbone = create_backbone(payload["arch"], cfg.global_crop_size, kwargs)
    backbone.load_state_dict(payload["state_dict"])
    backbone.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return backbone, meta
