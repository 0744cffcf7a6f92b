"""Embedders on real image files: user-supplied vectors, local timm weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import quality_assets.ssl  # noqa: F401
from quality_assets.embedders import (
    PrecomputedEmbedder,
    TimmCheckpointEmbedder,
    make_embedder,
)
from quality_assets.ssl.data import load_image_tensor
from quality_assets.ssl.dino import embed_images


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


def test_precomputed_parquet_by_relative_path(image_root, tmp_path):
    root, paths = image_root
    rel = [p.relative_to(root).as_posix() for p in paths]
    vecs = np.random.default_rng(1).normal(size=(len(paths), 5)).astype(np.float32)
    file = tmp_path / "vectors.parquet"
    pd.DataFrame({"path": rel[::-1], "embedding": list(vecs[::-1])}).to_parquet(file)

    emb = PrecomputedEmbedder(file, data_root=root)
    assert emb.dim == 5 and emb.model_version.startswith("pre-")
    out = emb.embed(paths)  # absolute paths, made relative to the root
    expected = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(emb.embed([Path(r) for r in rel[:3]]), expected[:3], rtol=1e-6)
    assert out.dtype == np.float32


def test_precomputed_npy_with_sidecar_and_missing_paths(image_root, tmp_path):
    root, paths = image_root
    rel = [p.relative_to(root).as_posix() for p in paths[:-2]]
    vecs = np.arange(len(rel) * 3, dtype=np.float32).reshape(len(rel), 3) + 1
    file = tmp_path / "vectors.npy"
    np.save(file, vecs)
    Path(str(file) + ".paths.txt").write_text("\n".join(rel) + "\n")

    emb = make_embedder("precomputed", file=file, data_root=root)
    np.testing.assert_allclose(np.linalg.norm(emb.embed(paths[:4]), axis=1), 1.0, rtol=1e-6)
    with pytest.raises(KeyError) as err:
        emb.embed(paths)
    message = str(err.value)
    assert "2 path(s)" in message
    assert paths[-1].relative_to(root).as_posix() in message and paths[-2].relative_to(root).as_posix() in message


def test_precomputed_npy_without_sidecar_is_a_clear_error(tmp_path):
    file = tmp_path / "v.npy"
    np.save(file, np.ones((2, 3), dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="paths.txt"):
        PrecomputedEmbedder(file)


def test_timm_checkpoint_embedder_loads_local_weights_offline(image_root, tmp_path):
    import timm

    _, paths = image_root
    torch.manual_seed(0)
    kwargs = dict(channels=(8, 16, 32, 64))
    model = timm.create_model("resnet18", pretrained=False, num_classes=0, **kwargs).eval()
    weights = tmp_path / "weights.pth"
    torch.save(model.state_dict(), weights)

    emb = TimmCheckpointEmbedder("resnet18", weights, image_size=16, **kwargs)
    assert emb.dim == 64 and emb.model_version.startswith("timm-")
    out = emb.embed(paths)
    images = load_image_tensor(paths, 16)
    cfg = model.pretrained_cfg
    expected = embed_images(model, images, mean=cfg["mean"], std=cfg["std"])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(FileNotFoundError):
        TimmCheckpointEmbedder("resnet18", tmp_path / "nope.pth", image_size=16)


def test_make_embedder_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder("clip")


@pytest.mark.parametrize("path", [
    "a/b.png", "./a/b.png", "a//b.png", "a/./b.png", "a/b/.", "a/b/", ".", "./", "..", "../a.png",
    "a/../b.png", "a/.b.png", "a/b..png", ".hidden/x.png", "/abs/a.png", "//net/a.png", "///a.png",
    "a\\b.png", "a b/ü.png", "a/.", "./.", "a/./",
])
def test_a_precomputed_key_is_the_path_as_pathlib_normalises_it(path):
    # The fast path for plain paths must give the keys Path(...).as_posix() gave before it.
    expected = Path(path).as_posix()
    expected = expected[2:] if expected.startswith("./") else expected
    assert PrecomputedEmbedder._norm_key(path) == expected
    assert PrecomputedEmbedder._norm_key(Path(path)) == expected
