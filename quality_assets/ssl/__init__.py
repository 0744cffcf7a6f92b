"""Self-supervised representation learning on the dataset itself (DINO), no labels, no outside weights.

Submodules: `data` (decode images once into a uint8 tensor cache), `augment` (batched multi-crop
augmentations as tensor ops), `backbones` (timm backbones sized for the data), `config` (DinoConfig
and the defaults), `networks` (DINO head, student/teacher), `loss` (DINO loss, KoLeo), `train` (the
training loop), `checkpoints` (save/load), `embed` (features of a trained backbone), `policy` (when to
retrain); `dino` re-exports the DINO names from one place.
"""

import os

# OpenMP threads that spin while waiting collapse when the cores are shared (measured: DINO training
# 4.4x slower with 2 spinning threads on 2 busy cores). libgomp reads this once, when torch loads, so
# it only takes effect here if nothing imported torch before; entry points should set it too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

if torch.version.cuda is not None or torch.version.hip is not None:
    # A GPU build of torch comes with a matching torchvision whose compiled ops register the
    # `torchvision::nms` schemas themselves. Loading it before the compat shim keeps the shim from
    # defining them first, which makes torchvision's own registration abort the process.
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (a broken torchvision is the shim's case)
        pass

# timm imports torchvision, which fails on the CPU torch build unless its op schemas exist first.
import quality_assets._torchvision_compat  # noqa: E402,F401
