"""The benchmark scripts' synthetic data equals the test helpers' (same formulas, same seeds), so
figures published from either stay comparable."""

from __future__ import annotations

import numpy as np

from quality_lab import synthetic_vectors as lab
from quality_tests.scores import dense_reference as ref


def test_same_vectors_copies_and_hashes():
    a, ca = lab.clustered_vectors(300, 16, n_clusters=4, seed=3)
    b, cb = ref.clustered_vectors(300, 16, n_clusters=4, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    va, ha, pa = lab.twin_copies(seed=1, n=300, n_copies=10)
    vb, hb, pb = ref.twin_copies(seed=1, n=300, n_copies=10)
    np.testing.assert_allclose(va, vb, rtol=1e-6)
    np.testing.assert_array_equal(ha, hb)
    assert pa == pb
    da, qa = lab.density_copies(seed=2, n=300, n_copies=10)
    db, qb = ref.density_copies(seed=2, n=300, n_copies=10)
    np.testing.assert_allclose(da, db, rtol=1e-6)
    assert qa == qb
    pairs = sorted(pa)
    i, j = np.asarray([p[0] for p in pairs]), np.asarray([p[1] for p in pairs])
    assert lab.precision_at_n(i, j, pa) == 1.0 == ref.precision_at_n(i, j, pa)
