"""Copy detection: a descriptor trained on the dataset for the copy invariances, dihedral matching,
and candidate scoring against each image's background similarity. Pure: no Dagster, no DuckDB."""

import quality_assets._torchvision_compat  # noqa: F401  (before torch/timm/torchvision load)

from quality_assets.copy_detection.calibration import copy_cutoff, copy_flags
from quality_assets.copy_detection.descriptor import (
    CopyDescriptor, CopyDescriptorConfig, default_config, embed_copies, input_size_for, load_copy_descriptor,
    train_copy_descriptor, warm_start_config, warm_started_descriptors,
)
from quality_assets.copy_detection.matching import copy_candidates, copy_pairs, pair_similarity

__all__ = [
    "CopyDescriptor", "CopyDescriptorConfig", "copy_candidates", "copy_cutoff", "copy_flags", "copy_pairs", "default_config",
    "embed_copies", "input_size_for", "load_copy_descriptor", "pair_similarity", "train_copy_descriptor",
    "warm_start_config", "warm_started_descriptors",
]
