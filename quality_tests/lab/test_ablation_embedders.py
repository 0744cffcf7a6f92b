"""The lab's ablation embedders on real image files: raw pixels, the SSL network untrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quality_assets.ssl.data import load_image_tensor
from quality_assets.ssl.dino import DinoConfig
from quality_lab.ablation_embedders import RandomInitEmbedder, RawPixelEmbedder


@pytest.fixture
def image_root(tmp_path) -> tuple[Path, list[Path]]:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        p = root / "train" / f"c{i % 3}" / f"img_{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        mode_rgb = i % 2 == 0
        arr = rng.integers(0, 256, size=(20, 20, 3) if mode_rgb else (20, 20), dtype=np.uint8)
        Image.fromarray(arr).save(p)
        paths.append(p)
    return root, paths


def test_raw_pixel_embedder(image_root):
    _, paths = image_root
    emb = RawPixelEmbedder(image_size=8)
    out = emb.embed(paths)
    assert out.shape == (12, emb.dim) and emb.dim == 3 * 8 * 8
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    direct = load_image_tensor(paths[:1], 8).reshape(1, -1).float().numpy()
    np.testing.assert_allclose(out[0], direct[0] / np.linalg.norm(direct[0]), rtol=1e-5)


def test_random_init_embedder_is_seeded_and_not_degenerate(image_root):
    _, paths = image_root
    cfg = DinoConfig(arch="resnet10_half", image_size=16, global_crop_size=16)
    a = RandomInitEmbedder(cfg, seed=0).embed(paths)
    b = RandomInitEmbedder(cfg, seed=0).embed(paths)
    c = RandomInitEmbedder("resnet10_half", 16, seed=1).embed(paths)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, c)
    assert a.shape == (12, 256)
    # BatchNorm re-estimated on the data: distinct images get distinct vectors.
    sims = a @ a.T
    assert sims[~np.eye(12, dtype=bool)].max() < 0.9999
