"""Tiny inline thumbnails for the Dagster UI and the HTML report."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image


def thumbnail_data_uri(data_root: str | Path, path: str, size: int = 48) -> str | None:
    """A base64 PNG data URI of the image at data_root/path, or None if it cannot be read."""
    try:
        with Image.open(Path(data_root) / path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size), Image.Resampling.NEAREST if max(image.size) <= size else Image.Resampling.BILINEAR)
            if max(image.size) < size:
                scale = size // max(image.size)
                image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
