"""SelfClean's automatic cut-off."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quality_assets.scores.cutoff import fraction_cut, per_sample_pair_cut


def _scores_with_tail(seed: int, n_clean: int = 5000, n_bad: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.beta(20, 4, size=n_clean)  # bulk around 0.83
    bad = rng.beta(2, 20, size=n_bad)  # injected low tail around 0.09
    s = np.concatenate([clean, bad])
    truth = np.r_[np.zeros(n_clean, bool), np.ones(n_bad, bool)]
    return s, truth


def test_flags_the_injected_low_tail_and_little_else() -> None:
    for seed in range(3):
        s, truth = _scores_with_tail(seed)
        threshold, mask = fraction_cut(s, alpha=0.1, q=0.05)
        assert mask[truth].mean() >= 0.97
        assert mask[~truth].mean() <= 0.01
        assert np.all(s[mask] < threshold) and np.all(s[~mask] >= threshold)


def test_clean_scores_flag_almost_nothing() -> None:
    s = np.random.default_rng(7).beta(20, 4, size=5000)
    _, mask = fraction_cut(s)
    assert mask.mean() <= 0.01


def test_degenerate_inputs() -> None:
    t, m = fraction_cut(np.full(100, 0.7))
    assert not m.any() and 0 < t < 1
    t, m = fraction_cut(np.array([0.0] * 5 + [1.0] * 95))  # exact 0 and 1
    assert np.isfinite(t) and m.sum() <= 5
    s = np.r_[np.random.default_rng(1).beta(20, 4, size=500), [np.nan, np.inf, -np.inf]]
    _, m = fraction_cut(s)
    assert not m[-3:].any()
    assert fraction_cut(np.array([np.nan, 0.5]))[1].tolist() == [False, False]
    # Heavy ties in the bulk (the two fit quantiles could coincide) and a tied low tail.
    bulk = np.random.default_rng(2).beta(20, 4, size=200)
    ties = np.r_[np.full(300, 0.9), np.full(10, 0.02), bulk]
    _, m = fraction_cut(ties)
    assert m[300:310].all() and m.sum() <= 12


def test_pair_scores_scale_the_cut_by_samples_over_pairs() -> None:
    s, _ = _scores_with_tail(0)
    _, per_sample = fraction_cut(s)
    _, per_pair = fraction_cut(s, n_samples=len(s) // 20)
    assert per_pair.sum() <= per_sample.sum()


def test_invalid_parameters() -> None:
    import pytest

    with pytest.raises(ValueError):
        fraction_cut(np.ones(10), alpha=0.7)
    with pytest.raises(ValueError):
        fraction_cut(np.ones(10), q=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(st.floats(min_value=0, max_value=1), st.just(float("nan"))),
        min_size=0,
        max_size=200,
    ),
    alpha=st.floats(min_value=0.01, max_value=0.4),
    q=st.floats(min_value=0.001, max_value=0.5),
)
def test_property_flagged_scores_are_below_unflagged(values: list[float], alpha: float, q: float) -> None:
    s = np.asarray(values, dtype=float)
    threshold, mask = fraction_cut(s, alpha=alpha, q=q)
    assert mask.shape == s.shape and np.isfinite(threshold)
    assert not mask[np.isnan(s)].any()
    finite = ~np.isnan(s)
    if mask.any() and (finite & ~mask).any():
        assert s[mask].max() <= s[finite & ~mask].min()


def test_per_sample_cut_finds_copies_and_few_samples_of_the_crowds() -> None:
    # Copy-free pairs whose scores depend on the sample: some images live in crowds of natural
    # variants (all their 10 pairs score low), which is what clip art and icon sets look like.
    rng = np.random.default_rng(0)
    n, k = 3000, 10
    crowd = rng.normal(0.0, 1.0, n)
    i = np.repeat(np.arange(n), k)
    j = (i + rng.integers(1, n, i.size)) % n
    logits = crowd[i] + crowd[j] + rng.normal(0.0, 0.7, i.size)
    copies = np.arange(0, 60, 2)
    i = np.concatenate([i, copies])
    j = np.concatenate([j, copies + 1])
    logits = np.concatenate([logits, np.full(copies.size, -9.0)])
    scores = 1.0 / (1.0 + np.exp(-logits))
    threshold, per_sample = per_sample_pair_cut(scores, i, j, n)
    assert per_sample[-copies.size:].all()
    flagged_samples = np.unique(np.concatenate([i[per_sample], j[per_sample]]))
    natural = np.setdiff1d(flagged_samples, np.concatenate([copies, copies + 1]))
    assert natural.size <= 0.01 * n
    assert 0.0 < threshold < 1.0


def test_per_sample_cut_ignores_nan_pairs_and_empty_input() -> None:
    scores = np.array([0.01, np.nan, 0.5, 0.6, 0.55, 0.52, 0.58])
    i = np.array([0, 1, 2, 3, 4, 5, 6])
    j = np.array([7, 8, 9, 10, 11, 12, 13])
    _, mask = per_sample_pair_cut(scores, i, j, 14)
    assert not mask[1]
    threshold, mask = per_sample_pair_cut(np.zeros(0), np.zeros(0, int), np.zeros(0, int), 5)
    assert mask.size == 0
