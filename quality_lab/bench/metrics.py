"""The detection benchmark's metrics: hits of a ranking against the ground truth (other injected
kinds left out), AP, AUROC over the whole universe, recall, effort to find 90%, and the exact
expectations of a random order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from quality_assets.splits import EVAL_SPLITS
from quality_lab.bench.data import ISSUE_TYPES, BenchData
from quality_lab.bench.methods import MethodResult
from quality_lab.evaluation import ranking_metrics
from quality_lab.source_duplicates import SourceDuplicates


def _recall_at(hits: np.ndarray, n_pos: int, k: int) -> float:
    return float(hits[:k].sum() / n_pos) if n_pos else float("nan")


def _universe_auroc(hits: np.ndarray, n_pos: int, n_universe: int) -> float:
    """AUROC over the whole universe; unlisted items sit tied after the list."""
    n_neg = n_universe - n_pos
    if n_pos == 0 or n_neg <= 0:
        return float("nan")
    neg_before = np.cumsum(~hits)[hits]
    listed = float((n_neg - neg_before).sum())
    unlisted_pos = n_pos - int(hits.sum())
    unlisted_neg = n_neg - int((~hits).sum())
    return (listed + 0.5 * unlisted_pos * unlisted_neg) / (n_pos * n_neg)


def _universe_effort(hits: np.ndarray, n_pos: int, n_universe: int, fraction: float = 0.9) -> float:
    """Items reviewed to find ``fraction`` of the positives: the list in order, then the
    unlisted rest in random order (expected position)."""
    needed = int(math.ceil(fraction * n_pos))
    if needed == 0:
        return 0.0
    cum = np.cumsum(hits)
    reached = np.flatnonzero(cum >= needed)
    if reached.size:
        return float(reached[0] + 1)
    found, rest = int(hits.sum()), n_universe - len(hits)
    missing = n_pos - found
    return float(len(hits) + (needed - found) * (rest + 1) / (missing + 1))


def random_baseline(n_pos: int, n_universe: int) -> dict[str, float]:
    """Exact expectations of every metric for a uniformly random order of ``n_universe`` items.

    E[AP] = (H_N + (P-1)/(N-1) (N - H_N)) / N (H_N the N-th harmonic number);
    E[effort to the m-th positive] = m (N+1) / (P+1), m = ceil(0.9 P).
    """
    from scipy.special import digamma

    n, p = float(n_universe), float(n_pos)
    h = float(digamma(n + 1) + np.euler_gamma)
    ap = (h + (p - 1) / (n - 1) * (n - h)) / n if n > 1 else 1.0
    m = math.ceil(0.9 * p)
    return {
        "n_injected": int(n_pos), "n_ranked": int(n_universe), "n_universe": int(n_universe),
        "AP": ap, "AUROC": 0.5, "recall@n": p / n,
        "P@10": p / n, "P@50": p / n, "P@100": p / n,
        "R@10": min(10.0, n) / n, "R@50": min(50.0, n) / n, "R@100": min(100.0, n) / n,
        "effort90": m * (n + 1) / (p + 1),
    }


def _positions(truth: pd.DataFrame, n: int, column: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    pos = np.zeros(n, dtype=bool)
    pos[truth.loc[truth[column] == value, "index"].to_numpy()] = True
    other = np.zeros(n, dtype=bool)
    other[truth.loc[truth[column] != value, "index"].to_numpy()] = True
    return pos, other & ~pos


def _hits(ranking: Any, data: BenchData, issue_type: str, column: str, value: str,
          excluded: SourceDuplicates | None = None) -> tuple[np.ndarray, int, int]:
    """(hits of the kept ranking, number of positives, universe size after exclusions).

    ``excluded``: the source's own duplicates, left out as neither hits nor misses (pairs for
    near duplicates, eval images for leakage)."""
    n = data.n
    positive, other = _positions(data.truth, n, column, value)
    if issue_type == "near_duplicate":
        rows = data.truth[data.truth[column] == value]
        i, j = rows["index"].to_numpy(), rows["partner_index"].to_numpy()
        pos_keys = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
        a, b = (np.asarray(x, dtype=np.int64) for x in ranking)
        keep = ~(other[a] | other[b])
        keys = np.minimum(a[keep], b[keep]) * n + np.maximum(a[keep], b[keep])
        m = n - int(other.sum())
        universe = m * (m - 1) // 2
        if excluded is not None:
            dropped = excluded.pair_keys[~(other[excluded.pair_keys // n] | other[excluded.pair_keys % n])]
            keys = keys[~np.isin(keys, dropped)]
            universe -= int(dropped.size)
        return np.isin(keys, pos_keys), int(pos_keys.size), universe
    order = np.asarray(ranking, dtype=np.int64)
    drop = other.copy()
    if excluded is not None and issue_type == "leakage":
        drop[excluded.eval_images] = True
        drop &= ~positive
    kept = order[~drop[order]]
    if issue_type == "leakage":
        universe = np.isin(data.splits, EVAL_SPLITS) & ~drop
    else:
        universe = ~drop
    return positive[kept], int(positive.sum()), int(universe.sum())


def _metrics(hits: np.ndarray, n_pos: int, n_universe: int) -> dict[str, float]:
    out: dict[str, float] = dict(ranking_metrics(hits, n_pos))
    out["n_ranked"] = int(len(hits))
    out["n_universe"] = int(n_universe)
    out["AUROC"] = _universe_auroc(hits, n_pos, n_universe)
    for k in (10, 50, 100):
        out[f"R@{k}"] = _recall_at(hits, n_pos, k)
    out["effort90"] = _universe_effort(hits, n_pos, n_universe)
    return out


def _targets(data: BenchData, issue_type: str) -> list[tuple[str, str, str]]:
    """(kind label, truth column, value) for the whole issue type and each of its kinds."""
    t = data.truth
    if not (t["issue_type"] == issue_type).any():
        return []
    out = [("all", "issue_type", issue_type)]
    for kind in sorted(t.loc[t["issue_type"] == issue_type, "detail"].unique()):
        out.append((kind, "detail", kind))
    return out


PROTOCOL_TRUTH = "protocol"
WITHOUT_SOURCE_DUPLICATES = "without_source_duplicates"
# The issue types the source's own duplicates touch; the others read the same either way.
SOURCE_DUPLICATE_ISSUE_TYPES = ("near_duplicate", "leakage")


def _issue_types(excluded: SourceDuplicates | None) -> tuple[str, ...]:
    return SOURCE_DUPLICATE_ISSUE_TYPES if excluded is not None else ISSUE_TYPES


def _truth(excluded: SourceDuplicates | None) -> str:
    return PROTOCOL_TRUTH if excluded is None else WITHOUT_SOURCE_DUPLICATES


def evaluate_method(result: MethodResult, data: BenchData,
                    excluded: SourceDuplicates | None = None) -> list[dict[str, Any]]:
    """Metric rows of one method. With ``excluded``, the rows of the ``without_source_duplicates``
    truth (near duplicates and leakage only); without, the protocol's."""
    rows = []
    for issue_type in _issue_types(excluded):
        ranking = result.rankings.get(issue_type)
        if ranking is None:
            continue
        for kind, column, value in _targets(data, issue_type):
            hits, n_pos, n_universe = _hits(ranking, data, issue_type, column, value, excluded)
            rows.append({
                "dataset": data.name, "method": result.method, "features": result.features,
                "truth": _truth(excluded), "issue_type": issue_type, "kind": kind,
                **_metrics(hits, n_pos, n_universe),
                "seconds": round(result.seconds, 2),
            })
    return rows


def _random_rows(data: BenchData, excluded: SourceDuplicates | None = None) -> list[dict[str, Any]]:
    rows = []
    for issue_type in _issue_types(excluded):
        for kind, column, value in _targets(data, issue_type):
            empty = (np.zeros(0, np.int64), np.zeros(0, np.int64)) if issue_type == "near_duplicate" \
                else np.zeros(0, np.int64)
            _, n_pos, n_universe = _hits(empty, data, issue_type, column, value, excluded)
            rows.append({"dataset": data.name, "method": "random", "features": "-",
                         "truth": _truth(excluded), "issue_type": issue_type, "kind": kind,
                         **random_baseline(n_pos, n_universe), "seconds": 0.0})
    return rows
