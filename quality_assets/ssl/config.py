"""What defines a DINO training run (`DinoConfig`), the defaults fitted to the data and hardware, and
how its device and precision fields are read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import torch

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
    # Stop by quality: every `stability_every` epochs from `min_epochs` on, the teacher embeds a fixed
    # probe of images and training stops once each probe image keeps at least `stability_threshold`
    # of its `stability_k` nearest neighbours from the previous check, `stability_patience` checks
    # in a row: the neighbour lists every score reads have stopped moving.
    stop_when_stable: bool = False
    min_epochs: float = 0.0
    stability_every: int = 2
    stability_probe: int = 1024
    stability_k: int = 10
    stability_threshold: float = 0.9
    stability_patience: int = 2

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


def world_size() -> int:
    """Workers of the data-parallel run this process belongs to (1 outside one)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def device_setting(env_name: str) -> str:
    """A device from the environment variable `env_name`: `auto` (the default: CUDA when torch sees
    it, else the CPU), `cpu`, `cuda` or `cuda:N`; anything else is refused by the variable's name."""
    value = os.environ.get(env_name, "").strip() or "auto"
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ValueError(f"{env_name} must be auto, cpu, cuda or cuda:N, not {value!r}")
    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def precision_autocast(dev: torch.device, precision: str):
    """The autocast context a `precision` field ("auto", "bf16", "fp32") asks for on `dev`."""
    if precision == "bf16" or (precision == "auto" and dev.type == "cuda"):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return torch.autocast(dev.type, enabled=False)


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

# The CPU schedule's bounds, in epochs; the stability stop ends most runs in between.
CPU_MAX_EPOCHS = 60.0
CPU_MIN_EPOCHS = 10.0


def default_config(image_size: int, n_images: int, device: str = "auto") -> DinoConfig:
    """Defaults that fit the data and the hardware.

    CPU, images up to 64 px: the small-image recipe (a ResNet-10 at half width, two global crops at the
    native size, channels-last), trained until the teacher's neighbour lists are stable (at least 10,
    at most 60 epochs; `n_images` does not enter), no time budget. CPU, larger images: the same network
    at a 64 px crop. CUDA, images of 96 px and up: the paper's recipe
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
    # The recipe, not the data's size, fixes the schedule: at most CPU_MAX_EPOCHS, stopped earlier
    # when the neighbour lists are stable (a data drop within the retrain policy then never changes
    # the model's identity). No stopwatch: a time budget is the user's choice (`time_budget_s`).
    cfg.epochs = CPU_MAX_EPOCHS
    cfg.min_epochs = CPU_MIN_EPOCHS
    cfg.stop_when_stable = True
    cfg.warmup_epochs = 1.0
    cfg.freeze_last_layer_epochs = 1.0
    cfg.device = "cpu"
    return cfg
