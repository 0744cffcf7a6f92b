"""Embedders: one interface over the SSL checkpoint, a local timm checkpoint, user-supplied vectors,
and the ablations (raw pixels, a randomly initialised network) the benchmark compares against.

Every embedder returns float32 [N, dim] with L2-normalised rows, in the order of the paths given.
Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import quality_assets._torchvision_compat  # noqa: F401  (before torch-vision/timm)

import numpy as np

Progress = Callable[[int, int], None]
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


class Embedder(Protocol):
    model_version: str
    dim: int

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 512,
              progress: Progress | None = None) -> np.ndarray: ...


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _embed_in_chunks(paths: Sequence[Path | str], size: int, embed_tensor, progress: Progress | None,
                     chunk: int = 4096) -> np.ndarray:
    """Decode (PIL) and embed in chunks so memory stays bounded for large folders."""
    from quality_assets.ssl.data import load_image_tensor

    parts = []
    total = len(paths)
    for start in range(0, total, chunk):
        images = load_image_tensor([str(p) for p in paths[start:start + chunk]], size)
        parts.append(embed_tensor(images))
        if progress is not None:
            progress(min(start + chunk, total), total)
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


class SSLCheckpointEmbedder:
    """The DINO teacher backbone trained on the dataset itself (`ssl_model`)."""

    def __init__(self, checkpoint_path: Path | str, device: str = "cpu") -> None:
        from quality_assets.ssl.dino import load_checkpoint

        self.checkpoint_path = Path(checkpoint_path)
        if not self.checkpoint_path.is_file():
            raise FileNotFoundError(f"SSL checkpoint {self.checkpoint_path} does not exist")
        self.backbone, self.meta = load_checkpoint(self.checkpoint_path)
        self.model_version = "dino-" + _sha256(self.checkpoint_path)[:12]
        self.dim = int(self.meta["embedding_dim"])
        self.device = device
        spec = self.meta.get("preprocessing") or {}
        self.image_size = int(spec.get("image_size") or self.meta["config"]["global_crop_size"])
        self.mean = tuple(spec.get("mean") or DEFAULT_MEAN)
        self.std = tuple(spec.get("std") or DEFAULT_STD)

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 512,
              progress: Progress | None = None) -> np.ndarray:
        from quality_assets.ssl.dino import embed_images

        def run(images):
            return embed_images(self.backbone, images, mean=self.mean, std=self.std, batch_size=batch_size,
                                device=self.device)

        return _embed_in_chunks(paths, self.image_size, run, progress)


class TimmCheckpointEmbedder:
    """A timm architecture with a local weights file (e.g. an ImageNet baseline); never downloads."""

    def __init__(self, arch: str, weights_file: Path | str, image_size: int = 224, device: str = "cpu") -> None:
        import timm

        self.weights_file = Path(weights_file)
        if not self.weights_file.is_file():
            raise FileNotFoundError(f"weights file {self.weights_file} does not exist")
        if not arch:
            raise ValueError("TimmCheckpointEmbedder needs the timm architecture name (arch)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model = timm.create_model(arch, pretrained=True, num_classes=0,
                                       pretrained_cfg_overlay={"file": str(self.weights_file)}).eval()
        self.image_size = int(image_size)
        self.model_version = "timm-" + _sha256(self.weights_file)[:12]
        cfg = getattr(self.model, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", DEFAULT_MEAN))
        self.std = tuple(cfg.get("std", DEFAULT_STD))
        self.dim = int(self.model.num_features)
        self.device = device

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 64,
              progress: Progress | None = None) -> np.ndarray:
        from quality_assets.ssl.dino import embed_images

        def run(images):
            return embed_images(self.model, images, mean=self.mean, std=self.std, batch_size=batch_size,
                                device=self.device)

        return _embed_in_chunks(paths, self.image_size, run, progress)


class PrecomputedEmbedder:
    """User-supplied vectors keyed by path: Parquet (`path`, `embedding`) or .npy + `<file>.paths.txt`."""

    def __init__(self, file: Path | str) -> None:
        self.file = Path(file)
        if not self.file.is_file():
            raise FileNotFoundError(f"embeddings file {self.file} does not exist")
        if self.file.suffix == ".npy":
            sidecar = Path(str(self.file) + ".paths.txt")
            if not sidecar.is_file():
                raise FileNotFoundError(f"{self.file} needs a sidecar {sidecar} with one path per line")
            matrix = np.load(self.file)
            keys = [line.strip() for line in sidecar.read_text().splitlines() if line.strip()]
        elif self.file.suffix in (".parquet", ".pq"):
            import pandas as pd

            frame = pd.read_parquet(self.file)
            missing = {"path", "embedding"} - set(frame.columns)
            if missing:
                raise ValueError(f"{self.file} lacks column(s) {sorted(missing)}; expected path and embedding")
            keys = frame["path"].astype(str).tolist()
            matrix = np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
        else:
            raise ValueError(f"unsupported embeddings file {self.file}: use .parquet or .npy")
        if matrix.ndim != 2 or len(keys) != matrix.shape[0]:
            raise ValueError(f"{self.file}: {len(keys)} paths for a matrix of shape {matrix.shape}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.file}: duplicate paths")
        if not np.isfinite(matrix).all():
            raise ValueError(f"{self.file}: non-finite values")
        self.index = {Path(k).as_posix(): i for i, k in enumerate(keys)}
        self.vectors = _normalise_rows(matrix)
        self.dim = int(matrix.shape[1])
        self.model_version = "pre-" + _sha256(self.file)[:12]

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 0,
              progress: Progress | None = None) -> np.ndarray:
        keys = [Path(p).as_posix() for p in paths]
        missing = [k for k in keys if k not in self.index]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise KeyError(f"{self.file} has no vector for {shown}")
        rows = self.vectors[[self.index[k] for k in keys]]
        if progress is not None:
            progress(len(keys), len(keys))
        return rows


class RawPixelEmbedder:
    """Ablation: the image's own pixels (grayscale, resized, mean-centred)."""

    def __init__(self, image_size: int = 28) -> None:
        self.image_size = int(image_size)
        self.dim = self.image_size * self.image_size
        self.model_version = f"raw-pixels-{self.image_size}"

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 0,
              progress: Progress | None = None) -> np.ndarray:
        def run(images):
            gray = images.float().mean(dim=1).reshape(images.shape[0], -1).numpy()
            gray -= gray.mean(axis=1, keepdims=True)
            return _normalise_rows(gray)

        return _embed_in_chunks(paths, self.image_size, run, progress)


class RandomInitEmbedder:
    """Ablation: the SSL architecture with random weights (what training adds)."""

    def __init__(self, arch: str, image_size: int, seed: int = 0, arch_kwargs: dict | None = None) -> None:
        import torch

        from quality_assets.ssl.backbones import create_backbone, embedding_dim

        torch.manual_seed(seed)
        self.backbone = create_backbone(arch, image_size, arch_kwargs or {}).eval()
        self.image_size = int(image_size)
        self.dim = int(embedding_dim(self.backbone))
        self.model_version = f"random-{arch}-{image_size}-{seed}"

    def embed(self, paths: Sequence[Path | str], *, batch_size: int = 512,
              progress: Progress | None = None) -> np.ndarray:
        from quality_assets.ssl.dino import embed_images

        return _embed_in_chunks(paths, self.image_size,
                                lambda images: embed_images(self.backbone, images, batch_size=batch_size), progress)


def make_embedder(kind: str, **options) -> Embedder:
    """Build an embedder by name: ssl, timm_checkpoint, precomputed, raw_pixels, random_init."""
    factories = {
        "ssl": lambda: SSLCheckpointEmbedder(options["checkpoint_path"]),
        "dino": lambda: SSLCheckpointEmbedder(options["checkpoint_path"]),
        "timm_checkpoint": lambda: TimmCheckpointEmbedder(options["arch"], options["weights_file"],
                                                          options.get("image_size", 224)),
        "precomputed": lambda: PrecomputedEmbedder(options["file"]),
        "raw_pixels": lambda: RawPixelEmbedder(options.get("image_size", 28)),
        "random_init": lambda: RandomInitEmbedder(options["arch"], options["image_size"], options.get("seed", 0)),
    }
    if kind not in factories:
        raise ValueError(f"unknown embedder {kind!r}; choose from {sorted(factories)}")
    return factories[kind]()
