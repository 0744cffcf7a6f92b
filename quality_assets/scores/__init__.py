"""Issue scores on the shared kNN graph, one module per issue type.

Every score follows one convention: position i = sample i (pairs carry two positions), values
in [0, 1], lower = more likely an issue, rank 1 = worst. The Dagster layer maps positions to
sample ids; nothing here knows about ids, DuckDB or Dagster.

| module | what |
|---|---|
| near_duplicate | candidate pairs (graph edges, hashes, stored thumbnail candidates) |
| pair_evidence | the combined embedding score, the pixel verifiers' evidence, their fusion |
| duplicate_groups | pair flags, per-sample duplicate score, groups, label conflicts |
| pixel_copies | the pixel verifiers (`aligned`, `agreement`) and the ratio to the next best |
| merge_tree | single linkage from the kNN graph (the tree LAD and the isolation terms walk) |
| off_topic | LAD, mean kNN distance, the two-view evidence, the property-view fusion |
| label_error | intra/extra distance ratio, neighbour vote, class confusion |
| confident_learning | out-of-fold LDA probabilities and cleanlab's label quality (per tag for multi-label data) |
| multi_label | multi-label data one tag at a time: tag matrix, per-tag ratio and vote, fused errors, per-tag confusion |
| leakage | eval samples with a near duplicate in train |
| image_properties | dark, light, blurry, low information, odd size/aspect, grayscale, exact duplicate |
| data_value | KNN-Shapley of train samples against the eval samples |
| cutoff | SelfClean's automatic cut-off (`fraction_cut`) |
| component_policies | fastdup's component cleaning: bad components by label variance, label pruning, intersection, image pruning |
| ontology | top given -> suggested corrections and class merges from symmetric confusion |
| drop_shift | a new drop against the data before it: new labels, class balance, foreign domain |

The issue types that use them live in `quality_assets/issue_types/`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["canonical_labels", "rank_ascending"]


def rank_ascending(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..N with 1 = lowest (worst) score; NaN ranks after every number.

    Ties keep position order (a stable sort), so every rank is distinct and repeatable.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(s, kind="stable")  # numpy sorts NaN last
    ranks = np.empty(s.size, dtype=np.int64)
    ranks[order] = np.arange(1, s.size + 1, dtype=np.int64)
    return ranks


def _canonical_one(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    if "|" not in text:
        return text if text else None
    parts = sorted({p.strip() for p in text.split("|") if p.strip()})
    return "|".join(parts) if parts else None


def canonical_labels(labels: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Labels as comparable strings; missing (None, NaN, NA, "") -> None.

    A multi-label `b|a` becomes its sorted, deduplicated set `a|b`, so label sets compare equal
    regardless of order. Non-string labels are compared by their str().
    """
    codes, uniques = pd.factorize(pd.Series(labels, dtype=object), use_na_sentinel=True)
    canon_uniques = np.asarray([_canonical_one(u) for u in uniques] + [None], dtype=object)
    return canon_uniques[codes]  # code -1 (missing) picks the trailing None
