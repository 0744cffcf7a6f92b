"""Safe image decoding and cheap per-image properties for the raw manifest.

`inspect_image` is the one place that opens an image file during ingestion. It enforces size
limits before decoding, turns every way a file can be unusable into an `ImageRejected` with a
short reason code, and returns the content hashes (file, decoded pixels, perceptual) and the
cleanvision-style properties the image-property scores use.

Decoding uses PIL only: torchvision.io is unusable on the CPU torch of this stack (see
STACK_NOTES.md).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from quality_assets.data_roots import RemoteRoot, is_remote, object_of, relative_key

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "INSPECT_KEYS",
    "PROPERTY_MAX_SIDE",
    "REJECT_REASONS",
    "ImageRejected",
    "SampleChanged",
    "VerifiedFiles",
    "hamming_distance",
    "hamming_distances",
    "inspect_image",
    "normalised_rgb",
    "read_verified",
]

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 256 * 2**20
# Properties are computed on a copy no larger than this on its long side, so blur and edge
# figures mean the same thing for a 4000 px photo and a 256 px thumbnail.
PROPERTY_MAX_SIDE = 256

REJECT_REASONS = (
    "empty_file",
    "file_too_large",
    "not_an_image",
    "corrupt",
    "truncated",
    "decompression_bomb",
    "missing_file",
    "not_a_file",
)

# Raster formats only. Formats such as EPS hand the file to an external interpreter
# (Ghostscript) on load, which an ingestion service must never do with untrusted files.
# (JPEG's opener also yields MPO multi-picture files.)
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")

INSPECT_KEYS = (
    "bytes",
    "file_sha256",
    "pixel_sha256",
    "width",
    "height",
    "mode",
    "is_grayscale",
    "brightness_p05",
    "brightness_p50",
    "brightness_p95",
    "entropy",
    "blur_score",
    "edge_strength",
    "aspect_ratio",
    "phash",
    "dhash",
    "hue_histogram",
)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's "L" uses
_EXIF_ORIENTATION = 0x0112
_GRAY_MEAN_TOLERANCE = 1.0  # mean |R-G|, |G-B| in 8-bit units; JPEG chroma noise stays below
_GRAY_MAX_TOLERANCE = 16.0  # ...while a small saturated patch in a grey image exceeds this
# hue_histogram: a pixel counts as coloured from this chroma (max - min of R, G, B, 8-bit) on;
# below it, JPEG chroma noise and anti-aliased grey edges. 12 hue bins of 30 degrees.
HUE_MIN_CHROMA = 24.0
HUE_BINS = 12
# An image with at least this share of coloured pixels has colour (copy flags, the hue search).
COLOURED_MIN = 0.01


class ImageRejected(Exception):
    """A file that cannot become a sample; `reason` is a short code from REJECT_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def _bits_to_int64(bits: np.ndarray) -> int:
    """Row-major bits, first bit most significant (the imagehash convention), as signed int64."""
    packed = np.packbits(bits.ravel().astype(np.uint8))  # big-endian bit order within bytes
    return int.from_bytes(packed.tobytes(), "big", signed=True)


def hamming_distance(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned ints)."""
    return ((int(a) ^ int(b)) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise (broadcasting) Hamming distances between arrays of 64-bit hashes."""
    xor = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    xor = np.ascontiguousarray(xor).view(np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(xor).astype(np.int64)
    as_bytes = xor.reshape(xor.shape + (1,)).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1).astype(np.int64)


def _dct_matrix(size: int, keep: int) -> np.ndarray:
    # Unnormalised DCT-II rows, identical to scipy.fftpack.dct's default, so our phash matches
    # imagehash.phash bit for bit up to resampling differences.
    n = np.arange(size)
    k = np.arange(keep)[:, None]
    return (2.0 * np.cos(np.pi * (2 * n + 1) * k / (2 * size))).astype(np.float64)


_DCT_32x8 = _dct_matrix(32, 8)


def _phash(gray: Image.Image) -> int:
    pixels = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = _DCT_32x8 @ pixels @ _DCT_32x8.T
    return _bits_to_int64(low > np.median(low))


def _dhash(gray: Image.Image) -> int:
    pixels = np.asarray(gray.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.float64)
    return _bits_to_int64(pixels[:, 1:] > pixels[:, :-1])


def size_rejection(size: int, max_bytes: int) -> ImageRejected | None:
    """Why a file of `size` bytes (from stat() or an object listing) cannot be a sample, before it is
    read; None when its size is acceptable."""
    if size == 0:
        return ImageRejected("empty_file", "file has 0 bytes")
    if size > max_bytes:
        return ImageRejected("file_too_large", f"{size} bytes > limit {max_bytes}")
    return None


def _read_limited(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ImageRejected("missing_file", str(exc)) from None
    except OSError as exc:
        raise ImageRejected("not_a_file", f"cannot stat: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageRejected("not_a_file", "not a regular file")
    rejected = size_rejection(st.st_size, max_bytes)
    if rejected is not None:
        raise rejected
    try:
        with open(path, "rb") as handle:
            # One extra byte tells us whether the file grew past the limit after stat().
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageRejected("not_a_file", f"cannot read: {exc}") from None
    return _checked_size(data, max_bytes)


def _checked_size(data: bytes, max_bytes: int) -> bytes:
    """`data` as read with one byte past the limit: rejected when empty or over the limit."""
    if not data:
        raise ImageRejected("empty_file", "file has 0 bytes")
    if len(data) > max_bytes:
        raise ImageRejected("file_too_large", f"more than {max_bytes} bytes")
    return data


def _read_limited_remote(url: str, max_bytes: int) -> bytes:
    """`_read_limited` for an object: one ranged read, one byte past the limit. The scan has already
    rejected objects whose listed size is 0 or over the limit, so none is downloaded only to be
    rejected; one that grew since the listing is cut at the limit and rejected here."""
    bucket_root, key = object_of(url)
    try:
        data = bucket_root.read(key, limit=max_bytes + 1)
    except FileNotFoundError:
        raise ImageRejected("missing_file", f"no such object: {url}") from None
    except Exception as exc:  # noqa: BLE001 - a store error on one object must not end the scan
        raise ImageRejected("not_a_file", f"cannot read: {type(exc).__name__}: {exc}") from None
    return _checked_size(data, max_bytes)


def _decode_error(exc: BaseException) -> ImageRejected:
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return ImageRejected("decompression_bomb", str(exc))
    if isinstance(exc, MemoryError):
        return ImageRejected("decompression_bomb", "ran out of memory while decoding")
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return ImageRejected("truncated", message)
    return ImageRejected("corrupt", message)


_open_formats: tuple[str, ...] | None = None


def _allowed_open_formats() -> tuple[str, ...]:
    # Image.open(formats=...) looks each name up in the plugin registry, which holds only the
    # five most common formats until Image.init() has imported the rest. Names this Pillow
    # build lacks are left out rather than failing every open.
    global _open_formats
    if _open_formats is None:
        Image.init()
        _open_formats = tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)
    return _open_formats


# Formats people bring that no decoder here reads, by their signature: the rejection says what to do.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")


def _unread_format(data: bytes) -> str:
    head = data[:256].lstrip()
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "a HEIF/HEIC or AVIF image (phone cameras write them): not read here, convert it to JPEG or PNG"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024]):
        return "a vector image (SVG): not read here, render it to PNG first"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "a JPEG 2000 image: not read here, convert it to PNG or JPEG"
    return f"not a recognised raster image format (read here: {', '.join(ALLOWED_FORMATS)})"


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open, size-check, fully load and orient. Returns (image, mode as stored)."""
    formats = _allowed_open_formats()
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; a warning must reject too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=formats)
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", _unread_format(data)) from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
            raise _decode_error(exc) from None
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected("corrupt", f"declared size {width}x{height}")
        if width * height > max_pixels:
            # Checked from the header alone, before a single pixel buffer is allocated.
            raise ImageRejected(
                "decompression_bomb", f"{width}x{height} = {width * height} pixels > {max_pixels}"
            )
        try:
            image.load()
        except Exception as exc:  # noqa: BLE001
            raise _decode_error(exc) from None
    if image.format == "PNG" and data.rfind(b"IEND") == -1:
        # PIL stops reading once the pixels are in, so a PNG cut after its image data loads
        # fine; the missing end chunk is the only trace of the truncation.
        raise ImageRejected("truncated", "PNG has no IEND chunk")
    stored_mode = image.mode
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        # A broken EXIF block says nothing about the pixels, which decoded fine; keep them as
        # stored rather than reject a usable image.
        pass
    return image, stored_mode


def _canonical(image: Image.Image) -> Image.Image:
    """8-bit RGB, or RGBA when some pixel is not fully opaque.

    Lossless re-encodes (PNG <-> BMP/TIFF/WebP-lossless, palette <-> truecolour, unused alpha
    channel) all map to the same canonical pixels, which is what pixel_sha256 needs.
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            values = values / 257.0
        elif mode == "F" and values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        elif mode == "I" and values.size and values.max() > 255:
            values = values / 257.0
        gray = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    # A transparency key (tRNS) is only converted to alpha by PIL for these modes.
    keyed = mode in ("P", "L", "RGB") and "transparency" in image.info
    has_alpha = "A" in image.getbands() or keyed
    if not has_alpha:
        return image if mode == "RGB" else image.convert("RGB")
    rgba = image if mode == "RGBA" else image.convert("RGBA")
    alpha_min, _ = rgba.getextrema()[3]
    return rgba.convert("RGB") if alpha_min == 255 else rgba


def normalised_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as every consumer sees the pixels: the statistics, the model and the thumbnails.

    16-bit and 32-bit integer images are scaled to 8 bits, float images in [0, 1] stretched to
    [0, 255] (PIL's own conversions saturate the former to white and clip the latter to black),
    palette, CMYK, 1-bit and LA go through their colour conversion, and transparent pixels are
    composited on black so they never carry arbitrary colours.
    """
    canonical = _canonical(image)
    if canonical.mode == "RGBA":
        background = Image.new("RGBA", canonical.size, (0, 0, 0, 255))
        canonical = Image.alpha_composite(background, canonical)
    return canonical if canonical.mode == "RGB" else canonical.convert("RGB")


def hue_histogram(arr: np.ndarray) -> list[float]:
    """[share of achromatic pixels, then the share of pixels in each of HUE_BINS hue bins]; sums
    to 1. Crops, flips, rotations, blur and re-encoding leave it nearly unchanged; recolouring
    moves it. Copy flags read it (a red and a green arrow are two pictures, not a copy)."""
    rgb = np.asarray(arr, dtype=np.float32).reshape(-1, 3)
    if rgb.shape[0] == 0:
        return [1.0] + [0.0] * HUE_BINS
    high = rgb.max(axis=1)
    chroma = high - rgb.min(axis=1)
    coloured = chroma >= HUE_MIN_CHROMA
    out = np.zeros(HUE_BINS + 1)
    out[0] = 1.0 - coloured.mean()
    if coloured.any():
        r, g, b = rgb[coloured].T
        c, h = chroma[coloured], high[coloured]
        # The hexagonal hue, in sixths of a turn (the HSV formula).
        hue = np.where(h == r, ((g - b) / c) % 6.0, np.where(h == g, (b - r) / c + 2.0, (r - g) / c + 4.0))
        # Bins centred on the primaries: pure red must not straddle the 0/360 degree seam.
        bins = np.floor(hue / 6.0 * HUE_BINS + 0.5).astype(np.int64) % HUE_BINS
        out[1:] = np.bincount(bins, minlength=HUE_BINS) / rgb.shape[0]
    return [round(float(v), 5) for v in out]


def _properties(rgb_small: Image.Image) -> dict[str, Any]:
    arr = np.asarray(rgb_small, dtype=np.float32)  # H, W, 3 in 0..255
    luma = arr @ _LUMA

    hist = np.bincount(np.clip(np.rint(luma), 0, 255).astype(np.int64).ravel(), minlength=256)
    # Percentiles read off the 8-bit histogram: exact to 1/255, and far cheaper than sorting.
    cdf = np.cumsum(hist)
    p05, p50, p95 = np.searchsorted(cdf, np.array([0.05, 0.5, 0.95]) * luma.size) / 255.0
    prob = hist[hist > 0] / luma.size
    entropy = float(-(prob * np.log2(prob)).sum())

    channel_diff = np.maximum(np.abs(arr[..., 0] - arr[..., 1]), np.abs(arr[..., 1] - arr[..., 2]))
    is_gray = bool(
        channel_diff.mean() <= _GRAY_MEAN_TOLERANCE and channel_diff.max() <= _GRAY_MAX_TOLERANCE
    )

    # Laplacian in 8-bit units, so the usual OpenCV-style thresholds (~100) carry over.
    if luma.shape[0] >= 3 and luma.shape[1] >= 3:
        lap = (
            luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
            - 4.0 * luma[1:-1, 1:-1]
        )
        blur = float(lap.var())
    else:
        blur = 0.0

    if luma.shape[0] >= 2 and luma.shape[1] >= 2:
        unit = luma / 255.0
        gx = unit[:-1, 1:] - unit[:-1, :-1]
        gy = unit[1:, :-1] - unit[:-1, :-1]
        edge = float((np.sqrt(gx * gx + gy * gy) / math.sqrt(2.0)).mean())
    else:
        edge = 0.0

    gray_image = Image.fromarray(np.ascontiguousarray(luma, dtype=np.float32))
    return {
        "hue_histogram": hue_histogram(arr),
        "is_grayscale": is_gray,
        "brightness_p05": float(p05),
        "brightness_p50": float(p50),
        "brightness_p95": float(p95),
        "entropy": entropy,
        "blur_score": blur,
        "edge_strength": edge,
        "phash": _phash(gray_image),
        "dhash": _dhash(gray_image),
    }


def inspect_image(
    path: Path | str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Decode one image safely and describe it; raises ImageRejected for unusable files.

    Returns exactly the keys in INSPECT_KEYS. Width/height are after EXIF orientation; `mode`
    is the PIL mode as stored in the file. Hashes cover the full image; the other properties
    are computed on `normalised_rgb` of a copy at most PROPERTY_MAX_SIDE px on its long side.
    `max_pixels` above PIL's own Image.MAX_IMAGE_PIXELS (~89 Mpx) is capped by PIL.
    """
    data = _read_limited_remote(path, max_bytes) if is_remote(path) else _read_limited(Path(path), max_bytes)
    file_sha256 = hashlib.sha256(data).hexdigest()

    try:
        image, stored_mode = _decode(data, max_pixels)
        canonical = _canonical(image)
    except ImageRejected:
        raise
    except MemoryError:
        raise ImageRejected("decompression_bomb", "ran out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a mode PIL cannot convert: unusable file
        raise ImageRejected("corrupt", f"{type(exc).__name__}: {exc}") from None
    width, height = canonical.size

    pixel_hash = hashlib.sha256(f"{canonical.mode}:{width}x{height}:".encode())
    pixel_hash.update(canonical.tobytes())

    rgb = normalised_rgb(canonical)
    long_side = max(width, height)
    if long_side > PROPERTY_MAX_SIDE:
        scale = PROPERTY_MAX_SIDE / long_side
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # reducing_gap lets PIL box-reduce by an integer factor first: one cheap pass over
        # the full image instead of a full-resolution filter.
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)

    result: dict[str, Any] = {
        "bytes": len(data),
        "file_sha256": file_sha256,
        "pixel_sha256": pixel_hash.hexdigest(),
        "width": int(width),
        "height": int(height),
        "mode": stored_mode,
    }
    result.update(_properties(rgb))
    result["aspect_ratio"] = float(width) / float(height)
    return {key: result[key] for key in INSPECT_KEYS}


# --- Reading a sample's bytes after ingest -------------------------------------------------------

CHANGE_REASONS = ("changed_on_read", "missing_on_read", "escapes_root_on_read")


class SampleChanged(Exception):
    """The file at a sample's path is no longer the file that was ingested; `reason` in CHANGE_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def read_verified(data_root: str | os.PathLike[str], path: str, file_sha256: str,
                  size: int | None = None) -> bytes:
    """The bytes of `data_root/path` if they are still the ingested ones, else SampleChanged.

    The path must still resolve inside the data root (a symlink swapped in after ingest must not
    leak an outside file into a model, a thumbnail or a report), and the content must hash to the
    recorded sha256. `size`, the recorded byte count, rejects a grown file before reading it.
    """
    if is_remote(str(data_root)):
        return _read_verified_remote(str(data_root), path, file_sha256, size)
    root_real = os.path.realpath(data_root)
    real = os.path.realpath(os.path.join(root_real, path))
    if not real.startswith(root_real.rstrip(os.sep) + os.sep):
        raise SampleChanged("escapes_root_on_read", f"{path} now resolves outside the data root")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise SampleChanged("missing_on_read", f"{path} no longer exists") from None
    except OSError as exc:
        raise SampleChanged("missing_on_read", f"{path}: cannot stat: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SampleChanged("changed_on_read", f"{path} is no longer a regular file")
    if size is not None and st.st_size != size:
        raise SampleChanged("changed_on_read", f"{path} has {st.st_size} bytes, {size} were ingested")
    try:
        with open(real, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise SampleChanged("missing_on_read", f"{path}: cannot read: {exc}") from None
    if hashlib.sha256(data).hexdigest() != file_sha256:
        raise SampleChanged("changed_on_read", f"{path}: content differs from the ingested file")
    return data


def _read_verified_remote(data_root: str, path: str, file_sha256: str, size: int | None) -> bytes:
    """`read_verified` for an object-store root: the same checks, by one ranged read."""
    if relative_key(path) != path:
        raise SampleChanged("escapes_root_on_read", f"{path} is not a clean path inside the data root")
    root = RemoteRoot(data_root)
    try:
        # One request per object: a ranged read one byte past the recorded size shows a grown
        # object without fetching all of it.
        data = root.read(path, limit=None if size is None else size + 1)
    except FileNotFoundError:
        raise SampleChanged("missing_on_read", f"{path} no longer exists") from None
    except Exception as exc:  # noqa: BLE001 - a store error: the sample cannot be verified now
        raise SampleChanged("missing_on_read", f"{path}: cannot read: {type(exc).__name__}: {exc}") from None
    if size is not None and len(data) != size:
        shown = f"more than {size}" if len(data) > size else str(len(data))
        raise SampleChanged("changed_on_read", f"{path} has {shown} bytes, {size} were ingested")
    if hashlib.sha256(data).hexdigest() != file_sha256:
        raise SampleChanged("changed_on_read", f"{path}: content differs from the ingested file")
    return data


_BLANK_PNG: bytes | None = None


def _blank_png() -> bytes:
    global _BLANK_PNG
    if _BLANK_PNG is None:
        buffer = io.BytesIO()
        Image.new("L", (1, 1), 0).save(buffer, format="PNG")
        _BLANK_PNG = buffer.getvalue()
    return _BLANK_PNG


class VerifiedFiles(Sequence):
    """Manifest samples as decodable files whose bytes are checked on every access.

    Item i is an in-memory file (io.BytesIO) of sample i's verified bytes, ready for PIL. A sample
    that fails `read_verified` yields a black 1x1 stand-in and is recorded in `changed`
    (sample_id -> SampleChanged), shared with every slice, so the caller drops its output and
    reports the sample instead of scoring pixels that are not the ones ingested.
    """

    def __init__(self, sample_ids: Sequence[str], roots: Sequence[str], paths: Sequence[str],
                 hashes: Sequence[str], sizes: Sequence[int] | None = None,
                 changed: dict[str, SampleChanged] | None = None) -> None:
        self.sample_ids, self.roots, self.paths = list(sample_ids), list(roots), list(paths)
        self.hashes = list(hashes)
        self.sizes = list(sizes) if sizes is not None else [None] * len(self.paths)
        self.changed: dict[str, SampleChanged] = {} if changed is None else changed

    @classmethod
    def from_frame(cls, frame, changed: dict[str, SampleChanged] | None = None) -> "VerifiedFiles":
        """From manifest rows with sample_id, data_root, path, file_sha256 (and bytes, if present)."""
        sizes = [int(v) for v in frame["bytes"]] if "bytes" in frame else None
        return cls(frame["sample_id"].tolist(), frame["data_root"].tolist(), frame["path"].tolist(),
                   frame["file_sha256"].tolist(), sizes, changed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return VerifiedFiles(self.sample_ids[index], self.roots[index], self.paths[index],
                                 self.hashes[index], self.sizes[index], self.changed)
        try:
            data = read_verified(self.roots[index], self.paths[index], self.hashes[index], self.sizes[index])
        except SampleChanged as exc:
            self.changed[self.sample_ids[index]] = exc
            data = _blank_png()
        return io.BytesIO(data)


def hue_matrix(column: Sequence[Any]) -> np.ndarray:
    """The manifest's `hue_histogram` column (lists) as [N, bins] floats, NaN rows where a sample has none (stores
    written before the column existed)."""
    present = [isinstance(v, (list, tuple, np.ndarray)) for v in column]
    lengths = {len(v) for v, ok in zip(column, present) if ok}
    width = max(lengths) if lengths else 1
    out = np.full((len(column), width), np.nan)
    for row, (value, ok) in enumerate(zip(column, present)):
        if ok and len(value) == width:
            out[row] = np.asarray(value, dtype=np.float64)
    return out
