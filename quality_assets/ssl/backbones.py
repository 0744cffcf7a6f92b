"""timm backbones sized for the data, always created with `pretrained=False, num_classes=0`.

Named presets re-configure timm models for small images (a ResNet-18 layout with narrower/fewer
stages, ViTs with a 4 px patch instead of 16 px); any other timm model name is passed through
unchanged. ViTs get `dynamic_img_size=True` so one model takes both the global and the (smaller)
local crops. `resnet10_half` is the small-image default: at 28 px the ViT presets did not learn
within a CPU budget (docs/benchmarks/ssl.md); they stay for GPU runs and experiments.
"""

from __future__ import annotations

from typing import Any

import quality_assets.ssl  # noqa: F401  (torchvision/compat-shim order, before timm)
import timm
import torch
import torch.nn as nn

from quality_assets.ssl.augment import normalize
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD, ImageSource, as_source

# name -> (timm model, kwargs).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # ViT-tiny width/depth on 4 px patches: 49 tokens at 28 px.
    "vit_tiny_p4": ("vit_tiny_patch16_224", dict(patch_size=4)),
    "vit_mini_p4": ("vit_tiny_patch16_224", dict(patch_size=4, embed_dim=128, depth=6, num_heads=4)),
    "vit_micro_p4": ("vit_tiny_patch16_224", dict(patch_size=4, embed_dim=96, depth=4, num_heads=3)),
    "vit_tiny_p8": ("vit_tiny_patch16_224", dict(patch_size=8)),
    "vit_tiny_p16": ("vit_tiny_patch16_224", dict()),
    # ResNet-18 layout with fewer channels / blocks. avg_down gives the stride-2 shortcuts the whole
    # receptive field (a strided 1x1 conv sees only every other pixel: on small images the untrained
    # net then reads a corner of the image only), and without zero_init_last the residual branches
    # carry signal from the first step; both matter for a self-distillation target at step 0.
    "resnet18_half": ("resnet18", dict(channels=(32, 64, 128, 256), avg_down=True, zero_init_last=False)),
    "resnet18_quarter": ("resnet18", dict(channels=(16, 32, 64, 128), avg_down=True, zero_init_last=False)),
    "resnet10_half": (
        "resnet18", dict(layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), avg_down=True, zero_init_last=False)
    ),
    # Same without the stem max-pool: stride 2 instead of 4 before the first stage (28 px -> 14x14).
    "resnet10_half_s2": (
        "resnet18",
        dict(layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), avg_down=True, zero_init_last=False, stem_pool=False),
    ),
}


def is_vit(arch: str) -> bool:
    """True when `arch` (a preset or timm name) is a VisionTransformer."""
    name = PRESETS[arch][0] if arch in PRESETS else arch
    return name.startswith(("vit_", "deit_"))


def create_backbone(arch: str, image_size: int, arch_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Create an untrained backbone (`num_classes=0`: forward returns pooled features).

    `image_size` is the global crop size; ViTs size their position embedding to it and interpolate it
    for other input sizes. `arch_kwargs` override the preset's / model's constructor arguments.
    """
    timm_name, kwargs = PRESETS.get(arch, (arch, {}))
    kwargs = {**kwargs, **(arch_kwargs or {})}
    stem_pool = kwargs.pop("stem_pool", True)
    if is_vit(arch):
        kwargs.setdefault("img_size", image_size)
        kwargs.setdefault("dynamic_img_size", True)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    if not stem_pool:
        if not hasattr(model, "maxpool"):
            raise ValueError(f"stem_pool=False needs a model with a stem max-pool, {timm_name} has none")
        model.maxpool = nn.Identity()
    return model


def embedding_dim(model: nn.Module) -> int:
    """Feature width of a `num_classes=0` timm model."""
    return int(model.num_features)


def has_batchnorm(model: nn.Module) -> bool:
    """True when the model holds BatchNorm layers (whose running statistics matter at eval time)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    images: torch.Tensor | ImageSource,
    mean: tuple[float, ...] = DEFAULT_MEAN,
    std: tuple[float, ...] = DEFAULT_STD,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> bool:
    """Re-estimate BatchNorm running statistics on clean uint8 images `[N, 3, S, S]` ("precise BN"),
    a tensor or an `ImageSource` (read a batch at a time).

    During DINO the teacher's statistics come from augmented crops, and an untrained model's are the
    initial (0, 1); both misdescribe the clean full images that get embedded. A cumulative average
    over one pass fixes that. Returns False (and does nothing) for models without BatchNorm.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
    model.to(device).train()
    images = as_source(images)
    for start in range(0, len(images), batch_size):
        x = images.take(slice(start, start + batch_size)).to(device).float().div_(255.0)
        if x.shape[0] < 2:
            continue  # BatchNorm cannot take a batch of one in train mode
        model(normalize(x, mean, std))
    for bn, mom in zip(bns, momenta):
        bn.momentum = mom
    model.train(was_training)
    return True
