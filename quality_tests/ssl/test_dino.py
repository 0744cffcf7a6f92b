"""DINO training, checkpoints, augmentations and losses on tiny real data (PNG files, real torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import quality_assets.ssl  # noqa: F401
from quality_assets.embedders import SSLCheckpointEmbedder
from quality_assets.ssl.augment import AugmentParams, MultiCrop, gaussian_blur
from quality_assets.ssl.data import is_grayscale, load_image_tensor
from quality_assets.ssl.dino import (
    DINOLoss,
    DinoConfig,
    default_config,
    embed_images,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
    sinkhorn_knopp,
    train_dino,
)

SIZE = 16


def _shape_image(kind: int, rng: np.random.Generator) -> np.ndarray:
    """A 16 px grayscale image: class 0 = filled square, class 1 = ring, random place and size."""
    img = np.zeros((SIZE, SIZE), dtype=np.uint8)
    r = int(rng.integers(3, 6))
    cy, cx = (int(v) for v in rng.integers(r, SIZE - r, size=2))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if kind == 0:
        img[cy - r:cy + r, cx - r:cx + r] = 255
    else:
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        img[(d <= r) & (d >= r - 1.5)] = 255
    return img


@pytest.fixture(scope="module")
def shape_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(64):
        p = folder / f"{i % 2}_{i:03d}.png"
        Image.fromarray(_shape_image(i % 2, rng), mode="L").save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def shape_images(shape_files) -> torch.Tensor:
    return load_image_tensor(shape_files, SIZE)


def tiny_config(**overrides) -> DinoConfig:
    base = dict(
        arch="resnet10_half", image_size=SIZE, global_crop_size=SIZE, local_crop_size=8, n_local_crops=2,
        out_dim=64, head_hidden_dim=32, head_bottleneck_dim=16, batch_size=16, epochs=2, lr=1e-3,
        warmup_epochs=0.5, freeze_last_layer_epochs=0.5, koleo_weight=0.1, momentum_teacher=0.99,
        threads=1, device="cpu", seed=3,
    )
    base.update(overrides)
    return DinoConfig(**base)


def test_load_image_tensor_decodes_once_into_uint8_rgb(shape_files, shape_images):
    calls = []
    t = load_image_tensor(shape_files[:5], SIZE, progress=lambda done, total: calls.append((done, total)))
    assert t.dtype == torch.uint8 and t.shape == (5, 3, SIZE, SIZE)
    assert torch.equal(t[:, 0], t[:, 2])  # grayscale replicated to 3 channels
    assert calls[-1] == (5, 5)
    assert is_grayscale(shape_images)
    one = load_image_tensor(shape_files[:2], 8, channels=1)
    assert one.shape == (2, 1, 8, 8)


def test_train_save_load_reproduces_embeddings(shape_files, shape_images, tmp_path):
    progress: list[dict] = []
    result = train_dino(shape_images, tiny_config(), progress=progress.append)
    assert result.steps == 8 and result.epochs_completed == pytest.approx(2.0)
    assert len(result.loss_curve) == 2 and all(np.isfinite(result.loss_curve))
    assert not result.stopped_by_budget and result.images_per_s > 0
    assert result.device == "cpu" and not result.backbone.training
    assert progress and progress[-1].get("done") is True

    ckpt = tmp_path / "model.pt"
    sha = save_checkpoint(result, ckpt)
    assert sha == file_sha256(ckpt)
    backbone, meta = load_checkpoint(ckpt)
    assert meta["arch"] == "resnet10_half" and meta["embedding_dim"] == 256
    assert meta["preprocessing"]["image_size"] == SIZE
    assert DinoConfig.from_dict(meta["config"]) == result.config

    before = embed_images(result.backbone, shape_images)
    after = embed_images(backbone, shape_images)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    assert np.allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)

    embedder = SSLCheckpointEmbedder(ckpt)
    assert embedder.model_version == "dino-" + sha[:12] and embedder.dim == 256
    seen: list[tuple[int, int]] = []
    from_files = embedder.embed(shape_files, batch_size=24, progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_allclose(from_files, before, rtol=1e-5, atol=1e-6)
    assert seen[-1] == (64, 64)


def test_training_is_deterministic_for_a_seed(shape_images):
    cfg = tiny_config(epochs=1, n_local_crops=1)
    a = train_dino(shape_images, cfg)
    b = train_dino(shape_images, cfg)
    assert a.loss_curve == b.loss_curve
    for (k, va), vb in zip(a.backbone.state_dict().items(), b.backbone.state_dict().values()):
        assert torch.equal(va, vb), k
    c = train_dino(shape_images, tiny_config(epochs=1, n_local_crops=1, seed=4))
    assert c.loss_curve != a.loss_curve


def test_the_epoch_end_hook_sees_each_epoch_without_changing_the_training(shape_images):
    cfg = tiny_config(epochs=3, n_local_crops=1)
    seen: list[tuple[int, torch.Tensor]] = []

    def keep(epoch: int, backbone: torch.nn.Module) -> None:
        first = next(iter(backbone.state_dict().values()))
        seen.append((epoch, first.detach().clone()))

    hooked = train_dino(shape_images, cfg, on_epoch_end=keep)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert not torch.equal(seen[0][1], seen[1][1])   # live weights, not one copy seen three times
    plain = train_dino(shape_images, cfg)
    assert hooked.loss_curve == plain.loss_curve
    for (k, va), vb in zip(hooked.backbone.state_dict().items(), plain.backbone.state_dict().values()):
        assert torch.equal(va, vb), k


def test_time_budget_stops_cleanly_and_says_so(shape_images):
    result = train_dino(shape_images, tiny_config(epochs=50, time_budget_s=0.0))
    assert result.stopped_by_budget
    assert result.steps == 1
    assert result.epochs_completed == pytest.approx(1 / 4)
    assert np.isfinite(result.final_loss)


def test_multicrop_shapes_dtypes_and_randomness():
    imgs = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    aug = MultiCrop(global_size=20, local_size=10, n_local=3)
    g = torch.Generator().manual_seed(0)
    glob, loc = aug(imgs, g)
    assert glob.shape == (12, 3, 20, 20) and loc.shape == (18, 3, 10, 10)
    assert glob.dtype == torch.float32 and torch.isfinite(glob).all() and torch.isfinite(loc).all()
    glob2, loc2 = aug(imgs, g)
    assert not torch.allclose(glob, glob2) and not torch.allclose(loc, loc2)
    again, _ = aug(imgs, torch.Generator().manual_seed(0))
    assert torch.equal(again, glob)
    # The two global views of one image differ (independent crops/jitter).
    assert not torch.allclose(glob[:6], glob[6:])
    none_local = MultiCrop(global_size=20, local_size=10, n_local=0)(imgs, g)
    assert none_local[1] is None


def test_grayscale_data_stays_gray_through_augmentation():
    gray = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8).expand(4, 3, 16, 16).contiguous()
    p = AugmentParams(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    glob, loc = MultiCrop(16, 8, 2, params=p, grayscale_data=True)(gray, torch.Generator().manual_seed(1))
    for views in (glob, loc):
        assert torch.allclose(views[:, 0], views[:, 1]) and torch.allclose(views[:, 1], views[:, 2])


def test_gaussian_blur_matches_dense_convolution():
    x = torch.rand(3, 2, 12, 12)
    sigma = torch.tensor([0.4, 1.0, 1.6])
    y = gaussian_blur(x, sigma, max_sigma=1.6)
    r = 5
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    for i in range(3):
        k = torch.exp(-(t**2) / (2 * sigma[i] ** 2))
        k2 = torch.outer(k / k.sum(), k / k.sum()).expand(2, 1, 2 * r + 1, 2 * r + 1)
        ref = F.conv2d(F.pad(x[i:i + 1], (r, r, r, r), mode="reflect"), k2, groups=2)
        torch.testing.assert_close(y[i:i + 1], ref, rtol=1e-5, atol=1e-5)


def test_dino_loss_equals_pairwise_definition():
    torch.manual_seed(0)
    n_crops, b, k = 5, 4, 32
    s, t = torch.randn(n_crops * b, k), torch.randn(2 * b, k)
    loss_fn = DINOLoss(k, n_crops, student_temp=0.1, center_momentum=0.9)
    got = loss_fn(s, t, teacher_temp=0.04)
    q = F.softmax(t / 0.04, dim=-1).chunk(2)  # centre starts at 0
    lp = F.log_softmax(s / 0.1, dim=-1).chunk(n_crops)
    terms = [(-q[i] * lp[v]).sum(-1).mean() for i in range(2) for v in range(n_crops) if v != i]
    torch.testing.assert_close(got, torch.stack(terms).mean())
    torch.testing.assert_close(loss_fn.center, 0.1 * t.mean(0, keepdim=True))


def test_sinkhorn_gives_balanced_distributions():
    torch.manual_seed(0)
    logits = torch.randn(64, 16) * 0.3
    logits[:, 0] += 1.0  # one prototype the plain softmax would give most of the mass
    q = sinkhorn_knopp(logits, temp=0.1, n_iters=10)
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    torch.testing.assert_close(q.sum(0), torch.full((16,), 4.0), rtol=0.05, atol=0.05)
    # Very sharp inputs stay finite (a plain exp() would underflow whole rows to 0 and divide by it).
    sharp = sinkhorn_knopp(torch.randn(64, 16) * 5, temp=0.01)
    assert torch.isfinite(sharp).all()
    torch.testing.assert_close(sharp.sum(1), torch.ones(64))


def test_config_dict_roundtrip_and_hash():
    cfg = default_config(28, 5300, "cpu")
    back = DinoConfig.from_dict(cfg.to_dict())
    assert back == cfg and back.config_hash() == cfg.config_hash()
    other = DinoConfig.from_dict({**cfg.to_dict(), "lr": cfg.lr * 2})
    assert other.config_hash() != cfg.config_hash()
    # Speed-only knobs do not force a retrain.
    assert DinoConfig.from_dict({**cfg.to_dict(), "threads": 7}).config_hash() == cfg.config_hash()
    assert DinoConfig.from_dict({**cfg.to_dict(), "unknown_future_field": 1}) == cfg


def test_default_configs_fit_data_and_device():
    cpu = default_config(28, 5300, "cpu")
    assert cpu.device == "cpu" and cpu.global_crop_size == 28 and cpu.precision == "fp32"
    # Trained by quality, not by stopwatch; the schedule is the recipe's, whatever the data's size, so
    # a drop that grows the data does not change the model's identity.
    assert cpu.time_budget_s is None and cpu.stop_when_stable
    assert cpu.min_epochs <= cpu.epochs
    assert default_config(28, 53000, "cpu").config_hash() == cpu.config_hash()
    big = default_config(512, 1000, "cpu")
    assert big.image_size <= 64
    gpu = default_config(256, 100_000, "cuda")
    assert (gpu.arch, gpu.global_crop_size, gpu.local_crop_size, gpu.n_local_crops) == ("vit_tiny_p16", 224, 96, 8)
    assert gpu.precision == "bf16" and gpu.compile


def test_training_stops_once_the_neighbour_lists_are_stable(shape_images):
    # With an unreachable threshold it runs to the end; with a trivial one it stops at the first
    # checks that can agree (two checks after min_epochs).
    never = train_dino(shape_images, tiny_config(epochs=6, stop_when_stable=True, min_epochs=1,
                                                 stability_every=1, stability_threshold=1.01))
    assert not never.stopped_as_stable and never.epochs_completed == pytest.approx(6)
    assert len(never.stability) >= 3 and all(0.0 <= s <= 1.0 for s in never.stability)
    early = train_dino(shape_images, tiny_config(epochs=6, stop_when_stable=True, min_epochs=1,
                                                 stability_every=1, stability_threshold=0.0,
                                                 stability_patience=2))
    assert early.stopped_as_stable and early.epochs_completed < 6
