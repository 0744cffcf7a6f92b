"""Decode images once into a uint8 tensor cache for training and embedding.

Training re-reads every image many times (epochs x crops); decoding with PIL each time would cost more
than the model on small images and would starve a GPU. So every image is decoded exactly once into a
`uint8 [N, C, S, S]` tensor, and all augmentation happens on that tensor (see `augment.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

from quality_assets.imaging import normalised_rgb

# Mean/std used for every backbone here. The models are trained from scratch, so the exact values
# matter little; ImageNet's keep inputs in the range timm's default initialisations expect.
DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _decode(path: str | Path | BinaryIO, size: int, channels: int) -> np.ndarray:
    """One image as uint8 [C, size, size]; `path` may also be an open binary file (verified bytes)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        # The same normalisation as the ingest statistics: 16-bit, float, palette, CMYK, 1-bit and
        # alpha images reach the model as the pixels the manifest describes.
        im = normalised_rgb(im)
        if channels == 1:
            im = im.convert("L")
        if im.size != (size, size):
            # Plain squash to a square: the datasets audited here are square or nearly so, and a crop
            # would hide content that may be what makes an image off-topic.
            im = im.resize((size, size), Image.BILINEAR, reducing_gap=None)
        arr = np.asarray(im, dtype=np.uint8)
    if channels == 1:
        return arr[None]
    return arr.transpose(2, 0, 1)


def load_image_tensor(
    paths: Sequence[str | Path],
    size: int,
    channels: int = 3,
    progress: Callable[[int, int], None] | None = None,
    num_workers: int = 2,
) -> torch.Tensor:
    """Decode `paths` into `uint8 [N, channels, size, size]` (grayscale replicated to 3 channels).

    `progress(done, total)` is called after each chunk. Decoding runs in a small thread pool: PIL
    releases the GIL while decoding and resizing.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    n = len(paths)
    out = torch.empty((n, channels, size, size), dtype=torch.uint8)
    if n == 0:
        return out
    buf = out.numpy()
    chunk = 256

    def work(start: int) -> int:
        stop = min(start + chunk, n)
        for i in range(start, stop):
            buf[i] = _decode(paths[i], size, channels)
        return stop - start

    done = 0
    if num_workers <= 1:
        for start in range(0, n, chunk):
            done += work(start)
            if progress is not None:
                progress(done, n)
    else:
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            for count in pool.map(work, range(0, n, chunk)):
                done += count
                if progress is not None:
                    progress(done, n)
    return out


def array_to_tensor(images: np.ndarray, size: int | None = None) -> torch.Tensor:
    """Turn a uint8 array `[N, H, W]` (grayscale) or `[N, H, W, 3]` into `uint8 [N, 3, S, S]`."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[:, None], 3, axis=1)
    elif arr.ndim == 4 and arr.shape[-1] == 3:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected [N,H,W] or [N,H,W,3], got {arr.shape}")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if size is not None and (t.shape[-1] != size or t.shape[-2] != size):
        t = torch.nn.functional.interpolate(t.float(), size=(size, size), mode="bilinear", antialias=True)
        t = t.round().clamp(0, 255).to(torch.uint8)
    return t


def is_grayscale(images: torch.Tensor, sample: int = 512) -> bool:
    """True when (a sample of) the cached images has identical channels, i.e. the data is grayscale."""
    if images.shape[1] == 1:
        return True
    idx = torch.linspace(0, images.shape[0] - 1, steps=min(sample, images.shape[0])).long()
    x = images[idx]
    return bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]))
