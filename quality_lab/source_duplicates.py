"""The source's own duplicates: pictures a dataset already holds twice, which the protocol's ground
truth does not list.

Icon themes and clip-art sets ship one picture under several names (a mirrored arrow, the same
drawing with a one-pixel overlay). The SelfClean protocol lists only the copies it injects, so a
detector that ranks such a real pair above an injected copy is charged a false positive, and an
eval image whose twin sits in train is a real leak that counts against every method that finds it.
On the colour sets this, not the detector, held leakage AP at 0.80 (docs/benchmarks/matrix.md,
"The colour sets' own duplicates").

The exclusion is found independently of every detector: 32 x 32 grey thumbnails whose RMS difference
under the best of the 8 dihedral transforms is at most ``SOURCE_DUPLICATE_RMS`` (of the grey range),
over every pair (faiss range search). An injected copy stands for its source (its *root*), so a copy
and its source's twin are a pair of the same picture too. Such pairs, and eval images with a twin
in train, are left out of the rankings as neither hits nor misses, for every method alike; the
injected pairs themselves always count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from quality_assets.splits import EVAL_SPLITS

__all__ = ["SOURCE_DUPLICATE_RMS", "SourceDuplicates", "dihedral_twin_pairs", "pairs_within", "source_duplicates"]

# The colour sets' repeats of one picture sit at RMS 0.000-0.009; MNIST's own images (mnist s0)
# make no pair at 0.03 and their first natural twins at 0.05 (docs/benchmarks/matrix.md).
SOURCE_DUPLICATE_RMS = 0.03
THUMBNAIL_SIDE = 32


@dataclass(frozen=True)
class SourceDuplicates:
    """What the ``without_source_duplicates`` truth leaves out of a cell's rankings."""

    pair_keys: np.ndarray        # min(a, b) * n + max(a, b) of pairs showing one source picture
    eval_images: np.ndarray      # positions of eval images whose picture has a twin in train
    n: int

    @property
    def n_pairs(self) -> int:
        return int(self.pair_keys.size)


def _grey_thumbnails(images: Sequence[np.ndarray], side: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(np.asarray(im)).convert("L").resize((side, side), Image.BILINEAR),
                                np.float32) / 255.0 for im in images])


def pairs_within(base: np.ndarray, variants: Sequence[np.ndarray], rms: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a < b: every pair whose rows differ by at most RMS ``rms`` (per value), row ``a``
    of ``base`` against row ``b`` of any of ``variants`` (transformed copies of ``base``, [n, d]
    each), by one faiss range search per variant."""
    import faiss

    n = len(base)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    base = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    radius = float(rms) ** 2 * base.shape[1]
    found_a, found_b = [], []
    for variant in variants:
        lims, _, hits = index.range_search(np.ascontiguousarray(variant, dtype=np.float32), radius)
        found_a.append(np.repeat(np.arange(n, dtype=np.int64), np.diff(lims).astype(np.int64)))
        found_b.append(hits.astype(np.int64))
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    keep = a != b
    keys = np.unique(np.minimum(a[keep], b[keep]) * n + np.maximum(a[keep], b[keep]))
    return keys // n, keys % n


def dihedral_twin_pairs(images: Sequence[np.ndarray], rms: float = SOURCE_DUPLICATE_RMS,
                        side: int = THUMBNAIL_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a < b: every pair whose grey thumbnails differ by at most ``rms`` under the best
    of the 8 dihedral transforms."""
    n = len(images)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    thumbs = _grey_thumbnails(images, side)
    turned = [np.rot90(thumbs, k % 4, axes=(1, 2)) for k in range(8)]
    moved = [(t[:, :, ::-1] if k >= 4 else t).reshape(n, -1) for k, t in enumerate(turned)]
    return pairs_within(thumbs.reshape(n, -1), moved, rms)


def source_duplicates(images: Sequence[np.ndarray], splits: np.ndarray, truth: pd.DataFrame,
                      rms: float = SOURCE_DUPLICATE_RMS) -> SourceDuplicates:
    """The pairs and eval images of a contaminated cell that show a picture its source held twice.

    ``truth`` is the protocol's ground truth (``index``, ``partner_index``): an injected copy's root
    is its source, every other image is its own root.
    """
    n = len(images)
    splits = np.asarray(splits)
    root = np.arange(n, dtype=np.int64)
    copies = truth[truth["partner_index"] >= 0]
    root[copies["index"].to_numpy(dtype=np.int64)] = copies["partner_index"].to_numpy(dtype=np.int64)
    injected_pairs = np.unique(np.minimum(copies["index"], copies["partner_index"]).to_numpy(np.int64) * n
                               + np.maximum(copies["index"], copies["partner_index"]).to_numpy(np.int64))
    twin_a, twin_b = dihedral_twin_pairs(images, rms)
    # Images sharing one root (a source and its copies), then every pair of members of twin roots.
    members = pd.Series(np.arange(n, dtype=np.int64)).groupby(root).agg(list)
    same_root = [(x, y) for group in members if len(group) > 1 for x in group for y in group if x < y]
    twin = [(x, y) for ra, rb in zip(root[twin_a], root[twin_b]) for x in members[ra] for y in members[rb]
            if x != y]
    pairs = np.asarray(same_root + twin, dtype=np.int64).reshape(-1, 2)
    keys = np.unique(pairs.min(1) * n + pairs.max(1))
    keys = keys[~np.isin(keys, injected_pairs)]

    # Eval images whose picture (their root's) has a twin or a copy of it in train.
    train = splits == "train"
    ends = np.concatenate([pairs, pairs[:, ::-1]])
    leaked = ends[np.isin(splits[ends[:, 0]], EVAL_SPLITS) & train[ends[:, 1]], 0]
    listed_leaks = truth.loc[truth["issue_type"] == "leakage", "index"].to_numpy(dtype=np.int64)
    eval_images = np.setdiff1d(np.unique(leaked), listed_leaks)
    return SourceDuplicates(pair_keys=keys, eval_images=eval_images, n=n)
