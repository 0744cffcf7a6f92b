"""quality_assets.scores helpers: rank_ascending, canonical_labels."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from quality_assets.scores import canonical_labels, rank_ascending


def test_rank_one_is_worst_and_nan_last() -> None:
    assert rank_ascending(np.array([0.5, np.nan, 0.1, 0.5, 0.9])).tolist() == [2, 5, 1, 3, 4]


def test_canonical_labels() -> None:
    out = canonical_labels(["b|a", None, float("nan"), 3, "a", "", "a|b|a", " x | y "])
    assert out.tolist() == ["a|b", None, None, "3", "a", None, "a|b", "x|y"]


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=False)), max_size=100))
def test_property_ranks_are_a_permutation_ordering_scores(values: list[float]) -> None:
    s = np.asarray(values, dtype=float)
    r = rank_ascending(s)
    assert sorted(r.tolist()) == list(range(1, s.size + 1))
    order = np.argsort(r)
    finite = s[order][~np.isnan(s[order])]
    assert np.all(np.diff(finite) >= 0)
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        assert np.isnan(s[order][-n_nan:]).all()
