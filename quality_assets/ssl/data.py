"""Decode images once into a uint8 image cache for training and embedding.

Training re-reads every image many times (epochs x crops); decoding with PIL each time would cost more
than the model on small images and would starve a GPU. So every image is decoded exactly once into a
`uint8 [N, C, S, S]` array, and all augmentation happens on that (see `augment.py`).

Where that array lives depends on its size (`decode_images`):
- up to the decode RAM budget (`decode_ram_budget`): an in-RAM torch tensor (`TensorImages`), the
  fast path for small sets;
- above it: a uint8 `.npy` file, memory-mapped read-only (`MemmapImages`). Batches are copied out of
  it as they are needed, so the resident set is bounded by the OS page cache, not by N.
Both answer `len()` and `take(indices) -> uint8 tensor`, which is all training and embedding use.

Lifetime of the memory-mapped file: with a `cache_dir` (the representation stage uses
`<home>/artifacts/decode_cache/`) it is named by a content key (paths and their identity, size,
channels, decoder version) and reused by the next decode of the same images, e.g. a rerun after a
crash or a retrain with another recipe at the same image size; writing a new one removes the others
there, so that folder holds one cache plus any being written, and deleting it is always safe. Without
a `cache_dir` the file goes to the temp folder (`TMPDIR`: put it on a disk, not a tmpfs) and is
unlinked as soon as it is mapped, so it disappears with the last reference or the process.

Images are local paths, open binary files, or fsspec URLs (`memory://`, `file://`; `s3://` and others
once their fsspec backend, e.g. s3fs, is installed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import numpy as np
import PIL
import torch
from PIL import Image, ImageOps

from quality_assets.data_roots import is_remote
from quality_assets.imaging import VerifiedFiles, normalised_rgb

# Mean/std used for every backbone here. The models are trained from scratch, so the exact values
# matter little; ImageNet's keep inputs in the range timm's default initialisations expect.
DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

DECODE_RAM_ENV = "QUALITY_DECODE_RAM_BYTES"
# Images decoded at once when they are read from an object store (`reads_objects`).
OBJECT_READ_THREADS = 16
# Without a known RAM size (no sysconf, e.g. Windows) assume a small laptop's share.
_FALLBACK_BUDGET = 4 << 30
# Part of the decoder's identity in the cache key: bump when `_decode` changes the pixels it returns,
# so an old cache file is never taken for the new decoder's output. 2: large JPEGs decode drafted.
_DECODER_VERSION = 2
# A JPEG is decoded at a reduced scale only while that leaves this many times the largest view
# (`decode_views`).
DRAFT_MARGIN = 8

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|TiB)?$")
_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def reads_objects(paths: Sequence[Any]) -> bool:
    """Whether `paths` are read from an object store (fsspec URLs, or verified files under one)."""
    if len(paths) == 0:
        return False
    first = paths.roots[0] if isinstance(paths, VerifiedFiles) else paths[0]
    return is_remote(first)


def is_url(path: object) -> bool:
    """True for a string with a scheme (`s3://...`, `memory://...`, `file://...`): read through fsspec."""
    return isinstance(path, str) and _URL.match(path) is not None


def _decode(path: str | Path | BinaryIO, size: int, channels: int) -> np.ndarray:
    """One image as uint8 [C, size, size]; `path` may also be an fsspec URL or an open binary file
    (verified bytes)."""
    return decode_views(path, [(size, channels, Image.BILINEAR)])[0]


def decode_views(path: str | Path | BinaryIO, views: Sequence[tuple[int, int, int]]) -> list[np.ndarray]:
    """One image decoded once and resized to each (size, channels, PIL resample) view, as uint8
    [C, size, size] each."""
    if is_url(path):
        with fsspec.open(path, "rb") as remote:
            # One read per object: PIL's many small reads and seeks would each be a request on an
            # object store.
            path = io.BytesIO(remote.read())
    out = []
    with Image.open(path) as im:
        # A large JPEG decodes at 1/2, 1/4 or 1/8 scale inside its DCT (PIL's draft), still at least
        # DRAFT_MARGIN times the largest view on both sides: a phone photo (4032 x 3024) to 64 px in
        # 15-21 ms instead of 127-149 (`benchmarks/bench_decode.py`). Closer to the view, the scaled
        # decode's own error showed in the colour grids that near-exact copies are judged on (a JPEG
        # copy of a 300 px picture drafted to twice the grid: 0.09 of the 0.15 limit, against 0.02
        # decoded whole); at 8 times, 0.02-0.04. Other formats decode whole.
        # Asked for before the EXIF turn, which loads the pixels; a square request is turn-free.
        reach = DRAFT_MARGIN * max((size for size, _, _ in views), default=0)
        if reach:
            im.draft(im.mode, (reach, reach))
        im = ImageOps.exif_transpose(im)
        # The same normalisation as the ingest statistics: 16-bit, float, palette, CMYK, 1-bit and
        # alpha images reach the model as the pixels the manifest describes.
        im = normalised_rgb(im)
        for size, channels, resample in views:
            view = im.convert("L") if channels == 1 else im
            if view.size != (size, size):
                # Plain squash to a square: the datasets audited here are square or nearly so, and a
                # crop would hide content that may be what makes an image off-topic.
                view = view.resize((size, size), resample, reducing_gap=None)
            arr = np.asarray(view, dtype=np.uint8)
            out.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
    return out


def load_image_tensor(
    paths: Sequence[str | Path],
    size: int,
    channels: int = 3,
    progress: Callable[[int, int], None] | None = None,
    num_workers: int = 2,
) -> torch.Tensor:
    """Decode `paths` (local paths or fsspec URLs) into an in-RAM `uint8 [N, channels, size, size]`
    (grayscale replicated to 3 channels).

    `progress(done, total)` is called after each chunk. Decoding runs in a small thread pool: PIL
    releases the GIL while decoding and resizing. For data that may not fit in RAM use `decode_images`.
    """
    _check_channels(channels)
    out = torch.empty((len(paths), channels, size, size), dtype=torch.uint8)
    _decode_into(out.numpy(), paths, size, channels, progress, num_workers)
    return out


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")


def _decode_into(buf: np.ndarray, paths: Sequence, size: int, channels: int,
                 progress: Callable[[int, int], None] | None, num_workers: int) -> None:
    """Decode `paths[i]` into `buf[i]` (a uint8 array in RAM or a writable memmap)."""
    n = len(paths)
    if n == 0:
        return
    chunk = 256
    if reads_objects(paths):
        # Each image is a network round trip: many small tasks in flight hide the latency.
        num_workers, chunk = max(num_workers, OBJECT_READ_THREADS), 8

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


class ImageSource:
    """Decoded images `uint8 [N, C, S, S]`, read a batch at a time.

    `take(indices)` returns the rows `indices` (a slice, or integer indices as a tensor, array or
    list) as a uint8 tensor; `select(indices)` a source of those rows only. `to(device)` gives the
    source training reads from on `device`.
    """

    dtype = torch.uint8

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, indices) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> ImageSource:
        return self


class TensorImages(ImageSource):
    """The images as one tensor (RAM or a device): `take` is plain indexing, slices are views."""

    def __init__(self, tensor: torch.Tensor) -> None:
        if tensor.dtype != torch.uint8 or tensor.ndim != 4:
            raise ValueError(f"images must be uint8 [N,C,S,S], got {tensor.dtype} {tuple(tensor.shape)}")
        self.tensor = tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    def take(self, indices) -> torch.Tensor:
        if isinstance(indices, slice):
            return self.tensor[indices]
        return self.tensor[_index_tensor(indices).to(self.tensor.device)]

    def select(self, indices) -> TensorImages:
        return TensorImages(self.take(indices))

    def to(self, device: torch.device | str) -> TensorImages:
        return TensorImages(self.tensor.to(device, non_blocking=True))


class MemmapImages(ImageSource):
    """The images in a uint8 `.npy` file, memory-mapped read-only; each `take` copies its rows out.

    Batches always come back on the CPU: training moves each one to its device.
    """

    def __init__(self, array: np.ndarray, path: Path | None = None, rows: np.ndarray | None = None) -> None:
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"decode cache {path}: expected uint8 [N,C,S,S], got {array.dtype} {array.shape}")
        self.array = array
        self.path = path
        self._rows = rows

    @property
    def rows(self) -> np.ndarray | None:
        """The file's rows this source reads, in order (None: all of them)."""
        return self._rows

    @classmethod
    def open(cls, path: str | Path) -> MemmapImages:
        return cls(np.load(path, mmap_mode="r", allow_pickle=False), Path(path))

    @property
    def shape(self) -> tuple[int, ...]:
        n = len(self._rows) if self._rows is not None else self.array.shape[0]
        return (n, *self.array.shape[1:])

    def _positions(self, indices) -> np.ndarray:
        if isinstance(indices, slice):
            rows = np.arange(*indices.indices(len(self)), dtype=np.int64)
        else:
            rows = _index_tensor(indices).cpu().numpy()
        return self._rows[rows] if self._rows is not None else rows

    def take(self, indices) -> torch.Tensor:
        rows = self._positions(indices)
        out = np.empty((len(rows), *self.array.shape[1:]), dtype=np.uint8)
        # Rows read in file order: the kernel's read-ahead then serves neighbours in the same batch
        # instead of seeking back and forth.
        order = np.argsort(rows, kind="stable")
        out[order] = self.array[rows[order]]
        return torch.from_numpy(out)

    def select(self, indices) -> MemmapImages:
        return MemmapImages(self.array, self.path, self._positions(indices))


def _index_tensor(indices) -> torch.Tensor:
    idx = indices if isinstance(indices, torch.Tensor) else torch.as_tensor(np.asarray(indices))
    if idx.dtype == torch.bool or idx.is_floating_point() or idx.ndim != 1:
        raise ValueError(f"indices must be a slice or 1-d integers, got {idx.dtype} {tuple(idx.shape)}")
    return idx.long()


def as_source(images: torch.Tensor | ImageSource) -> ImageSource:
    """`images` as an `ImageSource` (a tensor is wrapped, a source is returned as is)."""
    if isinstance(images, ImageSource):
        return images
    if isinstance(images, torch.Tensor):
        return TensorImages(images)
    raise TypeError(f"expected a uint8 tensor or an ImageSource, got {type(images).__name__}")


def parse_byte_size(value: str, name: str) -> int:
    """'4294967296', '4GiB', '512 MiB' -> bytes; anything else is refused naming `name`."""
    match = _SIZE.match(value.strip())
    if match is None:
        raise ValueError(f"{name} must be a byte count such as 4294967296, 4GiB or 512MiB, not {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _physical_ram() -> int | None:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    # In a container the cgroup limit, not the host's RAM, is what the process may use.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total if total > 0 else None


def decode_ram_budget(setting: str | None = None) -> int:
    """Bytes of decoded images kept in RAM before `decode_images` switches to a memory-mapped file.

    `setting` (the ssl_model config's `decode_ram_budget`) wins, then `$QUALITY_DECODE_RAM_BYTES`,
    then a quarter of the physical RAM (the cgroup limit in a container). A quarter because the
    decoded array is not alone: the in-RAM path may briefly hold it twice (dropping changed samples
    copies it), training needs its model, optimiser and batches, and the stages after it (DuckDB,
    the kNN graph) run in the same process. "0" always uses the file.
    """
    if setting is not None and str(setting).strip():
        return parse_byte_size(str(setting), "decode_ram_budget")
    env = os.environ.get(DECODE_RAM_ENV, "").strip()
    if env:
        return parse_byte_size(env, DECODE_RAM_ENV)
    ram = _physical_ram()
    return ram // 4 if ram else _FALLBACK_BUDGET


def decode_images(
    paths: Sequence,
    size: int,
    channels: int = 3,
    *,
    ram_budget: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    num_workers: int = 2,
) -> TensorImages | MemmapImages:
    """Decode `paths` once into `uint8 [N, channels, size, size]`, in RAM or on disk by size.

    In RAM (`TensorImages`) when the array fits `ram_budget` bytes (default `decode_ram_budget()`),
    else a memory-mapped `.npy` (`MemmapImages`) in `cache_dir` (reused when its content key
    matches; see the module docstring for its lifetime) or, without one, in the temp folder.
    """
    _check_channels(channels)
    budget = decode_ram_budget() if ram_budget is None else int(ram_budget)
    if budget < 0:
        raise ValueError(f"ram_budget must be >= 0 bytes, got {budget}")
    n = len(paths)
    if n * channels * size * size <= budget:
        return TensorImages(load_image_tensor(paths, size, channels, progress, num_workers))
    return _decode_to_file(paths, size, channels, cache_dir, progress, num_workers)


def _decode_to_file(paths: Sequence, size: int, channels: int, cache_dir: str | Path | None,
                    progress: Callable[[int, int], None] | None, num_workers: int) -> MemmapImages:
    n = len(paths)
    shape = (n, channels, size, size)
    key = _content_key(paths, size, channels) if cache_dir is not None else None
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"decoded-{key}.npy" if key is not None else None
    if final is not None and final.is_file():
        try:
            cached = MemmapImages.open(final)
        except (OSError, ValueError):
            cached = None  # unreadable: written again below
        if cached is not None and cached.shape == shape:
            if progress is not None:
                progress(n, n)
            return cached
    _remove_dead_writers(folder)
    tmp = folder / f".decoded-{key or 'anon'}-{os.getpid()}-{time.time_ns()}.tmp.npy"
    changed_before = len(paths.changed) if isinstance(paths, VerifiedFiles) else 0
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _decode_into(out, paths, size, channels, progress, num_workers)
        out.flush()
        del out
        # On disk before the rename: after a power cut the name must not point at unwritten pages.
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # A sample that failed its hash check was decoded as a stand-in: such a file is used for this
    # run only, never published under the key, or a rerun would train on the stand-in unchecked.
    changed = isinstance(paths, VerifiedFiles) and len(paths.changed) > changed_before
    if final is not None and not changed:
        os.replace(tmp, final)
        for other in folder.glob("decoded-*.npy"):
            if other != final:
                other.unlink(missing_ok=True)
        return MemmapImages.open(final)
    images = MemmapImages.open(tmp)
    # The mapping keeps the pages reachable; the name goes now, so nothing is left behind.
    tmp.unlink(missing_ok=True)
    images.path = None
    return images


def _content_key(paths: Sequence, size: int, channels: int) -> str:
    """What the decoded array depends on: every image's identity, the size, channels and decoder."""
    h = hashlib.sha256(json.dumps([_DECODER_VERSION, PIL.__version__, size, channels, len(paths)]).encode())
    for identity in _identities(paths):
        h.update(identity.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:32]


def _identities(paths: Sequence):
    if isinstance(paths, VerifiedFiles):
        # The recorded hash is the content: the bytes are checked against it when decoded.
        yield from (f"{r}\0{p}\0{s}" for r, p, s in zip(paths.roots, paths.paths, paths.hashes))
        return
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"a decode cache needs paths or URLs to key it, got {type(p).__name__}")
        name = os.fspath(p)
        if is_url(name):
            yield name  # a stat per object would be a request per object: the URL alone keys it
            continue
        try:
            st = os.stat(name)
        except OSError:
            yield name  # decoding it raises the real error
            continue
        # Size and mtime: a file rewritten in place gives a new key.
        yield f"{os.path.abspath(name)}\0{st.st_size}\0{st.st_mtime_ns}"


def _remove_dead_writers(folder: Path) -> None:
    """Remove temp files left by writers that died (their pid is in the name; one host per folder)."""
    for tmp in folder.glob(".decoded-*-*-*.tmp.npy"):
        try:
            pid = int(tmp.name.split("-")[-2])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # alive under another user, or no way to tell: leave it


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


def is_grayscale(images: torch.Tensor | ImageSource, sample: int = 512) -> bool:
    """True when (a sample of) the cached images has identical channels, i.e. the data is grayscale."""
    images = as_source(images)
    if images.shape[1] == 1:
        return True
    idx = torch.linspace(0, images.shape[0] - 1, steps=min(sample, images.shape[0])).long()
    x = images.take(idx)
    return bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]))
