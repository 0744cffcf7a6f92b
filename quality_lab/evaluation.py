"""Ranking metrics against known contamination: what the demo and the benchmark report.

Each issue type is judged the way SelfClean judges it: on its own ranking, with samples that carry
a *different* injected issue left out, so one contamination kind does not count against another.
Near duplicates are judged at pair level (the injected copy and its source), leakage on eval samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def average_precision(ranked_positive: np.ndarray, n_positives: int) -> float:
    """AP of a ranking (best first); positives never retrieved count as missed."""
    if n_positives == 0:
        return float("nan")
    hits = np.asarray(ranked_positive, dtype=bool)
    cumulative = np.cumsum(hits)
    precision_at_hit = cumulative[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hit.sum() / n_positives)


def recall_at(ranked_positive: np.ndarray, n_positives: int, k: int) -> float:
    if n_positives == 0:
        return float("nan")
    return float(np.asarray(ranked_positive[:k], dtype=bool).sum() / n_positives)


def precision_at(ranked_positive: np.ndarray, k: int) -> float:
    top = np.asarray(ranked_positive[:k], dtype=bool)
    return float(top.mean()) if len(top) else float("nan")


def auroc(ranked_positive: np.ndarray) -> float:
    """AUROC of a ranking with best first (Mann-Whitney on positions)."""
    hits = np.asarray(ranked_positive, dtype=bool)
    n_pos, n_neg = hits.sum(), (~hits).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Each positive beats the negatives ranked after it.
    negatives_after = n_neg - np.cumsum(~hits)
    return float(negatives_after[hits].sum() / (n_pos * n_neg))


def effort_to_find(ranked_positive: np.ndarray, n_positives: int, fraction: float = 0.9) -> float:
    """Items a person inspects, in ranked order, to find `fraction` of the positives (inf if never)."""
    needed = int(np.ceil(fraction * n_positives))
    if needed == 0:
        return 0.0
    cumulative = np.cumsum(np.asarray(ranked_positive, dtype=bool))
    reached = np.flatnonzero(cumulative >= needed)
    return float(reached[0] + 1) if len(reached) else float("inf")


def ranking_metrics(ranked_positive: np.ndarray, n_positives: int) -> dict[str, float]:
    return {
        "n_injected": int(n_positives),
        "AP": average_precision(ranked_positive, n_positives),
        "AUROC": auroc(ranked_positive),
        "recall@n": recall_at(ranked_positive, n_positives, n_positives),
        "P@10": precision_at(ranked_positive, 10),
        "P@50": precision_at(ranked_positive, 50),
        "P@100": precision_at(ranked_positive, 100),
        "effort90": effort_to_find(ranked_positive, n_positives, 0.9),
    }


def evaluate_sample_ranking(ranking: pd.DataFrame, truth: pd.DataFrame, issue_type: str) -> dict[str, float]:
    """`ranking`: path column in ranked order (best first). `truth`: ground-truth rows (all types)."""
    positives = set(truth.loc[truth.issue_type == issue_type, "path"])
    others = set(truth.loc[truth.issue_type != issue_type, "path"]) - positives
    kept = ranking[~ranking.path.isin(others)]
    hits = kept.path.isin(positives).to_numpy()
    return ranking_metrics(hits, len(positives))


def evaluate_pair_ranking(pairs: pd.DataFrame, truth: pd.DataFrame, issue_type: str = "near_duplicate") -> dict[str, float]:
    """`pairs`: path_a, path_b in ranked order. Positives: (path, partner_path) of the issue type."""
    rows = truth[truth.issue_type == issue_type]
    positives = {frozenset((a, b)) for a, b in zip(rows.path, rows.partner_path)}
    others = set(truth.loc[truth.issue_type != issue_type, "path"])
    keep = ~(pairs.path_a.isin(others) | pairs.path_b.isin(others))
    kept = pairs[keep]
    hits = np.fromiter((frozenset((a, b)) in positives for a, b in zip(kept.path_a, kept.path_b)),
                       dtype=bool, count=len(kept))
    return ranking_metrics(hits, len(positives))


def detection_report(store, truth_path: Path) -> pd.DataFrame:
    """Per issue type: how much of the injected contamination the latest score run found."""
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
    rows = []
    for issue_type in ("off_topic", "label_error", "leakage"):
        if not (truth.issue_type == issue_type).any():
            continue
        ranking = store.query("issue_ranking", issue_type=issue_type)
        if ranking.empty:
            continue
        rows.append({"issue_type": issue_type, **evaluate_sample_ranking(ranking, truth, issue_type)})
    if (truth.issue_type == "near_duplicate").any():
        pairs = store.query("duplicate_pair_ranking")
        if len(pairs):
            rows.append({"issue_type": "near_duplicate (pairs)", **evaluate_pair_ranking(pairs, truth)})
    report = pd.DataFrame(rows)
    if len(report):
        for column in ("AP", "AUROC", "recall@n", "P@10", "P@50", "P@100"):
            report[column] = report[column].round(3)
    return report
