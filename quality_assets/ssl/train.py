"""DINO self-distillation (Caron et al. 2021) on the dataset's own images: the training loop.

A student and an EMA teacher (same timm backbone + DINO head) see different multi-crop views of the
same images; the student is trained to match the teacher's centred, sharpened distribution over
`out_dim` prototypes. Schedules are per step: cosine lr with linear warm-up, cosine weight decay,
cosine teacher momentum towards 1, linear teacher-temperature warm-up.

Everything that touches images runs as batched tensor ops on the training device: an in-RAM uint8
image cache is moved there once (a disk-backed one, `data.MemmapImages`, stays on disk and each batch
is copied out and moved), crops and colour ops are `augment.MultiCrop`. On CUDA the step runs in
bf16 autocast, optionally channels-last and `torch.compile`d.

The trained artefact is the teacher backbone (the paper evaluates it; it is the smoother of the two).
For BatchNorm backbones its running statistics are re-estimated on the clean images at the end:
during training they came from augmented crops, which are not what gets embedded.

Data-parallel (called inside an initialised `torch.distributed` process group of W > 1 workers, as
Ray Train's `TorchTrainer` sets up: `quality_assets.distributed.ssl_train`): every worker holds the
images and the same seeded networks; each step, worker r trains on its own slice of one shared
permutation (`config.batch_size` images per worker, W x that per step, the learning rate scaled by
the global batch), gradients are averaged by DDP, the teacher centre over the global batch, and the
stop decisions (budget, stability, a non-finite loss) are agreed, so the teachers stay identical.
With W = 1 nothing changes: the same steps, bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.augment import AugmentParams, MultiCrop, normalize
from quality_assets.ssl.backbones import recalibrate_batchnorm
from quality_assets.ssl.config import DinoConfig, precision_autocast, resolve_device, world_size
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, ImageSource, as_source, is_grayscale
from quality_assets.ssl.loss import DINOLoss, koleo_loss
from quality_assets.ssl.networks import MultiCropNet, build_networks

ProgressFn = Callable[[dict[str, Any]], None]
# Called at the end of every epoch with the epoch count reached and the teacher backbone, live and in
# train mode: copy it to keep it (e.g. `benchmarks/bench_ssl_epochs.py`'s snapshots).
EpochEndFn = Callable[[int, nn.Module], None]


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
    stopped_as_stable: bool = False
    stability: list[float] = field(default_factory=list)  # neighbour agreement at each stability check


def train_dino(
    images: torch.Tensor | ImageSource,
    config: DinoConfig,
    progress: ProgressFn | None = None,
    on_epoch_end: EpochEndFn | None = None,
) -> DinoResult:
    """Train DINO on `images` (uint8 `[N, 3, S, S]`, S == config.image_size; a tensor or an
    `ImageSource`, e.g. the disk-backed `MemmapImages`) and return the teacher backbone.

    The time budget (`config.time_budget_s`, measured from the call) is checked between steps; when it
    runs out, training stops after the current step and `stopped_by_budget` is set. On CPU with a fixed
    seed and thread count the result is bit-for-bit reproducible. `on_epoch_end` (if given) sees the
    teacher backbone after every full epoch, before the stability check; it must not change it.
    """
    t_start = time.monotonic()
    if images.dtype != torch.uint8 or len(images.shape) != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 [N,3,S,S], got {images.dtype} {tuple(images.shape)}")
    images = as_source(images)
    n = len(images)
    if n < 2:
        raise ValueError("need at least 2 images to train")
    dev = resolve_device(config.device)
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(config.seed)
            return _train(images, config, dev, progress, t_start, on_epoch_end)
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class _Schedules:
    """The run's length and its per-step values, indexed by the global step."""

    batch: int
    steps_per_epoch: int
    total_steps: int
    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    freeze_steps: int


@dataclass
class _Parts:
    """What one optimisation step works on, built once per run."""

    student: MultiCropNet
    teacher: MultiCropNet
    # The compiled wrappers when `config.compile`, else the networks themselves.
    run_student: nn.Module
    run_teacher: nn.Module
    aug: MultiCrop
    loss_fn: DINOLoss
    opt: torch.optim.Optimizer
    student_params: list[torch.Tensor]
    teacher_params: list[torch.Tensor]
    last_layer_params: list[torch.Tensor]
    memory_format: torch.memory_format


@dataclass
class _LoopOutcome:
    steps: int
    loss_curve: list[float]  # mean loss per epoch begun
    last_loss: float  # the last loss read back from the device
    stopped_by_budget: bool
    loop_s: float
    stopped_as_stable: bool = False
    stability: list[float] = field(default_factory=list)  # neighbour agreement at each check


def _train(
    images: ImageSource, config: DinoConfig, dev: torch.device,
    progress: ProgressFn | None, t_start: float, on_epoch_end: EpochEndFn | None = None,
) -> DinoResult:
    n = len(images)
    parts = _build_parts(images, config, dev)
    sched = _schedules(config, n, world_size())
    data = images.to(dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(config.seed)
    outcome = _run_loop(parts, config, dev, sched, data, gen, progress, t_start, on_epoch_end)
    return _finish(parts.teacher, images, data, config, dev, sched, outcome, progress, t_start)


def _build_parts(images: ImageSource, config: DinoConfig, dev: torch.device) -> _Parts:
    # Order matters for reproducibility: the networks draw their initial weights from the seeded
    # global generator first.
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
    if world_size() > 1:  # gradients averaged over the workers as they are computed
        from torch.nn.parallel import DistributedDataParallel

        run_student = DistributedDataParallel(run_student, device_ids=[dev.index] if dev.type == "cuda" else None)

    bf16 = config.precision == "bf16" or (config.precision == "auto" and dev.type == "cuda")
    aug = MultiCrop(
        global_size=config.global_crop_size, local_size=config.local_crop_size, n_local=config.n_local_crops,
        global_scale=tuple(config.global_crop_scale), local_scale=tuple(config.local_crop_scale),
        params=AugmentParams(**config.augment), grayscale_data=is_grayscale(images),
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

    opt_kwargs: dict[str, Any] = {"lr": 0.0, "weight_decay": 0.0}
    if dev.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW(_param_groups(student), **opt_kwargs)
    return _Parts(
        student=student, teacher=teacher, run_student=run_student, run_teacher=run_teacher, aug=aug,
        loss_fn=loss_fn, opt=opt,
        student_params=list(student.parameters()),
        teacher_params=list(teacher.parameters()),
        last_layer_params=[p for p in student.head.last_layer.parameters() if p.requires_grad],
        memory_format=memory_format,
    )


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    # Paper: no weight decay on biases and norm parameters (all 1-d tensors).
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _schedules(config: DinoConfig, n: int, workers: int = 1) -> _Schedules:
    # Per worker; a step trains on `workers` x `batch` images, and the lr follows that global batch.
    batch = min(config.batch_size, max(1, n // workers))
    steps_per_epoch = max(1, n // (batch * workers))  # drop the ragged last batch: keeps step shapes static
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    warm = int(round(config.warmup_epochs * steps_per_epoch))
    tt_warm = int(round(config.warmup_teacher_temp_epochs * steps_per_epoch))
    return _Schedules(
        batch=batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        lr=cosine_schedule(config.lr * batch * workers / 256.0, config.min_lr, total_steps, warm),
        weight_decay=cosine_schedule(config.weight_decay, config.weight_decay_end, total_steps),
        momentum=cosine_schedule(config.momentum_teacher, 1.0, total_steps),
        teacher_temp=np.concatenate([
            np.linspace(config.warmup_teacher_temp, config.teacher_temp, tt_warm),
            np.full(max(0, total_steps - tt_warm), config.teacher_temp),
        ]),
        freeze_steps=int(round(config.freeze_last_layer_epochs * steps_per_epoch)),
    )


def _run_loop(
    parts: _Parts, config: DinoConfig, dev: torch.device, sched: _Schedules, data: ImageSource,
    gen: torch.Generator, progress: ProgressFn | None, t_start: float,
    on_epoch_end: EpochEndFn | None = None,
) -> _LoopOutcome:
    n = len(data)
    batch, steps_per_epoch, total_steps = sched.batch, sched.steps_per_epoch, sched.total_steps
    workers = world_size()
    rank = torch.distributed.get_rank() if workers > 1 else 0
    # The permutation is drawn from `gen` alike on every worker; their crops must differ.
    crop_gen = gen if workers == 1 else torch.Generator(device=dev).manual_seed(config.seed + 7_919 * (rank + 1))
    loss_curve: list[float] = []
    epoch_losses: list[torch.Tensor] = []
    last_loss = float("nan")
    stopped = False
    step = 0
    t_loop = time.monotonic()
    reporter = _ProgressReporter(progress, t_loop, sched)
    monitor = _StabilityMonitor(config, data) if config.stop_when_stable else None
    stable = False
    # Reading the loss forces a host sync; on a GPU do it rarely so the launch queue stays full.
    sync_every = 1 if dev.type == "cpu" else 10
    while step < total_steps and not stopped and not stable:
        perm = torch.randperm(n, device=dev, generator=gen)
        for i in range(steps_per_epoch):
            if step >= total_steps:
                break
            first = (i * workers + rank) * batch
            glob, loc = _crops(parts, config, data, perm[first:first + batch], crop_gen)
            loss = _optimisation_step(parts, config, dev, sched, step, glob, loc)
            _ema_update(parts, float(sched.momentum[step]))
            epoch_losses.append(loss.detach())
            step += 1
            if step % sync_every == 0 or step == total_steps:
                loss_now, budget_spent = _agreed(loss.detach(), _budget_spent(config, t_start), workers)
                last_loss = _checked_loss(loss_now, step)
                if budget_spent:
                    stopped = step < total_steps
                    break
                reporter.step(step, last_loss, epoch_end=i == steps_per_epoch - 1)
        if epoch_losses:
            loss_curve.append(float(_agreed(torch.stack(epoch_losses).mean(), False, workers)[0]))
            epoch_losses = []
        if on_epoch_end is not None and not stopped and step % steps_per_epoch == 0:
            on_epoch_end(step // steps_per_epoch, parts.teacher.backbone)
        if monitor is not None and not stopped and step < total_steps:
            stable = monitor.check(parts.teacher.backbone, step / steps_per_epoch, dev)
            stable = bool(_agreed(torch.zeros((), device=dev), stable, workers)[1])

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return _LoopOutcome(step, loss_curve, last_loss, stopped, time.monotonic() - t_loop,
                        stopped_as_stable=stable, stability=monitor.history if monitor is not None else [])


class _StabilityMonitor:
    """Neighbour-list agreement of a fixed probe of images between successive checks of the teacher.

    The scores downstream read kNN lists, so the lists settling is the convergence that matters; the
    loss keeps drifting with the schedules long after. Cost per check: one forward pass over the
    probe and a probe x probe similarity matrix.
    """

    def __init__(self, config: DinoConfig, data: ImageSource) -> None:
        self.config = config
        n = len(data)
        gen = torch.Generator().manual_seed(config.seed + 7919)
        idx = torch.randperm(n, generator=gen)[:min(config.stability_probe, n)]
        self.probe = resize_images(data.take(idx), config.global_crop_size)
        self.k = max(1, min(config.stability_k, len(idx) - 1))
        self.previous: torch.Tensor | None = None
        self.history: list[float] = []
        self.streak = 0
        self.next_check = max(config.min_epochs, float(config.stability_every))

    def check(self, backbone: nn.Module, epoch: float, dev: torch.device) -> bool:
        if epoch + 1e-9 < self.next_check or self.probe.shape[0] < 3:
            return False
        self.next_check = epoch + self.config.stability_every
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad(), torch.autocast(dev.type, enabled=False):
                feats = []
                for start in range(0, self.probe.shape[0], 512):
                    x = self.probe[start:start + 512].to(dev).float().div_(255.0)
                    feats.append(F.normalize(backbone(normalize(x, DEFAULT_MEAN, DEFAULT_STD)).float(), dim=1))
                f = torch.cat(feats)
        finally:
            backbone.train(was_training)
        sims = f @ f.T
        sims.fill_diagonal_(-2.0)
        neighbours = sims.topk(self.k, dim=1).indices.sort(dim=1).values.cpu()
        if self.previous is None:
            self.previous = neighbours
            return False
        same = (neighbours[:, :, None] == self.previous[:, None, :]).any(dim=2).float().mean().item()
        self.previous = neighbours
        self.history.append(round(same, 4))
        self.streak = self.streak + 1 if same >= self.config.stability_threshold else 0
        return self.streak >= self.config.stability_patience


def _crops(
    parts: _Parts, config: DinoConfig, data: ImageSource, idx: torch.Tensor, gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Global and (if any) local views of the images `idx`, in the networks' memory format."""
    with torch.no_grad():
        glob, loc = parts.aug(data.take(idx).to(idx.device, non_blocking=True), gen)
        if config.channels_last:
            glob = glob.contiguous(memory_format=parts.memory_format)
            loc = loc.contiguous(memory_format=parts.memory_format) if loc is not None else None
    return glob, loc


def _optimisation_step(
    parts: _Parts, config: DinoConfig, dev: torch.device, sched: _Schedules, step: int,
    glob: torch.Tensor, loc: torch.Tensor | None,
) -> torch.Tensor:
    """One student update at step `step`; returns the loss (still on the device)."""
    for k, group in enumerate(parts.opt.param_groups):
        group["lr"] = float(sched.lr[step])
        if k == 0:
            group["weight_decay"] = float(sched.weight_decay[step])
    with precision_autocast(dev, config.precision):
        with torch.no_grad():
            t_out = parts.run_teacher(glob)[0]
        crops = (glob, loc) if loc is not None else (glob,)
        s_out, s_feat = parts.run_student(*crops)
    loss = parts.loss_fn(s_out, t_out, float(sched.teacher_temp[step]))
    if config.koleo_weight:
        loss = loss + config.koleo_weight * koleo_loss(s_feat)
    parts.opt.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad:
        torch.nn.utils.clip_grad_norm_(parts.student.parameters(), config.clip_grad)
    if step < sched.freeze_steps:
        # Paper: keep the prototypes fixed early on; it avoids a collapse the loss cannot undo.
        for p in parts.last_layer_params:
            p.grad = None
    parts.opt.step()
    return loss


def _agreed(loss: torch.Tensor, flag: bool, workers: int) -> tuple[torch.Tensor, bool]:
    """The loss averaged over the workers and the flag if any worker raised it (one all-reduce), so
    every worker takes the same decision; as given for a single worker."""
    if workers == 1:
        return loss, flag
    both = torch.stack([loss.float() / workers, torch.tensor(float(flag), device=loss.device)])
    torch.distributed.all_reduce(both)
    return both[0], bool(both[1] > 0)


def _ema_update(parts: _Parts, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student."""
    with torch.no_grad():
        torch._foreach_mul_(parts.teacher_params, momentum)
        torch._foreach_add_(parts.teacher_params, parts.student_params, alpha=1.0 - momentum)


def _checked_loss(loss: torch.Tensor, step: int) -> float:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"DINO loss became {value} at step {step}")
    return value


def _budget_spent(config: DinoConfig, t_start: float) -> bool:
    return config.time_budget_s is not None and time.monotonic() - t_start >= config.time_budget_s


class _ProgressReporter:
    """Calls `progress` at most once a second, and at the end of every epoch."""

    every_s = 1.0

    def __init__(self, progress: ProgressFn | None, t_loop: float, sched: _Schedules) -> None:
        self.progress = progress
        self.t_loop = t_loop
        self.last_report = t_loop
        self.sched = sched

    def step(self, step: int, loss: float, *, epoch_end: bool) -> None:
        now = time.monotonic()
        if self.progress is None or not (now - self.last_report >= self.every_s or epoch_end):
            return
        self.last_report = now
        elapsed = now - self.t_loop
        self.progress({
            "step": step, "steps_total": self.sched.total_steps, "epoch": step / self.sched.steps_per_epoch,
            "loss": loss, "lr": float(self.sched.lr[step - 1]), "elapsed_s": elapsed,
            "images_per_s": step * self.sched.batch * world_size() / max(elapsed, 1e-9),
        })


def _finish(
    teacher: MultiCropNet, images: ImageSource, data: ImageSource, config: DinoConfig, dev: torch.device,
    sched: _Schedules, outcome: _LoopOutcome, progress: ProgressFn | None, t_start: float,
) -> DinoResult:
    """Recalibrate the teacher backbone's BatchNorm on clean images and package the result."""
    step, loop_s, stopped = outcome.steps, outcome.loop_s, outcome.stopped_by_budget
    final_loss = outcome.loss_curve[-1] if outcome.loss_curve else outcome.last_loss
    backbone = teacher.backbone.to(memory_format=torch.contiguous_format)
    with torch.autocast(dev.type, enabled=False):
        recalibrated = recalibrate_batchnorm(backbone, _Resized(data, config.global_crop_size), device=dev)
    backbone = backbone.to("cpu").eval()
    result = DinoResult(
        backbone=backbone, config=config, epochs_completed=step / sched.steps_per_epoch, steps=step,
        final_loss=float(final_loss), loss_curve=outcome.loss_curve,
        images_per_s=step * sched.batch * world_size() / max(loop_s, 1e-9),
        stopped_by_budget=stopped, device=str(dev), seconds=time.monotonic() - t_start,
        n_samples_trained=len(images), grayscale_data=is_grayscale(images), batchnorm_recalibrated=recalibrated,
        stopped_as_stable=outcome.stopped_as_stable, stability=outcome.stability,
    )
    if progress is not None:
        progress({"step": step, "steps_total": sched.total_steps, "epoch": result.epochs_completed,
                  "loss": result.final_loss, "done": True, "stopped_by_budget": stopped,
                  "stopped_as_stable": outcome.stopped_as_stable,
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


class _Resized(ImageSource):
    """`source` at `size` px, resized a batch at a time: a disk-backed source is never resized whole."""

    def __init__(self, source: ImageSource, size: int) -> None:
        self.source = source
        self.size = size

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.source.shape[:2], self.size, self.size)

    def take(self, indices) -> torch.Tensor:
        return resize_images(self.source.take(indices), self.size)
