"""Make `import torchvision` work on the CPU torch build this project pins.

The registry's only torchvision 0.28.0 wheel is a CUDA build. Its compiled `_C` extension cannot load
against CPU torch, and torchvision's `_meta_registrations` then fails at import because the
`torchvision::nms` / `torchvision::qnms` op schemas were never defined. timm needs torchvision's
Python parts (transforms, `ops.misc`), so we define those two schemas ourselves before torchvision
is first imported. The compiled ops (nms, roi_align, deform_conv, `torchvision.io` decoding) remain
unavailable; this project decodes with PIL and never calls them.

On a torch that already has the schemas (a CUDA torch with a matching torchvision), nothing is
defined. Import this module before anything that imports torchvision or timm.
"""

from __future__ import annotations

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# The Library object must stay referenced for the schema definitions to stay registered.
_library: torch.library.Library | None = None


def _has_op(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_importable() -> None:
    global _library
    if torch.version.cuda is not None:
        # A CUDA torch loads torchvision's compiled ops itself; defining the schemas first would make
        # torchvision's own registration fail as a duplicate.
        return
    missing = [name for name in _SCHEMAS if not _has_op(name)]
    if not missing:
        return
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
    for name in missing:
        _library.define(_SCHEMAS[name])


ensure_torchvision_importable()
