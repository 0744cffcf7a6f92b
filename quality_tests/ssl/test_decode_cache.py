"""The decode cache: in RAM under the budget, a memory-mapped file above it, fsspec URLs; real PNGs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch

import quality_assets.ssl  # noqa: F401
from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, ensure_model
from quality_assets.ssl.backbones import create_backbone
from quality_assets.ssl.data import (
    DECODE_RAM_ENV,
    MemmapImages,
    TensorImages,
    _decode,
    decode_images,
    decode_ram_budget,
    load_image_tensor,
)
from quality_assets.ssl.dino import embed_images, train_dino
from quality_tests.imagefolders import make_imagefolder, write_png
from quality_tests.ssl.test_dino import tiny_config

SIZE = 16
N = 50


@pytest.fixture(scope="module")
def png_files(tmp_path_factory) -> list[Path]:
    """50 colour and grayscale PNGs of mixed sizes: the decoder squashes and converts them."""
    folder = tmp_path_factory.mktemp("pngs")
    return [write_png(folder / f"{i:03d}.png", seed=i, size=(20 + i % 7, 18 + i % 5), gray=i % 5 == 0)
            for i in range(N)]


@pytest.fixture(autouse=True)
def _no_budget_from_the_shell(monkeypatch):
    monkeypatch.delenv(DECODE_RAM_ENV, raising=False)


def test_the_memmap_backing_gives_the_same_batches_and_embeddings_as_ram(png_files, tmp_path):
    in_ram = decode_images(png_files, SIZE, ram_budget=1 << 30)
    on_disk = decode_images(png_files, SIZE, ram_budget=N * 3 * SIZE * SIZE - 1, cache_dir=tmp_path)
    assert isinstance(in_ram, TensorImages) and isinstance(on_disk, MemmapImages)
    assert isinstance(on_disk.array, np.memmap) and on_disk.path.parent == tmp_path
    assert on_disk.shape == in_ram.shape == (N, 3, SIZE, SIZE) and len(on_disk) == N
    assert torch.equal(in_ram.tensor, load_image_tensor(png_files, SIZE))

    idx = torch.randperm(N, generator=torch.Generator().manual_seed(0))[:17]
    idx[3] = idx[9]  # repeated and unsorted rows come back in the order asked
    assert torch.equal(on_disk.take(idx), in_ram.take(idx))
    assert torch.equal(on_disk.take(slice(45, 60)), in_ram.tensor[45:])
    kept = np.array([4, 0, 31, 7])
    assert torch.equal(on_disk.select(kept).take([3, 1]), in_ram.tensor[[7, 0]])
    assert isinstance(decode_images(png_files, SIZE, ram_budget=N * 3 * SIZE * SIZE), TensorImages)
    assert on_disk.take(idx).dtype == torch.uint8 and not in_ram.tensor[0].equal(in_ram.tensor[1])

    torch.manual_seed(0)
    backbone = create_backbone("resnet10_half", SIZE).eval()
    np.testing.assert_array_equal(embed_images(backbone, on_disk, batch_size=16),
                                  embed_images(backbone, in_ram, batch_size=16))


def test_training_runs_from_the_memmap_backing_as_from_ram(png_files, tmp_path):
    in_ram = decode_images(png_files, SIZE, ram_budget=1 << 30)
    on_disk = decode_images(png_files, SIZE, ram_budget=0)
    # Without a cache folder the file is unlinked once mapped: nothing is left behind.
    assert isinstance(on_disk, MemmapImages) and on_disk.path is None
    # A smaller global crop makes the BatchNorm pass resize batches; the stability check reads a probe.
    config = tiny_config(epochs=3, global_crop_size=12, local_crop_size=6, n_local_crops=1,
                         stop_when_stable=True, stability_every=1, stability_probe=20, stability_k=3)
    from_disk = train_dino(on_disk, config)
    from_ram = train_dino(in_ram, config)
    assert from_disk.steps == 9 and from_disk.n_samples_trained == N
    assert from_disk.batchnorm_recalibrated and len(from_disk.stability) == 1
    assert from_disk.stability == from_ram.stability
    assert from_disk.loss_curve == from_ram.loss_curve and all(np.isfinite(from_disk.loss_curve))
    for (name, a), b in zip(from_disk.backbone.state_dict().items(), from_ram.backbone.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_cache_file_is_reused_only_for_the_same_images(png_files, tmp_path):
    cache = tmp_path / "cache"
    first = decode_images(png_files[:30], SIZE, ram_budget=0, cache_dir=cache)
    inode = first.path.stat().st_ino
    again = decode_images(png_files[:30], SIZE, ram_budget=0, cache_dir=cache)
    assert again.path == first.path and again.path.stat().st_ino == inode  # not written again

    other = decode_images(png_files[1:31], SIZE, ram_budget=0, cache_dir=cache)
    assert other.path != first.path and not first.path.exists()  # one cache per folder
    assert torch.equal(other.take(slice(None)), load_image_tensor(png_files[1:31], SIZE))
    assert sorted(p.name for p in cache.iterdir()) == [other.path.name]

    # The same path rewritten in place: its size/mtime change the key, and the new pixels are read.
    write_png(png_files[1], seed=1000, size=(20, 18))
    st = png_files[1].stat()
    os.utime(png_files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        fresh = decode_images(png_files[1:31], SIZE, ram_budget=0, cache_dir=cache)
        assert fresh.path != other.path
        assert torch.equal(fresh.take([0])[0], torch.from_numpy(np.array(_decode(png_files[1], SIZE, 3))))
        assert not torch.equal(fresh.take([0]), other.take([0]))
    finally:
        write_png(png_files[1], seed=1, size=(21, 19))


def test_a_memory_url_decodes_the_same_pixels_as_the_local_file(png_files):
    fs = fsspec.filesystem("memory")
    folder = f"/decode-cache-{uuid.uuid4().hex}"
    try:
        urls = []
        for path in png_files[:6]:
            fs.pipe(f"{folder}/{path.name}", path.read_bytes())
            urls.append(f"memory://{folder}/{path.name}")
        for url, path in zip(urls, png_files):
            np.testing.assert_array_equal(_decode(url, SIZE, 3), _decode(path, SIZE, 3))
        np.testing.assert_array_equal(_decode(png_files[0].as_uri(), SIZE, 1), _decode(png_files[0], SIZE, 1))
        from_urls = decode_images(urls, SIZE, ram_budget=0)
        assert torch.equal(from_urls.take(slice(None)), load_image_tensor(png_files[:6], SIZE))
        with pytest.raises(FileNotFoundError):
            _decode(f"memory://{folder}/missing.png", SIZE, 3)
    finally:
        fs.rm(folder, recursive=True)


@pytest.mark.parametrize("value", ["lots", "-5", "4 GB", "1e9", "0x10"])
def test_a_bad_budget_is_refused_with_a_clear_message(monkeypatch, png_files, tmp_path, value):
    monkeypatch.setenv(DECODE_RAM_ENV, value)
    with pytest.raises(ValueError, match=f"{DECODE_RAM_ENV} must be a byte count.*{value!r}"):
        decode_ram_budget()
    with pytest.raises(ValueError, match=DECODE_RAM_ENV):
        decode_images(png_files[:2], SIZE, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was decoded
    # The ssl_model config's setting wins over the variable, and is checked the same way.
    assert decode_ram_budget("512MiB") == 512 << 20
    with pytest.raises(ValueError, match="decode_ram_budget must be a byte count"):
        decode_ram_budget(value)


def test_budget_values(monkeypatch):
    for value, expected in [("0", 0), ("1024", 1024), ("4GiB", 4 << 30), (" 1.5 KiB ", 1536)]:
        monkeypatch.setenv(DECODE_RAM_ENV, value)
        assert decode_ram_budget() == expected
    monkeypatch.delenv(DECODE_RAM_ENV)
    assert decode_ram_budget() > 0


def test_the_model_stage_trains_from_disk_and_the_budget_leaves_the_model_alone(store, tmp_path):
    data = tmp_path / "data"
    paths = make_imagefolder(data, {"train": {"a": 8, "b": 8}}, seed=5)
    ingest_drop(store, data, data)
    write_png(data / paths[0], seed=999)  # changed after ingest: left out, the cache not kept
    tiny = dict(epochs=1, batch_size=8, time_budget_s=10.0)
    model = ensure_model(store, store, ModelOptions(**tiny, decode_ram_budget="0"))
    assert model.retrained and model.row["n_samples_trained"] == 15
    cache = store.artifacts_dir / "decode_cache"
    assert cache.is_dir() and not any(cache.iterdir())
    # The budget is not part of the model's config: the default budget finds the same model current.
    again = ensure_model(store, store, ModelOptions(**tiny))
    assert not again.retrained and again.model_version == model.model_version
