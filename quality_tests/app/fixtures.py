"""A small real quality home for the app tests: colour images audited by the real pipeline.

Two classes that differ in structure (cats: horizontal stripes, dogs: vertical), a few labels
flipped, a batch of foreign images (grayscale noise) filed as cats and one copied training
image. Few enough planted problems that the blocking gates pass (duplicate rate under 5 %, no
leak), so the audit materialises `cleaned_split` and the app can apply and export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from quality_assets.runner import run_audit
from quality_tests.imagefolders import distinct_image


def striped(seed: int, vertical: bool, size: int = 32) -> np.ndarray:
    """A smooth random colour field (unique per seed, so no natural twins) under the class's stripes."""
    rng = np.random.default_rng(seed)
    period = rng.uniform(4, 7)
    phase = rng.uniform(0, 2 * np.pi)
    wave = (np.sin(2 * np.pi * np.arange(size) / period + phase) + 1) / 2
    plane = np.tile(wave, (size, 1)) if vertical else np.tile(wave[:, None], (1, size))
    field = distinct_image(1_000 + seed, (size, size)).astype(np.float32)
    pixels = 0.65 * field + 0.35 * 255 * plane[..., None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def foreign(seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(10_000 + seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def write_dataset(root: Path) -> dict[str, list[str]]:
    """Write the image tree; returns the paths of each planted problem."""
    planted: dict[str, list[str]] = {"flipped": [], "foreign": [], "copies": []}
    seed = 0
    layout = {"train": 22, "test": 5}
    for split, n in layout.items():
        for label, vertical in (("cat", False), ("dog", True)):
            for k in range(n):
                path = root / split / label / f"{label}_{k:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                # The last two training images of each class carry the other class's pattern.
                flip = split == "train" and k >= n - 2
                Image.fromarray(striped(seed, vertical != flip)).save(path)
                if flip:
                    planted["flipped"].append(path.relative_to(root).as_posix())
                seed += 1
    for k in range(4):
        path = root / "train" / "cat" / f"odd_{k}.png"
        Image.fromarray(foreign(k)).save(path)
        planted["foreign"].append(path.relative_to(root).as_posix())
    shutil.copyfile(root / "train/dog/dog_00.png", root / "train/dog/dog_00_copy.png")
    planted["copies"].append("train/dog/dog_00_copy.png")
    return planted


def build_audited_home(base: Path) -> dict:
    data, home = base / "data", base / "home"
    planted = write_dataset(data)
    # A short SSL training: the app tests need a real store, not a good embedding.
    outcome = run_audit(home, data, [], log_level="WARNING", extra_op_config={"ssl_model": {"epochs": 30}})
    assert outcome.success and not outcome.failed_blocking_checks, (outcome.error, outcome.checks)
    return {"data": data, "home": home, "planted": planted, "outcome": outcome}


def copy_home(source: Path, target: Path) -> Path:
    """A private copy of an audited home (the database and the Dagster instance), for one test."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.partial", "app", "exports"))
    return target
