"""Small thumbnails for the Dagster UI, the HTML report and the review app.

Colour images stay in colour (RGB PNG); grayscale images stay single-channel, which keeps their
PNGs a third of the size. Small images are scaled up by whole pixels (nearest neighbour) so a
28 px digit stays crisp instead of blurring.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from PIL import Image

from quality_assets.data_roots import RemoteRoot, is_remote, relative_key
from quality_assets.imaging import SampleChanged, normalised_rgb, read_verified

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def _inside(data_root: str | Path, path: str) -> Path | None:
    """The file's real path if it resolves inside the data root (no symlink escapes), else None."""
    root = Path(os.path.realpath(data_root))
    real = Path(os.path.realpath(Path(data_root) / path))
    return real if real == root or root in real.parents else None


def thumbnail_png(data_root: str | Path, path: str, size: int = 48, file_sha256: str | None = None) -> bytes | None:
    """PNG bytes of the image at data_root/path fitted into size x size, or None if unreadable,
    outside the data root, or (with `file_sha256`) no longer the ingested bytes."""
    remote = is_remote(str(data_root))
    real = None if remote else _inside(data_root, path)
    if real is None and (not remote or relative_key(path) != path):
        return None
    try:
        if file_sha256:
            opened = Image.open(io.BytesIO(read_verified(data_root, path, file_sha256)))
        elif remote:
            opened = Image.open(io.BytesIO(RemoteRoot(str(data_root)).read(path)))
        else:
            opened = Image.open(real)
        with opened as source:
            source.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            gray = source.mode in _GRAY_MODES
            # The same pixel normalisation as the statistics and the model (16-bit, float, palette...).
            image = normalised_rgb(source)
            image = image.convert("L") if gray else image
            smaller = max(image.size) <= size
            image.thumbnail((size, size), Image.Resampling.NEAREST if smaller else Image.Resampling.BILINEAR)
            if max(image.size) < size:
                scale = size // max(image.size)
                image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError, SampleChanged):
        return None
    return buffer.getvalue()


def thumbnail_data_uri(data_root: str | Path, path: str, size: int = 48) -> str | None:
    """A base64 PNG data URI of the image at data_root/path, or None if it cannot be read."""
    png = thumbnail_png(data_root, path, size)
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")
