"""SelfClean's automatic cut-off: which low scores are issues, without a hand-set threshold.

Scores are logit-transformed (after clipping to [1e-6, 1 - 1e-6] so exact 0 and 1 stay finite).
The bulk of clean samples is modelled by a logistic distribution fitted through two low
quantiles of the logits, p1 = alpha and p2 = sqrt(alpha / 2): with contamination at most
alpha, both quantiles still describe clean samples. The cut-off is the fitted distribution's
quantile at probability q * alpha * N / M (q = significance; N / M = 1 for per-sample scores,
N samples / M pairs for pair scores, passed as `n_samples`); scores strictly below it are
issues. That flags the low tail that the clean distribution does not explain and little else.

Robustness: NaN/inf scores are ignored (never flagged). When the two quantiles coincide (ties,
all-equal scores) the fit falls back to the quantiles alpha and 0.5; if those coincide too,
the cut-off is the alpha quantile itself and only scores strictly below it are flagged, so a
constant score array flags nothing.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, logit
from scipy.stats import logistic

__all__ = ["fraction_cut", "per_sample_pair_cut"]

_CLIP = 1e-6


def _fit(x: np.ndarray, p1: float, p2: float) -> tuple[float, float] | None:
    x1, x2 = np.quantile(x, [p1, p2])
    y1, y2 = logistic.ppf(p1), logistic.ppf(p2)
    if not (x2 > x1) or y1 == y2:
        return None
    scale = (x1 - x2) / (y1 - y2)
    loc = (y1 * x2 - y2 * x1) / (y1 - y2)
    return float(scale), float(loc)


def fraction_cut(
    scores: np.ndarray,
    alpha: float = 0.1,
    q: float = 0.05,
    *,
    n_samples: int | None = None,
) -> tuple[float, np.ndarray]:
    """(threshold in score space, is_issue mask) for scores in [0, 1] with lower = worse.

    alpha: contamination guess (upper bound on the share of issues), in (0, 0.5).
    q: significance level of the cut.
    n_samples: for pair scores, the number of samples N (the cut probability is scaled by N/M).
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    finite = np.isfinite(s)
    mask = np.zeros(s.size, dtype=bool)
    if finite.sum() < 2:
        return 0.0, mask
    x = logit(np.clip(s[finite], _CLIP, 1.0 - _CLIP))
    m = x.size
    prob = q * alpha * (n_samples / m if n_samples else 1.0)
    prob = min(max(prob, 1e-12), 0.5)
    fitted = _fit(x, alpha, math.sqrt(0.5 * alpha)) or _fit(x, alpha, 0.5)
    if fitted is None:
        cut = float(np.quantile(x, alpha))
    else:
        scale, loc = fitted
        cut = float(logistic.ppf(prob) * scale + loc)
    mask[finite] = x < cut
    return float(expit(cut)), mask


def per_sample_pair_cut(
    pair_scores: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    n_samples: int,
    alpha: float = 0.1,
    q: float = 0.05,
) -> tuple[float, np.ndarray]:
    """(threshold, is_issue mask over pairs) for pair scores in [0, 1], lower = worse, calibrated
    per sample rather than per pair.

    Each sample's best (lowest) pair score is its evidence; in data without issues those values
    are the null of what its natural neighbours reach, and :func:`fraction_cut` on them gives the
    threshold that pairs must fall below. Why not the pair cut with N / M scaling: one image's
    pairs share its neighbourhood, so they are far from independent, and in sets full of natural
    variants (clip art, icon themes) the pair fit flagged 6-12% of the samples of copy-free data
    (docs/benchmarks/matrix.md, clean-data rates). Samples in no pair with a finite score do not
    enter the fit. NaN pair scores are never flagged.
    """
    s = np.asarray(pair_scores, dtype=np.float64).ravel()
    finite = np.isfinite(s)
    best = np.full(int(n_samples), np.inf)
    ii = np.asarray(i, dtype=np.int64)[finite]
    jj = np.asarray(j, dtype=np.int64)[finite]
    np.minimum.at(best, ii, s[finite])
    np.minimum.at(best, jj, s[finite])
    best[~np.isfinite(best)] = np.nan
    threshold, sample_flags = fraction_cut(best, alpha=alpha, q=q)
    if not sample_flags.any():
        return threshold, np.zeros(s.size, dtype=bool)
    with np.errstate(invalid="ignore"):
        return threshold, finite & (s < threshold)

