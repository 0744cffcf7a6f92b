"""Small thumbnails for the Dagster UI, the HTML report and the review app.

Colour images stay in colour (RGB PNG); grayscale images stay single-channel, which keeps their
PNGs a third of the size. Small images are scaled up by whole pixels (nearest neighbour) so a
28 px digit stays crisp instead of blurring.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def thumbnail_png(data_root: str | Path, path: str, size: int = 48) -> bytes | None:
    """PNG bytes of the image at data_root/path fitted into size x size, or None if unreadable."""
    try:
        with Image.open(Path(data_root) / path) as source:
            source.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            gray = source.mode in _GRAY_MODES
            if source.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                image = source.point(lambda v: v * (255.0 / 65535.0)).convert("L")
            else:
                image = source.convert("L" if gray else "RGB")
            smaller = max(image.size) <= size
            image.thumbnail((size, size), Image.Resampling.NEAREST if smaller else Image.Resampling.BILINEAR)
            if max(image.size) < size:
                scale = size // max(image.size)
                image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return buffer.getvalue()


def thumbnail_data_uri(data_root: str | Path, path: str, size: int = 48) -> str | None:
    """A base64 PNG data URI of the image at data_root/path, or None if it cannot be read."""
    png = thumbnail_png(data_root, path, size)
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")
