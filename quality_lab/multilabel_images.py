"""A small multi-label image set with known tags, for tests and benchmarks: real PNG files and a real
CSV manifest.

Each image is a faint smooth background (distinct per image, so no two files are copies) with one
visual element per tag it carries: `sky` a blue band at the top, `grass` a green band at the
bottom, `sun` a yellow disc top-right, `moon` a pale disc top-left, `car` a red block on the
left. The tags are independent and clearly visible in the pixels, so a pixel representation learns
every tag; the CSV then carries a few flipped tags (one tag added or removed per chosen image), the
ground truth of the tests.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, pixels: np.ndarray, fmt: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


TAGS = ("car", "grass", "moon", "sky", "sun")
SIZE = 24


def _draw(tags: set[str], rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(60, 140, size=(3, 3, 3), dtype=np.uint8)
    img = np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
                    for c in range(3)], axis=-1).astype(np.float64)
    img += rng.normal(0, 6, img.shape)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    jitter = rng.integers(-1, 2, size=2)
    if "sky" in tags:
        img[: 6 + jitter[0]] = (70, 120, 235)
    if "grass" in tags:
        img[SIZE - 6 + jitter[1]:] = (40, 190, 60)
    if "sun" in tags:
        img[(yy - 6) ** 2 + (xx - 17 - jitter[0]) ** 2 <= 16] = (250, 220, 40)
    if "moon" in tags:
        img[(yy - 7 - jitter[1]) ** 2 + (xx - 6) ** 2 <= 9] = (235, 235, 245)
    if "car" in tags:
        img[12 + jitter[1]:17 + jitter[1], 3:11] = (220, 30, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class MultiLabelDrop:
    root: Path
    paths: list[str]             # relative to root, CSV order
    true_tags: list[set[str]]
    given_tags: list[set[str]]   # what the CSV says
    splits: list[str]
    flipped: dict[str, tuple[str, str]]   # path -> (tag, "added" | "removed") in the CSV


def write_multilabel_drop(root: Path, n: int = 240, *, n_flipped: int = 4, seed: int = 0,
                          test_share: float = 0.2) -> MultiLabelDrop:
    """Write `root/images/*.png` and `root/manifest.csv` (path, labels, split) with `n_flipped` flips."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    true_tags: list[set[str]] = []
    while len(true_tags) < n:
        chosen = {t for t in TAGS if rng.random() < 0.45}
        if chosen:
            true_tags.append(chosen)
    paths = [f"images/img{i:04d}.png" for i in range(n)]
    for path, tags in zip(paths, true_tags):
        write_image(root / path, _draw(tags, rng), "PNG")
    splits = np.where(rng.random(n) < test_share, "test", "train").tolist()
    given = [set(t) for t in true_tags]
    flipped: dict[str, tuple[str, str]] = {}
    train = [i for i in range(n) if splits[i] == "train"]
    for i in rng.choice(train, n_flipped, replace=False):
        tag = str(rng.choice(TAGS))
        if tag in given[i] and len(given[i]) == 1:   # removing the only tag would leave no label: add one
            tag = next(t for t in TAGS if t not in given[i])
        action = "removed" if tag in given[i] else "added"
        given[i] ^= {tag}
        flipped[paths[i]] = (tag, action)
    # Labels as a person writes them: unsorted, with spaces after the separator.
    rows = [(p, "| ".join(sorted(g, reverse=bool(i % 2))), s) for i, (p, g, s) in enumerate(zip(paths, given, splits))]
    write_csv(root / "manifest.csv", ["path", "labels", "split"], rows)
    return MultiLabelDrop(root, paths, true_tags, given, splits, flipped)


def pixel_vectors(root: Path, paths: list[str], side: int = 8) -> np.ndarray:
    """A plain pixel representation: side x side RGB, centred on the set's mean image, L2-normalised."""
    x = np.stack([np.asarray(Image.open(Path(root) / p).convert("RGB").resize((side, side), Image.Resampling.BOX),
                             dtype=np.float64).ravel() for p in paths])
    x -= x.mean(0)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
