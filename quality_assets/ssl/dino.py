"""DINO self-distillation (Caron et al. 2021) on the dataset's own images: no labels, no outside weights.

A student and an EMA teacher (same timm backbone + DINO head) see different multi-crop views of the
same images; the student is trained to match the teacher's centred, sharpened distribution over
`out_dim` prototypes. Schedules are per step: cosine lr with linear warm-up, cosine weight decay,
cosine teacher momentum towards 1, linear teacher-temperature warm-up.

Everything that touches images runs as batched tensor ops on the training device: the uint8 image
cache is moved there once, crops and colour ops are `augment.MultiCrop`. On CUDA the step runs in
bf16 autocast, optionally channels-last and `torch.compile`d.

The trained artefact is the teacher backbone (the paper evaluates it; it is the smoother of the two).
For BatchNorm backbones its running statistics are re-estimated on the clean images at the end:
during training they came from augmented crops, which are not what gets embedded.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.augment import AugmentParams, MultiCrop, normalize
from quality_assets.ssl.backbones import create_backbone, embedding_dim, recalibrate_batchnorm
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, is_grayscale
from quality_assets.ssl.policy import SSL_CODE_VERSION

CHECKPOINT_FORMAT = "quality-assets-dino/1"

# Fields that change speed only, never the trained weights: left out of the config hash so that
# e.g. running on a machine with more cores does not force a retrain.
_HASH_EXCLUDED = frozenset({"threads", "compile"})


@dataclass
class DinoConfig:
    """Everything that defines a DINO training run. `lr` is per 256 images (scaled by batch_size/256).

    The field defaults are generic; `default_config(image_size, n_images, device)` gives settings
    fitted to the data and hardware. `centering` is "ema" (paper) or "sinkhorn" (DINOv2);
    `koleo_weight` > 0 adds DINOv2's KoLeo spreading term on the student's global-view features.
    `time_budget_s` bounds the training loop (checked between steps); set-up and the final BatchNorm
    re-estimation (a few seconds) come on top.
    """

    arch: str = "resnet10_half"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 28
    global_crop_size: int = 28
    local_crop_size: int = 12
    n_local_crops: int = 4
    global_crop_scale: tuple[float, float] = (0.4, 1.0)
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    augment: dict[str, Any] = field(default_factory=dict)
    out_dim: int = 4096
    head_hidden_dim: int = 512
    head_bottleneck_dim: int = 128
    head_bn: bool = False
    norm_last_layer: bool = True
    epochs: float = 10.0
    batch_size: int = 128
    lr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    warmup_epochs: float = 1.0
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 0.0
    student_temp: float = 0.1
    momentum_teacher: float = 0.996
    center_momentum: float = 0.9
    centering: str = "ema"
    koleo_weight: float = 0.0
    clip_grad: float = 3.0
    freeze_last_layer_epochs: float = 1.0
    drop_path_rate: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    time_budget_s: float | None = None
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DinoConfig:
        """Inverse of `to_dict`. Unknown keys (from a newer version) are ignored, missing ones default."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for k, v in d.items():
            if k not in known:
                continue
            if isinstance(v, list) and k.endswith("_scale"):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)

    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of every field that can change the trained weights."""
        d = {k: v for k, v in self.to_dict().items() if k not in _HASH_EXCLUDED}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# The small-image recipe, found by sweeping on MNIST 5k (docs/benchmarks/ssl.md): at 28-64 px local
# crops are fragments that carry no class evidence and only slow each step, so none; a faster teacher
# (momentum 0.99) and a higher lr because the run is hundreds, not hundreds of thousands, of steps;
# a KoLeo term (DINOv2) that keeps the features spread while the teacher is still weak; no mirror
# flips or solarization, which turn glyph-like small images (digits, characters) into other classes.
_SMALL_IMAGE_RECIPE: dict[str, Any] = dict(
    arch="resnet10_half", n_local_crops=0, momentum_teacher=0.99, lr=1e-3, koleo_weight=0.1,
    augment={"flip_p": 0.0, "solarize_p": 0.0}, out_dim=4096, head_hidden_dim=512, head_bottleneck_dim=128,
    batch_size=128, channels_last=True,
)

# Training images per second of the small recipe at 28 px on 2 idle CPU cores (docs/benchmarks/ssl.md),
# scaled by pixel count for other sizes.
_CPU_SMALL_RATE_28PX = 1000.0
_CPU_TRAIN_SECONDS = 150.0


def default_config(image_size: int, n_images: int, device: str = "auto") -> DinoConfig:
    """Defaults that fit the data and the hardware.

    CPU, images up to 64 px: the small-image recipe (a ResNet-10 at half width, two global crops at the
    native size, channels-last), with epochs chosen so that training takes about 2.5 minutes on 2 idle
    cores (about 28 epochs for the 5,300-image demo) and a time budget as the hard stop. CPU, larger
    images: the same network at a 64 px crop. CUDA, images of 96 px and up: the paper's recipe
    (ViT-tiny/16 at 224 px, 2 global + 8 local 96 px crops, bf16 autocast, torch.compile); CUDA, small
    images: the small-image recipe for up to 100 epochs.
    """
    dev = resolve_device(device)
    n = max(1, int(n_images))
    if dev.type == "cuda":
        if image_size >= 96:
            cfg = DinoConfig(
                arch="vit_tiny_p16", image_size=256, global_crop_size=224, local_crop_size=96, n_local_crops=8,
                local_crop_scale=(0.05, 0.4), out_dim=65536, head_hidden_dim=2048, head_bottleneck_dim=256,
                batch_size=256, lr=5e-4, warmup_epochs=10, warmup_teacher_temp=0.04, teacher_temp=0.07,
                warmup_teacher_temp_epochs=30, precision="bf16", compile=True,
            )
        else:
            size = max(16, image_size)
            cfg = DinoConfig(image_size=size, global_crop_size=size, precision="bf16", **_SMALL_IMAGE_RECIPE)
            cfg.batch_size = 256
        cfg.epochs = float(min(100, max(10, round(20_000_000 / n))))
        cfg.warmup_epochs = min(cfg.warmup_epochs, cfg.epochs / 10)
        cfg.warmup_teacher_temp_epochs = min(cfg.warmup_teacher_temp_epochs, cfg.epochs / 3)
        cfg.time_budget_s = 3600.0
        cfg.device = "cuda"
        return cfg

    size = max(16, min(image_size, 64))
    cfg = DinoConfig(image_size=size, global_crop_size=size, precision="fp32", **_SMALL_IMAGE_RECIPE)
    rate = _CPU_SMALL_RATE_28PX * (28.0 / size) ** 2
    cfg.epochs = float(max(1.0, min(100.0, round(rate * _CPU_TRAIN_SECONDS / n, 1))))
    cfg.warmup_epochs = min(1.0, cfg.epochs / 10)
    cfg.freeze_last_layer_epochs = min(1.0, cfg.epochs / 10)
    # Hard stop a little above the plan: a slower or busier machine gets a shorter, still usable model.
    cfg.time_budget_s = 170.0 if n <= 20_000 else 1800.0
    cfg.device = "cpu"
    return cfg


def _local_size(global_size: int, patch: int) -> int:
    # Paper ratio 96/224, rounded to a multiple of the patch so local crops tile exactly.
    return max(patch * 2, int(round(global_size * 96 / 224 / patch)) * patch)


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation (w = g * v / ||v||, per output unit), no bias.

    With `learn_norm=False` g is fixed to 1 (DINO's `norm_last_layer=True`, which stabilises training).
    Written out rather than via `nn.utils.weight_norm` to avoid the deprecated hook and to keep the
    state dict plain.
    """

    def __init__(self, in_dim: int, out_dim: int, learn_norm: bool = False) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.v, std=0.02)
        self.g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=learn_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.g * F.normalize(self.v, dim=1))


class DINOHead(nn.Module):
    """MLP (GELU) -> L2-normalised bottleneck -> weight-normed prototype layer."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
        nlayers: int = 3, norm_last_layer: bool = True, use_bn: bool = False,
    ) -> None:
        super().__init__()

        def block(i: int, o: int) -> list[nn.Module]:
            return [nn.Linear(i, o), nn.BatchNorm1d(o), nn.GELU()] if use_bn else [nn.Linear(i, o), nn.GELU()]

        layers: list[nn.Module] = block(in_dim, hidden_dim)
        for _ in range(nlayers - 2):
            layers += block(hidden_dim, hidden_dim)
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, learn_norm=not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return self.last_layer(x)


class MultiCropNet(nn.Module):
    """Backbone + head applied to crops of several resolutions (one backbone call per resolution)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, *crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Head output for all crops, and the backbone features of the first crop tensor (global views)."""
        feats = [self.backbone(c) for c in crops]
        return self.head(torch.cat(feats) if len(feats) > 1 else feats[0]), feats[0]


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: torch.Tensor, temp: float, n_iters: int = 3) -> torch.Tensor:
    """Balanced soft assignments of a batch to prototypes (DINOv2's alternative to EMA centering).

    Rows (samples) sum to 1, columns (prototypes) to B/K. Computed in the log domain: with sharp
    temperatures the plain exp() underflows to whole rows of zeros.
    """
    logq = teacher_logits.float() / temp
    b, k = logq.shape
    for _ in range(n_iters):
        logq = logq - torch.logsumexp(logq, dim=0, keepdim=True) - math.log(k)
        logq = logq - torch.logsumexp(logq, dim=1, keepdim=True) - math.log(b)
    return torch.exp(logq + math.log(b))


def koleo_loss(features: torch.Tensor, n_chunks: int = 2) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimator (DINOv2): -mean log distance to the nearest other sample.

    Spreads the backbone features of a batch over the sphere; computed per view so that the two views
    of one image do not count as each other's neighbours.
    """
    total = features.new_zeros((), dtype=torch.float32)
    chunks = features.float().chunk(n_chunks)
    for f in chunks:
        f = F.normalize(f, dim=-1)
        with torch.no_grad():
            sim = f @ f.t()
            sim.fill_diagonal_(-2.0)
            nn_idx = sim.argmax(dim=1)
        dist = (f - f[nn_idx]).norm(dim=-1)
        total = total - torch.log(dist + 1e-8).mean()
    return total / len(chunks)


def dino_cross_entropy(student_out: torch.Tensor, q: torch.Tensor, n_crops: int, student_temp: float) -> torch.Tensor:
    """Mean over view pairs (teacher global view i, student view v != i) of CE(q_i, softmax(s_v / T))."""
    b = student_out.shape[0] // n_crops
    log_p = F.log_softmax(student_out.float() / student_temp, dim=-1).view(n_crops, b, -1)
    q = q.view(2, b, -1)
    # Regrouped per student view: a global view is paired with the other global view's target, a
    # local view with both. One fused product instead of 2 * (n_crops - 1) separate cross-entropies.
    targets = torch.cat([q.flip(0), (q[0] + q[1]).unsqueeze(0).expand(n_crops - 2, -1, -1)])
    total = -(targets * log_p).sum(dim=-1).mean(dim=-1).sum()
    return total / (2 * (n_crops - 1))


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over all view pairs (i != j).

    `centering="ema"` is the paper's (subtract an EMA of the teacher's mean logits, then softmax at the
    teacher temperature); `"sinkhorn"` replaces it with Sinkhorn-Knopp balancing of each batch.
    """

    def __init__(
        self, out_dim: int, n_crops: int, student_temp: float, center_momentum: float, centering: str = "ema"
    ) -> None:
        super().__init__()
        if centering not in ("ema", "sinkhorn"):
            raise ValueError(f"centering must be 'ema' or 'sinkhorn', got {centering!r}")
        self.centering = centering
        self.n_crops = n_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self._cross_entropy: Callable[..., torch.Tensor] = dino_cross_entropy

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        t_logits = teacher_out.float()
        if self.centering == "sinkhorn":
            q = sinkhorn_knopp(t_logits, teacher_temp)
        else:
            q = F.softmax((t_logits - self.center) / teacher_temp, dim=-1)
        total = self._cross_entropy(student_out, q.detach(), self.n_crops, self.student_temp)
        self._update_center(t_logits)
        return total

    def compile_cross_entropy(self) -> None:
        """Compile the cross-entropy (the largest memory-bound part: [n_crops*B, out_dim] in fp32)."""
        self._cross_entropy = torch.compile(dino_cross_entropy, dynamic=False)

    @torch.no_grad()
    def _update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_center = teacher_logits.mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


def cosine_schedule(base: float, final: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0) -> np.ndarray:
    """Per-step values: linear warm-up from `warmup_start` to `base`, then cosine from `base` to `final`."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps)
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False) if warmup_steps else np.array([])
    rest = total_steps - warmup_steps
    it = np.arange(rest)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * it / max(1, rest)))
    return np.concatenate([warm, cos])


@dataclass
class DinoResult:
    """Outcome of `train_dino`. `backbone` is the teacher backbone on CPU, in eval mode."""

    backbone: nn.Module
    config: DinoConfig
    epochs_completed: float
    steps: int
    final_loss: float
    loss_curve: list[float]
    images_per_s: float
    stopped_by_budget: bool
    device: str
    seconds: float
    n_samples_trained: int = 0
    grayscale_data: bool = False
    batchnorm_recalibrated: bool = False


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    # Paper: no weight decay on biases and norm parameters (all 1-d tensors).
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast(dev: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and dev.type == "cuda"):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return torch.autocast(dev.type, enabled=False)


def build_networks(config: DinoConfig) -> tuple[MultiCropNet, MultiCropNet]:
    """Student and teacher (identical initial weights; the teacher never gets gradients)."""
    kwargs = dict(config.arch_kwargs)
    if config.drop_path_rate and "drop_path_rate" not in kwargs:
        kwargs["drop_path_rate"] = config.drop_path_rate
    backbone = create_backbone(config.arch, config.global_crop_size, kwargs)
    head = DINOHead(
        embedding_dim(backbone), config.out_dim, config.head_hidden_dim, config.head_bottleneck_dim,
        norm_last_layer=config.norm_last_layer, use_bn=config.head_bn,
    )
    student = MultiCropNet(backbone, head)
    teacher = copy.deepcopy(student)
    # The teacher has no stochastic depth: it is the clean target (as in the paper's teacher).
    for m in teacher.modules():
        if hasattr(m, "drop_prob"):
            m.drop_prob = 0.0
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


def train_dino(
    images: torch.Tensor,
    config: DinoConfig,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> DinoResult:
    """Train DINO on `images` (uint8 `[N, 3, S, S]`, S == config.image_size) and return the teacher backbone.

    The time budget (`config.time_budget_s`, measured from the call) is checked between steps; when it
    runs out, training stops after the current step and `stopped_by_budget` is set. On CPU with a fixed
    seed and thread count the result is bit-for-bit reproducible.
    """
    t_start = time.monotonic()
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 [N,3,S,S], got {images.dtype} {tuple(images.shape)}")
    n = images.shape[0]
    if n < 2:
        raise ValueError("need at least 2 images to train")
    dev = resolve_device(config.device)
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(config.seed)
            return _train(images, config, dev, progress, t_start)
    finally:
        torch.set_num_threads(old_threads)


def _train(
    images: torch.Tensor, config: DinoConfig, dev: torch.device,
    progress: Callable[[dict[str, Any]], None] | None, t_start: float,
) -> DinoResult:
    n = images.shape[0]
    student, teacher = build_networks(config)
    student.to(dev)
    teacher.to(dev)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    if config.channels_last:
        student.to(memory_format=memory_format)
        teacher.to(memory_format=memory_format)
    student.train()
    teacher.train()  # BatchNorm backbones normalise the teacher with batch statistics, as in the paper.
    run_student: nn.Module = student
    run_teacher: nn.Module = teacher
    if config.compile:
        run_student = torch.compile(student)
        run_teacher = torch.compile(teacher)

    grayscale = is_grayscale(images)
    bf16 = config.precision == "bf16" or (config.precision == "auto" and dev.type == "cuda")
    aug = MultiCrop(
        global_size=config.global_crop_size, local_size=config.local_crop_size, n_local=config.n_local_crops,
        global_scale=tuple(config.global_crop_scale), local_scale=tuple(config.local_crop_scale),
        params=AugmentParams(**config.augment), grayscale_data=grayscale,
        # Under bf16 autocast the first layer casts its input to bf16 anyway: emit it directly.
        out_dtype=torch.bfloat16 if bf16 and dev.type == "cuda" else torch.float32,
        compile=config.compile,
    )
    n_crops = 2 + config.n_local_crops
    loss_fn = DINOLoss(
        config.out_dim, n_crops, config.student_temp, config.center_momentum, config.centering
    ).to(dev)
    if config.compile:
        loss_fn.compile_cross_entropy()

    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)  # drop the ragged last batch: keeps step shapes static
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    lr_sched = cosine_schedule(config.lr * batch / 256.0, config.min_lr, total_steps, warm)
    wd_sched = cosine_schedule(config.weight_decay, config.weight_decay_end, total_steps)
    mom_sched = cosine_schedule(config.momentum_teacher, 1.0, total_steps)
    tt_warm = int(round(config.warmup_teacher_temp_epochs * steps_per_epoch))
    tt_sched = np.concatenate([
        np.linspace(config.warmup_teacher_temp, config.teacher_temp, tt_warm),
        np.full(max(0, total_steps - tt_warm), config.teacher_temp),
    ])
    freeze_steps = int(round(config.freeze_last_layer_epochs * steps_per_epoch))

    opt_kwargs: dict[str, Any] = {"lr": 0.0, "weight_decay": 0.0}
    if dev.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW(_param_groups(student), **opt_kwargs)
    s_params = [p for p in student.parameters()]
    t_params = [p for p in teacher.parameters()]
    last_layer_params = [p for p in student.head.last_layer.parameters() if p.requires_grad]

    data = images.to(dev, non_blocking=True)
    gen = torch.Generator(device=dev)
    gen.manual_seed(config.seed)

    loss_curve: list[float] = []
    epoch_losses: list[torch.Tensor] = []
    last_loss = float("nan")
    stopped = False
    step = 0
    t_loop = time.monotonic()
    # Reading the loss forces a host sync; on a GPU do it rarely so the launch queue stays full.
    sync_every = 1 if dev.type == "cpu" else 10
    progress_every_s = 1.0
    last_report = t_loop
    while step < total_steps and not stopped:
        epoch = step // steps_per_epoch
        perm = torch.randperm(n, device=dev, generator=gen)
        for i in range(steps_per_epoch):
            if step >= total_steps:
                break
            idx = perm[i * batch:(i + 1) * batch]
            with torch.no_grad():
                glob, loc = aug(data[idx], gen)
                if config.channels_last:
                    glob = glob.contiguous(memory_format=memory_format)
                    loc = loc.contiguous(memory_format=memory_format) if loc is not None else None
            for k, group in enumerate(opt.param_groups):
                group["lr"] = float(lr_sched[step])
                if k == 0:
                    group["weight_decay"] = float(wd_sched[step])
            with _autocast(dev, config.precision):
                with torch.no_grad():
                    t_out = run_teacher(glob)[0]
                crops = (glob, loc) if loc is not None else (glob,)
                s_out, s_feat = run_student(*crops)
            loss = loss_fn(s_out, t_out, float(tt_sched[step]))
            if config.koleo_weight:
                loss = loss + config.koleo_weight * koleo_loss(s_feat)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad:
                torch.nn.utils.clip_grad_norm_(student.parameters(), config.clip_grad)
            if step < freeze_steps:
                # Paper: keep the prototypes fixed early on; it avoids a collapse the loss cannot undo.
                for p in last_layer_params:
                    p.grad = None
            opt.step()
            with torch.no_grad():
                m = float(mom_sched[step])
                torch._foreach_mul_(t_params, m)
                torch._foreach_add_(t_params, s_params, alpha=1.0 - m)
            epoch_losses.append(loss.detach())
            step += 1
            if step % sync_every == 0 or step == total_steps:
                last_loss = float(loss.detach())
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"DINO loss became {last_loss} at step {step}")
                if config.time_budget_s is not None and time.monotonic() - t_start >= config.time_budget_s:
                    stopped = step < total_steps
                    break
                now = time.monotonic()
                if progress is not None and (now - last_report >= progress_every_s or i == steps_per_epoch - 1):
                    last_report = now
                    elapsed = now - t_loop
                    progress({
                        "step": step, "steps_total": total_steps, "epoch": step / steps_per_epoch,
                        "loss": last_loss, "lr": float(lr_sched[step - 1]), "elapsed_s": elapsed,
                        "images_per_s": step * batch / max(elapsed, 1e-9),
                    })
        if epoch_losses:
            loss_curve.append(float(torch.stack(epoch_losses).mean()))
            epoch_losses = []

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    loop_s = time.monotonic() - t_loop
    final_loss = loss_curve[-1] if loss_curve else last_loss
    backbone = teacher.backbone.to(memory_format=torch.contiguous_format)
    with torch.autocast(dev.type, enabled=False):
        recalibrated = recalibrate_batchnorm(backbone, resize_images(data, config.global_crop_size), device=dev)
    backbone = backbone.to("cpu").eval()
    result = DinoResult(
        backbone=backbone, config=config, epochs_completed=step / steps_per_epoch, steps=step,
        final_loss=float(final_loss), loss_curve=loss_curve, images_per_s=step * batch / max(loop_s, 1e-9),
        stopped_by_budget=stopped, device=str(dev), seconds=time.monotonic() - t_start,
        n_samples_trained=n, grayscale_data=is_grayscale(images), batchnorm_recalibrated=recalibrated,
    )
    if progress is not None:
        progress({"step": step, "steps_total": total_steps, "epoch": result.epochs_completed,
                  "loss": result.final_loss, "done": True, "stopped_by_budget": stopped,
                  "images_per_s": result.images_per_s, "elapsed_s": loop_s})
    return result


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `[N, C, S, S]` -> uint8 `[N, C, size, size]` (antialiased bilinear); no-op when S == size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, images.shape[0], 1024):
        x = images[start:start + 1024].float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + 1024] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def preprocessing_spec(config: DinoConfig) -> dict[str, Any]:
    """How to turn an image file into the backbone's input at embedding time."""
    # Embed the whole image at the global crop size: a global crop at scale 1.0, which the backbone saw.
    return {
        "image_size": config.global_crop_size, "channels": 3, "resize": "bilinear", "grayscale_to_rgb": True,
        "mean": list(DEFAULT_MEAN), "std": list(DEFAULT_STD),
    }


def save_checkpoint(result: DinoResult, path: str | Path) -> str:
    """Write the teacher backbone + metadata to `path`; return the file's sha256 (hex)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": cfg.arch,
        "arch_kwargs": dict(cfg.arch_kwargs),
        "config": cfg.to_dict(),
        "config_hash": cfg.config_hash(),
        "code_version": SSL_CODE_VERSION,
        "embedding_dim": embedding_dim(result.backbone),
        "preprocessing": preprocessing_spec(cfg),
        "n_samples_trained": result.n_samples_trained,
        "epochs_completed": result.epochs_completed,
        "final_loss": result.final_loss,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in result.backbone.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint under the real name
    return file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the backbone from a checkpoint; returns `(backbone in eval mode, metadata without weights)`."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (format={payload.get('format')!r})")
    cfg = DinoConfig.from_dict(payload["config"])
    kwargs = dict(payload.get("arch_kwargs") or {})
    backbone = create_backbone(payload["arch"], cfg.global_crop_size, kwargs)
    backbone.load_state_dict(payload["state_dict"])
    backbone.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return backbone, meta


def embed_images(
    backbone: nn.Module,
    images: torch.Tensor,
    *,
    mean: tuple[float, ...] | list[float] = DEFAULT_MEAN,
    std: tuple[float, ...] | list[float] = DEFAULT_STD,
    batch_size: int = 512,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Backbone features of uint8 `[N, 3, S, S]` images: float32 `[N, D]`, rows L2-normalised."""
    dev = resolve_device(device)
    model = backbone.to(dev).eval()
    n = images.shape[0]
    out: np.ndarray | None = None
    with torch.inference_mode(), _autocast(dev, "auto" if dev.type == "cuda" else "fp32"):
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(dev).float().div_(255.0)
            f = model(normalize(x, tuple(mean), tuple(std))).float()
            f = F.normalize(f, dim=1).cpu().numpy()
            if out is None:
                out = np.empty((n, f.shape[1]), dtype=np.float32)
            out[start:start + len(f)] = f
            if progress is not None:
                progress(min(start + batch_size, n), n)
    if out is None:
        return np.zeros((0, embedding_dim(backbone)), dtype=np.float32)
    return out
