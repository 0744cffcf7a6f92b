"""Embedders: turn image files into L2-normalised float32 vectors, one row per path.

Every embedder has a `model_version` (stored with each vector, so a new model never mixes with old
vectors) and a `dim`. Implementations:

- `SSLCheckpointEmbedder`: the teacher backbone of a DINO checkpoint trained on the data itself
  (`quality_assets.ssl.dino.save_checkpoint`); version "dino-" + 12 hex of the checkpoint's sha256.
- `TimmCheckpointEmbedder`: any timm architecture with weights from a local file (never a download).
- `PrecomputedEmbedder`: vectors the user computed elsewhere (Parquet or .npy + paths sidecar).

The ablation embedders of the benchmarks (raw pixels, the same network untrained) live in the lab,
`quality_lab.ablation_embedders`.

`make_embedder(kind, **options)` builds one by name.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import quality_assets.ssl  # noqa: F401  (torchvision/compat-shim order before torch users)
import torch
import torch.nn as nn

from quality_assets.ssl.backbones import embedding_dim
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, load_image_tensor
from quality_assets.ssl.dino import embed_images, file_sha256, load_checkpoint

ProgressFn = Callable[[int, int], None]

# Images decoded per chunk: bounds memory (a chunk of 224 px images is ~600 MB of uint8) while keeping
# batches large.
_DECODE_CHUNK = 4096
# What Path(...).as_posix() would change in a posix path: "//", a "." component, a trailing "/".
_NEEDS_NORMALISING = re.compile(r"//|(?:^|/)\.(?:/|$)|/$")


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder(ABC):
    """Maps image paths to float32 `[N, dim]` vectors with L2-normalised rows."""

    model_version: str
    dim: int

    @abstractmethod
    def embed(
        self, paths: Sequence[Path], *, batch_size: int = 512, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Embed `paths` in order. `progress(done, total)` is called as batches finish."""


class _BackboneEmbedder(Embedder):
    """Shared path: decode in chunks at a fixed size, run a backbone under inference_mode, normalise."""

    def __init__(
        self, model: nn.Module, image_size: int, mean: Sequence[float], std: Sequence[float],
        device: str = "cpu", threads: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.image_size = int(image_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.device = device
        self.threads = threads

    def _prepare(self, images: torch.Tensor) -> None:
        """Hook run on the first decoded chunk (the lab's random-init ablation calibrates BatchNorm there)."""

    def embed(
        self, paths: Sequence[Path], *, batch_size: int = 512, progress: ProgressFn | None = None
    ) -> np.ndarray:
        total = len(paths)
        out = np.empty((total, self.dim), dtype=np.float32)
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for start in range(0, total, _DECODE_CHUNK):
                chunk = paths[start:start + _DECODE_CHUNK]
                images = load_image_tensor(chunk, self.image_size)
                if start == 0:
                    self._prepare(images)

                def chunk_progress(done: int, _n: int, offset: int = start) -> None:
                    if progress is not None:
                        progress(offset + done, total)

                out[start:start + len(chunk)] = embed_images(
                    self.model, images, mean=self.mean, std=self.std, batch_size=batch_size,
                    device=self.device, progress=chunk_progress,
                )
        finally:
            torch.set_num_threads(old_threads)
        return out


class SSLCheckpointEmbedder(_BackboneEmbedder):
    """The DINO teacher backbone from `save_checkpoint`, preprocessing as recorded in the checkpoint."""

    def __init__(self, checkpoint_path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        backbone, meta = load_checkpoint(checkpoint_path)
        pre = meta["preprocessing"]
        super().__init__(backbone, pre["image_size"], pre["mean"], pre["std"], device, threads)
        self.checkpoint_path = Path(checkpoint_path)
        self.sha256 = file_sha256(checkpoint_path)
        self.meta = meta
        self.dim = int(meta["embedding_dim"])
        self.model_version = "dino-" + self.sha256[:12]


class TimmCheckpointEmbedder(_BackboneEmbedder):
    """A timm architecture with weights from a local file. Offline by construction: HF_HUB_OFFLINE=1 and
    the file is passed as `pretrained_cfg_overlay=dict(file=...)`, so timm never looks at the network."""

    def __init__(
        self, arch: str, weights_file: str | Path, image_size: int, device: str = "cpu",
        threads: int | None = None, **model_kwargs: Any,
    ) -> None:
        import timm

        weights_file = Path(weights_file)
        if not weights_file.is_file():
            raise FileNotFoundError(f"timm weights file not found: {weights_file}")
        os.environ["HF_HUB_OFFLINE"] = "1"
        model = timm.create_model(
            arch, pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(weights_file)),
            **model_kwargs,
        )
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        mean = cfg.get("mean", DEFAULT_MEAN)
        std = cfg.get("std", DEFAULT_STD)
        super().__init__(model, image_size, mean, std, device, threads)
        self.sha256 = file_sha256(weights_file)
        self.dim = embedding_dim(model)
        self.model_version = "timm-" + self.sha256[:12]


class PrecomputedEmbedder(Embedder):
    """User-supplied vectors, looked up by path relative to the data root.

    `file` is either Parquet with a `path` column and an `embedding` column (list/array per row), or a
    `.npy` matrix `[N, d]` with a sidecar `<file>.paths.txt` holding one path per line. Paths passed to
    `embed` may be absolute (made relative to `data_root`) or already relative; both sides are compared
    in posix form. Any path without a vector raises a KeyError that names them.
    """

    def __init__(self, file: str | Path, data_root: str | Path | None = None) -> None:
        self.file = Path(file)
        if not self.file.is_file():
            raise FileNotFoundError(f"embeddings file {self.file} does not exist")
        self.data_root = Path(data_root).resolve() if data_root is not None else None
        keys, vectors = self._read(self.file)
        if vectors.ndim != 2 or len(keys) != vectors.shape[0]:
            raise ValueError(f"{self.file}: {len(keys)} paths but vectors of shape {vectors.shape}")
        self._index = {k: i for i, k in enumerate(keys)}
        if len(self._index) != len(keys):
            raise ValueError(f"{self.file}: duplicate paths")
        if not np.isfinite(vectors).all():
            raise ValueError(f"{self.file}: non-finite values in the embeddings")
        self._vectors = _l2_normalise(vectors)
        self.dim = int(vectors.shape[1])
        self.model_version = "pre-" + file_sha256(self.file)[:12]

    @staticmethod
    def _norm_key(p: str | Path) -> str:
        s = str(p)
        # A plain relative posix path is its own key; only the others go through Path (17 us a
        # path: 1.8 s of every run that reads a 100k-path sidecar).
        if s and not _NEEDS_NORMALISING.search(s):
            return s
        s = Path(s).as_posix()
        return s[2:] if s.startswith("./") else s

    def _read(self, file: Path) -> tuple[list[str], np.ndarray]:
        if file.suffix == ".npy":
            sidecar = file.with_name(file.name + ".paths.txt")
            if not sidecar.is_file():
                raise FileNotFoundError(f"{file}: sidecar {sidecar.name} (one path per line) is missing")
            keys = [self._norm_key(line) for line in sidecar.read_text().splitlines() if line.strip()]
            return keys, np.load(file).astype(np.float32)
        if file.suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = set(pq.read_schema(file).names)
            if not {"path", "embedding"} <= names:
                raise ValueError(f"{file}: needs columns 'path' and 'embedding', has {sorted(names)}")
            table = pq.read_table(file, columns=["path", "embedding"])
            keys = [self._norm_key(p) for p in table.column("path").to_pylist()]
            vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
            return keys, vectors
        raise ValueError(f"{file}: expected .parquet or .npy (with .paths.txt sidecar)")

    def _key(self, p: str | Path) -> str:
        path = Path(p)
        if path.is_absolute() and self.data_root is not None:
            try:
                path = path.resolve().relative_to(self.data_root)
            except ValueError:
                pass
        return self._norm_key(path)

    def embed(
        self, paths: Sequence[Path], *, batch_size: int = 512, progress: ProgressFn | None = None
    ) -> np.ndarray:
        keys = [self._key(p) for p in paths]
        missing = [k for k in keys if k not in self._index]
        if missing:
            shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
            raise KeyError(f"{self.file}: no precomputed embedding for {len(missing)} path(s): {shown}")
        out = self._vectors[[self._index[k] for k in keys]]
        if progress is not None:
            progress(len(keys), len(keys))
        return out


def make_embedder(kind: str, **options: Any) -> Embedder:
    """Build an embedder by name.

    kinds (aliases after the slash): "ssl"/"dino" (checkpoint_path), "timm"/"timm_checkpoint" (arch,
    weights_file, image_size, ...), "precomputed" (file, data_root).
    """
    kinds: dict[str, Callable[..., Embedder]] = {
        "ssl": SSLCheckpointEmbedder, "dino": SSLCheckpointEmbedder,
        "timm": TimmCheckpointEmbedder, "timm_checkpoint": TimmCheckpointEmbedder,
        "precomputed": PrecomputedEmbedder,
    }
    if kind not in kinds:
        raise ValueError(f"unknown embedder kind {kind!r}; choose one of {sorted(kinds)}")
    return kinds[kind](**options)
