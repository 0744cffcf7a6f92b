"""Helpers that write real image trees and real bad files into a folder, for tests.

Everything here produces actual files on disk (tiny PNGs with distinct content, CSV manifests,
and files that are broken in the specific ways the ingestion must survive), so tests exercise
the real decoders instead of mocks. Content is deterministic in the seed.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from quality_assets.scan import DROP_MARKER


DEFAULT_CLASSES: Mapping[str, Mapping[str, int]] = {
    "train": {"cat": 3, "dog": 3},
    "val": {"cat": 1, "dog": 1},
    "test": {"cat": 1, "dog": 1},
}


def distinct_image(seed: int, size: tuple[int, int] = (28, 28), *, gray: bool = False) -> np.ndarray:
    """A smooth random pattern, unrelated to other seeds (so hashes differ) but not pure noise.

    Smoothness matters: perceptual hashes of white noise are unstable under blur, which would
    make near-duplicate tests flaky. Returns uint8 HxWx3 (or HxW when gray).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    channels = 1 if gray else 3
    coarse = rng.integers(0, 256, size=(4, 4, channels), dtype=np.uint8)
    planes = [
        np.asarray(
            Image.fromarray(coarse[..., c]).resize((width, height), Image.Resampling.BICUBIC),
            dtype=np.uint8,
        )
        for c in range(channels)
    ]
    return planes[0] if gray else np.stack(planes, axis=-1)


def write_image(path: Path, pixels: np.ndarray, fmt: str | None = None, **save_args: object) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **save_args)
    return path


def write_png(path: Path, seed: int, size: tuple[int, int] = (28, 28), *, gray: bool = False) -> Path:
    return write_image(path, distinct_image(seed, size, gray=gray), "PNG")


def make_imagefolder(
    root: Path,
    classes: Mapping[str, Mapping[str, int]] = DEFAULT_CLASSES,
    *,
    size: tuple[int, int] = (28, 28),
    seed: int = 0,
    marker: bool = False,
) -> list[str]:
    """Write `root/<split>/<label>/<label>_<i>.png`; returns the posix paths relative to root."""
    root = Path(root)
    written: list[str] = []
    counter = seed * 100_000
    for split, labels in classes.items():
        for label, count in labels.items():
            for index in range(count):
                rel = f"{split}/{label}/{label}_{index:03d}.png"
                write_png(root / rel, counter, size)
                counter += 1
                written.append(rel)
    if marker:
        mark_complete(root)
    return sorted(written)


def write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[object]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(header))
        for row in rows:
            writer.writerow(list(row))
    return path


def make_csv_drop(
    root: Path,
    rows: Iterable[tuple[str, str, str]] | None = None,
    *,
    multi_label: bool = False,
    manifest_name: str = "manifest.csv",
    seed: int = 0,
    write_images: bool = True,
) -> list[tuple[str, str, str]]:
    """A CSV drop: images under `root/images/` and a manifest of (path, label(s), split).

    `rows` are (path relative to root, label or `a|b` labels, split); the default is six
    labelled rows over three splits. Images are written for every row unless write_images is
    False (so tests can list missing files). Returns the rows written to the CSV.
    """
    root = Path(root)
    if rows is None:
        rows = [
            ("images/a0.png", "cat|dog" if multi_label else "cat", "train"),
            ("images/a1.png", "dog", "train"),
            ("images/a2.png", "cat", "train"),
            ("images/b0.png", "dog", "val"),
            ("images/b1.png", "cat", "test"),
            ("images/b2.png", "dog", "test"),
        ]
    rows = list(rows)
    if write_images:
        for index, (rel, _labels, _split) in enumerate(rows):
            target = root / rel
            if not target.exists():
                write_png(target, seed * 100_000 + 50_000 + index)
    header = ["path", "labels" if multi_label else "label", "split"]
    write_csv(root / manifest_name, header, rows)
    return rows


def mark_complete(drop_dir: Path) -> Path:
    marker = Path(drop_dir) / DROP_MARKER
    marker.write_text("")
    return marker


# --- bad files -----------------------------------------------------------------------------


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_corrupt_png(path: Path, seed: int = 1) -> Path:
    """A PNG with a valid header but scrambled compressed pixel data."""
    data = bytearray(_png_bytes(distinct_image(seed, (32, 32))))
    idat = data.find(b"IDAT")
    for offset in range(idat + 4, min(idat + 40, len(data) - 12)):
        data[offset] ^= 0x5A
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_truncated(path: Path, fmt: str = "PNG", seed: int = 2, keep: float = 0.5) -> Path:
    """A real PNG/JPEG cut to `keep` of its bytes (header intact, pixel data incomplete)."""
    buffer = io.BytesIO()
    Image.fromarray(distinct_image(seed, (64, 64))).save(buffer, format=fmt)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: max(64, int(len(data) * keep))])
    return path


def write_zero_byte(path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_text_as_image(path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an image, whatever its name says\n")
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png_bomb(path: Path, width: int = 60_000, height: int = 60_000) -> Path:
    """A ~100-byte PNG whose header declares width x height pixels (3.6 Gpx by default).

    The IDAT holds one compressed row of zeros, so a decoder that trusts the header and
    allocates first is the one that fails; a safe one rejects from the header alone.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\0" * (width + 1), 9)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_escaping_symlink(link: Path, outside_dir: Path, seed: int = 3) -> Path:
    """A symlink at `link` to a real PNG written in `outside_dir`; returns the target."""
    target = write_png(Path(outside_dir) / f"outside_{seed}.png", seed)
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return target


def blurred_copy(path: Path, target: Path, radius: float = 0.6) -> Path:
    """The image at `path`, slightly Gaussian-blurred, saved as PNG at `target`."""
    with Image.open(path) as image:
        blurred = image.filter(ImageFilter.GaussianBlur(radius))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    blurred.save(target, format="PNG")
    return target


def make_messy_imagefolder(root: Path, outside_dir: Path) -> dict[str, str]:
    """A good ImageFolder tree plus one file per way to be bad.

    Returns {path relative to root: expected rejection reason} for the bad files; the good
    files are those of make_imagefolder(root). `outside_dir` must lie outside `root` (it holds
    the symlink target).
    """
    root = Path(root)
    make_imagefolder(root)
    expected = {
        "train/cat/corrupt.png": "corrupt",
        "train/cat/truncated.png": "truncated",
        "train/dog/truncated.jpg": "truncated",
        "train/dog/empty.png": "empty_file",
        "train/dog/notes.png": "not_an_image",
        "train/cat/bomb.png": "decompression_bomb",
        "train/cat/escape.png": "path_escapes_root",
        "train/stray.png": "unexpected_location",
        "stray_at_root.png": "unexpected_location",
        "holdout/cat/x.png": "unknown_split",
        "train/cat/.DS_Store": "hidden_file",
    }
    write_corrupt_png(root / "train/cat/corrupt.png")
    write_truncated(root / "train/cat/truncated.png", "PNG")
    write_truncated(root / "train/dog/truncated.jpg", "JPEG")
    write_zero_byte(root / "train/dog/empty.png")
    write_text_as_image(root / "train/dog/notes.png")
    write_png_bomb(root / "train/cat/bomb.png")
    write_escaping_symlink(root / "train/cat/escape.png", outside_dir)
    write_png(root / "train/stray.png", 9001)
    write_png(root / "stray_at_root.png", 9002)
    write_png(root / "holdout/cat/x.png", 9003)
    # A hidden file is recorded like any other skipped file; the completion marker is not a file
    # of the data.
    (root / "train/cat/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    mark_complete(root)
    return expected


def coloured_images(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[3 n, 32, 32, 3] noisy images whose class is the colour of a square at a random place
    (red / green / blue), codes 0..2."""
    rng = np.random.default_rng(seed)
    n = 3 * n_per_class
    codes = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(40, 120, size=(n, 32, 32, 3)).astype(np.int16)
    for i, c in enumerate(codes):
        y, x = rng.integers(0, 16, size=2)
        images[i, y:y + 16, x:x + 16, c] += 120
    return np.clip(images, 0, 255).astype(np.uint8), codes
