"""A copy descriptor learned on the dataset itself (after SSCD, Pizzi et al., CVPR 2022).

Instance discrimination: two copy views (:mod:`quality_assets.copy_detection.augment`) of each
image are positives, every other image in the batch a negative (InfoNCE, temperature 0.05 as
SSCD). The differential-entropy (KoLeo) term -mean(log distance to the nearest non-match) spreads
the descriptors of different images (weight 1: SSCD's 10-30 held the InfoNCE term back in runs of
a few hundred steps, see docs/benchmarks/copy_detection.md), so that natural near-twins of a dataset (two similar digits,
two icons of one theme) stay apart while copies collapse onto their source; SSCD's ablation shows
this is what makes scores comparable across queries. Descriptor = GeM pooling (p = 3) of a small
ResNet's feature map, a linear projection, L2 normalisation.

Input size rule (one default for every dataset; 32 px vs 64 px not yet compared on the matrix): half the image side rounded up to a
multiple of 16, clamped to [32, 64] (28 and 64 px images -> 32, 128 px -> 64, larger -> 64). A
copy keeps its source's layout, which a half-resolution view still shows, while the training cost
grows with the square of the input side: at 64 px input the CPU training of 3k images took 4x as
long for this machine's budget. Below 48 px the stem max-pool is dropped so that the last stage
still sees a 2x2 map instead of a single pixel. The backbone is a ResNet-18 layout with one block
per stage and a quarter of the channels (16-128): on 2 CPU cores the half-width one trained 3x
slower per step.

Training length: a fixed number of optimiser steps scaled with N (``default_config``), not a time
budget, so results do not depend on machine load; ``time_budget_s`` exists for users who need one.
Runs on CUDA when present (bf16 autocast), else on the CPU.

Warm start (``warm_start_config`` + ``train_copy_descriptor(init_backbone=...)``): the descriptor
can start from the audit's own SSL backbone (DINO on the same data: still no outside weights) and
fine-tune it for the copy task, the "head of the SSL model" route of #12. On the matrix it reaches
in about 300 steps (170 s on 2 CPU cores at 3,000 images) most of what 2,000 steps from scratch
reach (750-900 s): docs/benchmarks/matrix.md, "Update 2026-12-05 (6)".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, asdict
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.backbones import create_backbone, is_vit, recalibrate_batchnorm
from quality_assets.ssl.config import precision_autocast, resolve_device
from quality_assets.ssl.augment import normalize
from quality_assets.ssl.data import array_to_tensor, is_grayscale
from quality_assets.copy_detection.augment import CopyAugment, CopyAugmentParams

ProgressFn = Callable[[dict[str, Any]], None]


def input_size_for(image_side: int) -> int:
    """The descriptor's input size for images of this side (see the module docstring)."""
    return int(min(64, max(32, 16 * math.ceil(int(image_side) / 32))))


@dataclass
class CopyDescriptorConfig:
    image_size: int = 32
    arch: str = "resnet18"
    arch_kwargs: dict[str, Any] = field(default_factory=lambda: dict(
        layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), avg_down=True, zero_init_last=False))
    stem_pool: bool = False
    dim: int = 128
    temperature: float = 0.05
    entropy_weight: float = 1.0
    batch_size: int = 256
    steps: int = 600
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    time_budget_s: float | None = None
    augment: CopyAugmentParams = field(default_factory=CopyAugmentParams)
    # What the backbone started from: "" (random) or "ssl:<the SSL config hash>" (``warm_start_config``).
    init_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_config(image_side: int, n: int, device: str = "auto") -> CopyDescriptorConfig:
    """One default for every dataset: input size from the image side, steps from N.

    Steps: about 20 epochs of N images, at least 150 and at most 3000 steps of 256 images (a
    dataset of 2.5k images trains 200 steps; beyond ~40k images the model has seen enough copies
    of enough images that more steps buy little). On a GPU the batch doubles at the same steps.
    """
    size = input_size_for(image_side)
    cfg = CopyDescriptorConfig(image_size=size, stem_pool=size >= 48, device=device)
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        cfg.batch_size = 512
    cfg.steps = int(min(3000, max(150, round(20 * n / cfg.batch_size))))
    return cfg


# Warm-start length, in epochs of the data (steps = epochs x N / batch, clamped): on the matrix 8
# epochs (100 steps at 3,100 digits) added nothing as a view, 25 (300 steps) most of what 2,000
# steps from scratch added, 49 no more; the floor gives small sets steps enough (the 575 icons: 67
# epochs; at 267 they gained more), the ceiling bounds large ones (`warm_started_descriptors` trains
# on at most 20k images: 15 epochs of them).
WARM_START_EPOCHS = 25.0
WARM_START_MIN_STEPS = 150
WARM_START_MAX_STEPS = 1200
# `warm_started_descriptors` trains on a seeded sample of at most this many images: its 1,200 steps at
# most see 300k views, 15 epochs of them.
WARM_START_MAX_TRAIN_ROWS = 20_000


def warm_start_config(ssl_meta: dict[str, Any], image_side: int, n: int, device: str = "auto") -> CopyDescriptorConfig:
    """The descriptor's settings when it starts from the SSL backbone described by ``ssl_meta`` (the
    metadata ``ssl.checkpoints.load_checkpoint`` returns: its ``arch``, ``arch_kwargs``,
    ``config_hash``): that backbone's layout at the usual input size, ``WARM_START_EPOCHS`` of steps,
    the batch of 256 on every device (the recipe measured; a GPU only runs it faster)."""
    if is_vit(str(ssl_meta["arch"])):
        # CopyNet pools a convolutional feature map; a ViT's tokens would need another head.
        raise ValueError(f"the copy descriptor's warm start needs a convolutional SSL backbone, "
                         f"not the ViT {ssl_meta['arch']!r} (CUDA DINO on images of 96 px and more)")
    cfg = default_config(image_side, n, device)
    cfg.arch = str(ssl_meta["arch"])
    cfg.arch_kwargs = dict(ssl_meta.get("arch_kwargs") or {})
    cfg.stem_pool = cfg.image_size >= 48
    cfg.batch_size = 256
    cfg.steps = int(min(WARM_START_MAX_STEPS, max(WARM_START_MIN_STEPS,
                                                  round(WARM_START_EPOCHS * n / cfg.batch_size))))
    cfg.init_from = f"ssl:{ssl_meta.get('config_hash', '')}"
    return cfg


class GeM(nn.Module):
    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class CopyNet(nn.Module):
    """Backbone feature map -> GeM -> linear -> L2-normalised descriptor."""

    def __init__(self, arch: str, image_size: int, dim: int, stem_pool: bool = True,
                 arch_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        kwargs = {**(arch_kwargs or {}), "global_pool": "", "stem_pool": stem_pool}
        self.backbone = create_backbone(arch, image_size, kwargs)
        self.pool = GeM()
        self.proj = nn.Linear(int(self.backbone.num_features), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone.forward_features(x) if hasattr(self.backbone, "forward_features") else self.backbone(x)
        return F.normalize(self.proj(self.pool(f)), dim=1)


@dataclass
class CopyDescriptor:
    """A trained descriptor: the network plus what embedding needs to reproduce training."""

    model: CopyNet
    config: CopyDescriptorConfig
    grayscale: bool
    seconds: float
    steps_done: int
    final_loss: float
    history: list[float] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        """A picklable checkpoint (weights and config) for torch.save."""
        return {"state_dict": self.model.state_dict(), "config": self.config.to_dict(), "grayscale": self.grayscale}


def copy_loss(z: torch.Tensor, n_views: int, temperature: float, entropy_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """InfoNCE over all views of a batch plus SSCD's entropy term; ``z`` is view-major [V*B, d]."""
    b = z.shape[0] // n_views
    ids = torch.arange(b, device=z.device).repeat(n_views)
    sim = z @ z.t()
    same = ids[:, None] == ids[None, :]
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=z.device)
    pos = same & ~eye
    logits = (sim / temperature).masked_fill(eye, float("-inf"))
    # Each positive against all non-matches (SSCD's partition: the other positives are not negatives).
    neg_lse = torch.logsumexp(logits.masked_fill(same, float("-inf")), dim=1, keepdim=True)
    pos_logits = logits.masked_fill(~pos, 0.0)
    log_prob = pos_logits - torch.logaddexp(pos_logits, neg_lse)
    infonce = -(log_prob * pos).sum() / pos.sum()
    closest = sim.masked_fill(same, -2.0).max(dim=1).values
    dist = (2 - 2 * closest).clamp(min=1e-6).sqrt()
    entropy = -dist.log().mean()
    loss = infonce + entropy_weight * entropy
    return loss, {"infonce": float(infonce.detach()), "entropy": float(entropy.detach())}


def prepare_images(images: np.ndarray | torch.Tensor | list[np.ndarray], size: int) -> torch.Tensor:
    """uint8 ``[N, 3, size, size]`` from arrays [N, H, W] / [N, H, W, 3] or a list of them."""
    if isinstance(images, torch.Tensor):
        t = images
        if t.shape[-1] != size:
            t = F.interpolate(t.float(), size=(size, size), mode="bilinear", antialias=True)
            t = t.round().clamp(0, 255).to(torch.uint8)
        return t
    if isinstance(images, list):
        if len({im.shape for im in images}) > 1:
            raise ValueError("images of different shapes: resize them to one size first")
        images = np.stack(images)
    return array_to_tensor(np.asarray(images), size)


def train_copy_descriptor(
    images: np.ndarray | torch.Tensor | list[np.ndarray],
    config: CopyDescriptorConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    init_backbone: nn.Module | None = None,
) -> CopyDescriptor:
    """Train the copy descriptor on the dataset's own images (no labels, no outside weights).

    ``init_backbone``: a backbone of ``config.arch`` to start from (the audit's SSL model, see
    ``warm_start_config``); its weights are copied, the module itself is left as it was."""
    t_start = time.monotonic()
    if config is None:
        side = images.shape[-1] if isinstance(images, torch.Tensor) else int(np.asarray(images[0]).shape[1])
        config = default_config(side, len(images))
    dev = resolve_device(config.device)
    prev_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        data = prepare_images(images, config.image_size)
        gray = is_grayscale(data)
        torch.manual_seed(config.seed)
        model = CopyNet(config.arch, config.image_size, config.dim, config.stem_pool, config.arch_kwargs)
        if init_backbone is not None:
            try:
                model.backbone.load_state_dict(init_backbone.state_dict())
            except RuntimeError as err:
                raise ValueError(f"init_backbone does not fit the descriptor's arch {config.arch!r} "
                                 f"({str(err).splitlines()[0]}): use warm_start_config for its settings") from err
        model = model.to(dev)
        aug = CopyAugment(config.image_size, config.augment, grayscale_data=gray, seed=config.seed)
        decay = [p for n_, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n_, p in model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
        gen = torch.Generator(device=dev)
        gen.manual_seed(config.seed)
        data_dev = data.to(dev)
        n = data_dev.shape[0]
        bs = min(config.batch_size, n)
        history: list[float] = []
        perm = torch.randperm(n, device=dev, generator=gen)
        cursor, loss_v = 0, float("nan")
        model.train()
        for step in range(config.steps):
            if config.time_budget_s is not None and time.monotonic() - t_start > config.time_budget_s:
                break
            lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
            lr *= 0.5 * (1 + math.cos(math.pi * step / config.steps))
            for group in opt.param_groups:
                group["lr"] = lr
            if cursor + bs > n:
                perm = torch.randperm(n, device=dev, generator=gen)
                cursor = 0
            batch = data_dev[perm[cursor:cursor + bs]]
            cursor += bs
            with torch.no_grad():
                # One view is the image as stored, the other a copy of it: in an audit one side of
                # every copy pair is the untouched original, and matching a strong view to a clean
                # one is a much easier task for a small model than two strong views (10 epochs on
                # 1k digits: top-1 of protocol copies 4% with two strong views).
                clean = normalize(batch.float().div(255.0), config.augment.mean, config.augment.std)
                views = torch.cat([clean, aug.view(batch, gen)])
            with precision_autocast(dev, config.precision):
                z = model(views)
            loss, parts = copy_loss(z.float(), 2, config.temperature, config.entropy_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_v = float(loss.detach())
            if not math.isfinite(loss_v):
                raise FloatingPointError(f"copy descriptor loss is {loss_v} at step {step}")
            history.append(loss_v)
            if progress is not None:
                progress({"step": step + 1, "steps_total": config.steps, "loss": loss_v, **parts,
                          "elapsed_s": time.monotonic() - t_start})
        # BatchNorm statistics of training batches are half augmented views; descriptors are taken
        # of stored images, so re-estimate them there ("precise BN", as the DINO trainer does).
        recalibrate_batchnorm(model, data, config.augment.mean, config.augment.std, device=dev)
        model.eval()
        return CopyDescriptor(model.cpu(), config, gray, time.monotonic() - t_start, len(history), loss_v, history)
    finally:
        torch.set_num_threads(prev_threads)


def warm_started_descriptors(
    load: Callable[[np.ndarray], np.ndarray],
    n: int,
    ssl_backbone: nn.Module,
    ssl_meta: dict[str, Any],
    *,
    max_train_rows: int = WARM_START_MAX_TRAIN_ROWS,
    chunk: int = 4096,
    device: str = "auto",
    seed: int = 0,
    steps: int | None = None,
) -> tuple[np.ndarray, CopyDescriptor]:
    """The dataset's dihedral copy descriptors float32 [n, 8, d] from a descriptor fine-tuned out of
    its own SSL backbone (``warm_start_config``'s recipe), and that descriptor.

    ``load(rows)`` returns the images at those positions (uint8 [len(rows), s, s(, 3)]). The
    descriptor trains on at most ``max_train_rows`` of them (a seeded sample: the warm start's 1,200
    steps at most see 300k views, 15 epochs of 20k images) and embeds every image in chunks of
    ``chunk``, so memory holds the sample and one chunk of images, not the whole set. ``steps``
    overrides the recipe's length."""
    if n < 2:
        raise ValueError(f"the copy descriptor needs at least 2 images, got {n}")
    rows = np.arange(n)
    if n > max_train_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_train_rows, replace=False))
    train_images = load(rows)
    side = int(np.asarray(train_images[0]).shape[1])
    config = warm_start_config(ssl_meta, side, len(rows), device)
    config.seed = seed
    if steps is not None:
        config.steps = int(steps)
    descriptor = train_copy_descriptor(train_images, config, init_backbone=ssl_backbone)
    del train_images
    out = np.empty((n, DIHEDRAL, config.dim), dtype=np.float32)
    for start in range(0, n, chunk):
        part = np.arange(start, min(n, start + chunk))
        out[part] = embed_copies(descriptor, load(part), device=device)
    return out, descriptor


def load_copy_descriptor(state: dict[str, Any]) -> CopyDescriptor:
    cfg_d = dict(state["config"])
    cfg_d["augment"] = CopyAugmentParams(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in cfg_d["augment"].items()})
    cfg = CopyDescriptorConfig(**cfg_d)
    model = CopyNet(cfg.arch, cfg.image_size, cfg.dim, cfg.stem_pool, cfg.arch_kwargs)
    model.load_state_dict(state["state_dict"])
    model.eval()
    return CopyDescriptor(model, cfg, bool(state["grayscale"]), 0.0, 0, float("nan"))


DIHEDRAL = 8


def dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """The t-th of the 8 dihedral transforms of a batch: t % 4 quarter turns, then a mirror if t >= 4."""
    y = torch.rot90(x, t % 4, dims=(2, 3))
    return torch.flip(y, dims=(3,)) if t >= 4 else y


@torch.no_grad()
def embed_copies(
    descriptor: CopyDescriptor,
    images: np.ndarray | torch.Tensor | list[np.ndarray],
    *,
    transforms: int = DIHEDRAL,
    batch_size: int = 512,
    device: str = "auto",
) -> np.ndarray:
    """float32 ``[N, transforms, dim]`` descriptors, L2-normalised; index 0 is the image itself,
    1-7 its dihedral transforms (``dihedral``)."""
    dev = resolve_device(device)
    cfg = descriptor.config
    data = prepare_images(images, cfg.image_size)
    model = descriptor.model.to(dev).eval()
    out = np.empty((data.shape[0], transforms, cfg.dim), dtype=np.float32)
    for start in range(0, data.shape[0], batch_size):
        x = normalize(data[start:start + batch_size].to(dev).float().div_(255.0), cfg.augment.mean, cfg.augment.std)
        for t in range(transforms):
            with precision_autocast(dev, cfg.precision):
                z = model(dihedral(x, t))
            out[start:start + x.shape[0], t] = F.normalize(z.float(), dim=1).cpu().numpy()
    descriptor.model.cpu()
    return out
