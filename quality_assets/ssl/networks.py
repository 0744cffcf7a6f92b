"""The DINO networks: the projection head, a backbone + head over multi-crop views, and the student /
teacher pair built from a `DinoConfig`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from quality_assets.ssl.backbones import create_backbone, embedding_dim
from quality_assets.ssl.config import DinoConfig


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
