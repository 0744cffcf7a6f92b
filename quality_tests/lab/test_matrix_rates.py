"""The matrix's accounting of the sources' own repeats (one picture under two names)."""

from __future__ import annotations

import numpy as np

from quality_lab.matrix import SOURCE_REPEAT_RMS, source_repeat_groups


def test_same_pictures_are_grouped_and_variants_are_not():
    rng = np.random.default_rng(0)
    base = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    nudged = np.clip(base[0].astype(int) + rng.integers(-4, 5, base[0].shape), 0, 255).astype(np.uint8)
    variant = base[1].copy()
    variant[:8] = 255 - variant[:8]                      # half the picture redrawn: a variant
    mirrored = np.ascontiguousarray(base[2][:, ::-1])    # same orientation only: not grouped
    images = base + [nudged, variant, mirrored, base[3].copy()]
    groups = source_repeat_groups(images)
    assert groups[0] >= 0 and groups[0] == groups[6]      # imperceptible change
    assert groups[3] >= 0 and groups[3] == groups[9]      # identical
    assert groups[0] != groups[3]
    assert (groups[[1, 2, 4, 5, 7, 8]] == -1).all()
    assert SOURCE_REPEAT_RMS < 10


def test_mixed_shapes_or_tiny_sets_group_nothing():
    a = np.zeros((8, 8), dtype=np.uint8)
    assert source_repeat_groups([a]).tolist() == [-1]
    assert source_repeat_groups([a, np.zeros((4, 4), dtype=np.uint8)]).tolist() == [-1, -1]
