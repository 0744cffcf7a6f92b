"""Copy flags: which candidate pairs are reported as copies (the ranking stays primary).

Calibrated on the data itself, per sample: every image's best (lowest) pair score is the sample's
copy evidence, and in a dataset without copies those N values are the null distribution of what
natural neighbours achieve. SelfClean's fraction cut (:func:`quality_assets.scores.cutoff.
fraction_cut`, through :func:`~quality_assets.scores.cutoff.per_sample_pair_cut`, alpha = 0.1, q = 0.05) fits a logistic distribution to the low quantiles of their
logits and flags what falls below its q * alpha = 0.5% quantile. Copies are at most a few per cent
of a dataset, so the fitted quantiles (10% and 22%) still describe natural neighbours, and the cut
flags the samples that the natural-neighbour distribution does not explain. A pair is flagged when
its score is below that cut.

Why per sample and not per pair (the service's pair cut, with N / M scaling): pairs of one image
are dependent (its 10 rows share its neighbourhood), and in clip art full of real variants the
pair-level fit flagged 4.0% of the samples of a copy-free set against 0.24% per sample
(docs/benchmarks/copy_detection.md).

Exact file / pixel hash matches are always flagged, whatever the cut: a byte- or pixel-identical
copy is never a natural twin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quality_assets.scores.cutoff import per_sample_pair_cut

EXACT_EVIDENCE = ("file_sha256", "pixel_sha256")


def copy_cutoff(pairs: pd.DataFrame, n_samples: int, *, alpha: float = 0.1, q: float = 0.05) -> float:
    """The pair-score threshold: the fraction cut of the per-sample best scores (see module doc)."""
    if len(pairs) == 0:
        return 0.0
    threshold, _ = per_sample_pair_cut(pairs["score"].to_numpy(np.float64), pairs["i"].to_numpy(np.int64),
                                       pairs["j"].to_numpy(np.int64), n_samples, alpha=alpha, q=q)
    return float(threshold)


def copy_flags(pairs: pd.DataFrame, n_samples: int, *, alpha: float = 0.1, q: float = 0.05) -> np.ndarray:
    """bool mask over ``pairs`` rows (from :func:`~quality_assets.copy_detection.copy_pairs`)."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    threshold = copy_cutoff(pairs, n_samples, alpha=alpha, q=q)
    flagged = pairs["score"].to_numpy(np.float64) < threshold
    evidence = pairs["evidence"]
    cats = evidence.cat.categories.astype(str) if isinstance(evidence.dtype, pd.CategoricalDtype) else None
    if cats is not None:
        hit = np.asarray([any(e in c for e in EXACT_EVIDENCE) for c in cats], dtype=bool)
        codes = evidence.cat.codes.to_numpy()
        exact = np.where(codes >= 0, hit[np.maximum(codes, 0)], False)
    else:
        exact = evidence.astype(str).str.contains("|".join(EXACT_EVIDENCE)).to_numpy()
    return flagged | exact
