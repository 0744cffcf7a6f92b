"""Every issue score from the one kNN graph, in the store's output shape.

This module glues the per-issue-type modules under `scores/` together: it aligns the manifest with
the graph's node order, runs each score, applies the automatic cut-off, and returns the long-format
rows of `issue_scores` and `pair_scores`, the duplicate groups, the class-confusion table and the
figures the gates read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from quality_assets.knn import KnnGraph, build_knn_graph
from quality_assets.scores import rank_ascending
from quality_assets.scores.cutoff import fraction_cut
from quality_assets.scores.data_value import data_value_scores
from quality_assets.scores.image_properties import image_property_scores
from quality_assets.scores.label_error import class_confusion, label_error_scores
from quality_assets.scores.leakage import evidence_mentions, leakage_pairs, leakage_scores
from quality_assets.scores.near_duplicate import (
    copy_flags, duplicate_groups, group_label_conflicts, near_duplicate_pairs, sample_duplicate_scores,
)
from quality_assets.scores.off_topic import lad_scores, mean_knn_distance_scores, off_topic_scores
from quality_assets.scores.pixel_copies import search_vectors

EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class ScoreConfig:
    """Cut-off and scoring options; part of the score version."""

    alpha: float = 0.1                  # SelfClean contamination for the automatic cut
    q: float = 0.05                     # SelfClean significance for the automatic cut
    duplicate_alpha: float = 0.1
    duplicate_q: float = 0.05
    near_duplicate_score_kind: str = "combined"   # combined | distance
    pixel_evidence: bool = True                   # verify candidate pairs on thumbnails (pixel_copies)
    mirror_copies: bool = True                    # a mirror image counts as a copy
    pixel_k: int = 8                              # thumbnail neighbours per image added as candidates
    max_verified_pairs: int = 2_000_000           # pixel verification budget (each image's nearest candidates first)
    max_duplicate_distance: float = 0.5           # pairs farther than this are never flagged
    max_pairs_stored: int = 1_000_000             # unflagged pairs kept in pair_scores, best first

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreOutputs:
    issue_rows: pd.DataFrame
    pair_rows: pd.DataFrame
    groups: pd.DataFrame
    confusion: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _long_rows(sample_ids: np.ndarray, issue_type: str, score: np.ndarray, is_issue: np.ndarray,
               suggested: np.ndarray | None = None, confidence: np.ndarray | None = None,
               partner: np.ndarray | None = None) -> pd.DataFrame:
    valid = ~np.isnan(score)
    ranks = rank_ascending(np.where(valid, score, np.nan))
    n = len(score)
    return pd.DataFrame({
        "sample_id": sample_ids[valid],
        "issue_type": issue_type,
        "score": np.clip(score[valid], 0.0, 1.0),
        "rank": ranks[valid].astype(np.int64),
        "is_issue": is_issue[valid].astype(bool),
        "suggested_label": (suggested if suggested is not None else np.full(n, None, dtype=object))[valid],
        "confidence": (confidence if confidence is not None else np.full(n, np.nan))[valid],
        "partner_id": (partner if partner is not None else np.full(n, None, dtype=object))[valid],
    })


def _cut(score: np.ndarray, config: ScoreConfig) -> np.ndarray:
    mask = np.zeros(len(score), dtype=bool)
    valid = ~np.isnan(score)
    if valid.sum() < 3:
        return mask
    _, flagged = fraction_cut(score[valid], alpha=config.alpha, q=config.q)
    mask[valid] = flagged
    return mask


def compute_scores(sample_ids: list[str], graph: KnnGraph, manifest: pd.DataFrame,
                   config: ScoreConfig | None = None, vectors: np.ndarray | None = None,
                   thumbnails: np.ndarray | None = None, thumbnail_known: np.ndarray | None = None) -> ScoreOutputs:
    """`manifest` rows, `vectors` and `thumbnails` (optional) must be aligned with `sample_ids`
    (the graph's node order).

    The vectors help LAD join disconnected graph components at measured distances and give
    thumbnail-only candidate pairs an embedding distance. The thumbnails (uint8 [N, S, S],
    `thumbnail_known` marking rows that hold one) add pixel-level copy evidence to near
    duplicates and leakage.
    """
    config = config or ScoreConfig()
    ids = np.asarray(sample_ids, dtype=object)
    manifest = manifest.set_index("sample_id").loc[list(ids)].reset_index()
    n = len(ids)
    labels = manifest["label"].to_numpy(dtype=object)
    splits = manifest["split"].to_numpy(dtype=object)
    is_eval = np.isin(splits, EVAL_SPLITS)
    rows = []

    # Near duplicates: pairs first, then each sample's best pair, groups and label conflicts.
    use_pixels = thumbnails is not None and config.pixel_evidence
    pairs = near_duplicate_pairs(
        graph, file_sha256=manifest["file_sha256"].to_numpy(dtype=object),
        pixel_sha256=manifest["pixel_sha256"].to_numpy(dtype=object),
        phash=manifest["phash"], labels=labels,
        score_kind=config.near_duplicate_score_kind,
        thumbnails=thumbnails if use_pixels else None,
        thumbnail_known=thumbnail_known if use_pixels else None,
        vectors=vectors, mirror=config.mirror_copies, pixel_k=config.pixel_k,
        max_verified_pairs=config.max_verified_pairs,
    )
    # The cut is scaled by the number of samples, not pairs: contamination is a per-sample rate.
    pair_flag = copy_flags(pairs, n, alpha=config.duplicate_alpha, q=config.duplicate_q)
    too_far = pairs["distance"].to_numpy(dtype=float) > config.max_duplicate_distance  # NaN: unknown, kept
    exact = evidence_mentions(pairs["evidence"], "sha256")  # byte- or pixel-identical copies always count
    pair_flag = (pair_flag & ~too_far) | exact
    pairs = pairs.assign(is_issue=pair_flag)
    groups = duplicate_groups(pairs[pairs.is_issue], n)
    pairs["group_id"] = np.where(pairs.is_issue, groups[pairs["i"].to_numpy()], -1)
    conflicts = group_label_conflicts(groups, labels)
    best_pair_score, best_partner = sample_duplicate_scores(pairs, n, return_partner=True)
    partner = np.where(best_partner >= 0, ids[np.maximum(best_partner, 0)], None)
    in_group = groups >= 0
    rows.append(_long_rows(ids, "near_duplicate", best_pair_score, in_group, partner=partner))

    # Off-topic: the two-view score when every sample has a thumbnail (LAD otherwise), with
    # SelfClean's LAD and the mean-kNN-distance baseline kept alongside for comparison.
    pixel_graph = pixel_vectors = None
    if use_pixels and (thumbnail_known is None or np.all(thumbnail_known)) and n > 8:
        pixel_vectors = search_vectors(thumbnails)
        pixel_graph = build_knn_graph(pixel_vectors, min(16, n - 1), recall_sample=0)
    lad = lad_scores(graph, vectors)
    off_topic = lad if pixel_graph is None else off_topic_scores(graph, vectors, pixel_graph, pixel_vectors)
    off_topic_flag = _cut(off_topic, config)
    rows.append(_long_rows(ids, "off_topic", off_topic, off_topic_flag))
    rows.append(_long_rows(ids, "off_topic_lad", lad, _cut(lad, config)))
    baseline = mean_knn_distance_scores(graph)
    rows.append(_long_rows(ids, "off_topic_knn_baseline", baseline, _cut(baseline, config)))

    # Label errors with suggested labels (from the embedding's neighbours). With the pixel view,
    # the score is the geometric mean of the intra/extra ratio in both views: the two see
    # different neighbours, and a label that disagrees with both is the likelier error
    # (demo AP 0.64 -> 0.81 and 0.76 -> 0.85 on two trained encoders, docs/BENCHMARKS.md).
    labelled = pd.notna(labels)
    label_frame = label_error_scores(graph, np.where(labelled, labels, None))
    label_score = label_frame["score"].to_numpy(dtype=float)
    if pixel_graph is not None:
        pixel_label_score = label_error_scores(pixel_graph, np.where(labelled, labels, None))["score"].to_numpy(float)
        label_score = np.sqrt(label_score * pixel_label_score)
    label_flag = _cut(label_score, config)
    suggested = label_frame["suggested_label"].to_numpy(dtype=object)
    confidence = label_frame["confidence"].to_numpy(dtype=float)
    rows.append(_long_rows(ids, "label_error", label_score, label_flag, suggested, confidence))
    confusion = class_confusion(labels[labelled], suggested[labelled], label_flag[labelled])

    # Leakage: eval samples with a flagged duplicate pair into train.
    leak_score = leakage_scores(pairs, splits, n)
    all_leak_pairs = leakage_pairs(pairs, splits, flagged_only=False)  # lowest score first
    best_leak = all_leak_pairs.drop_duplicates("eval_index")
    leak_partner = np.full(n, None, dtype=object)
    leak_partner[best_leak["eval_index"].to_numpy()] = ids[best_leak["train_index"].to_numpy()]
    leak_flag = np.zeros(n, dtype=bool)
    leak_flag[leakage_pairs(pairs, splits, flagged_only=True)["eval_index"].to_numpy()] = True
    rows.append(_long_rows(ids, "leakage", leak_score, leak_flag, partner=leak_partner))

    # Image properties from the manifest (no graph needed).
    properties = image_property_scores(manifest)
    for issue_type, block in properties.groupby("issue_type", sort=True):
        score = np.full(n, np.nan)
        flag = np.zeros(n, dtype=bool)
        score[block["index"].to_numpy()] = block["score"].to_numpy()
        flag[block["index"].to_numpy()] = block["is_issue"].to_numpy(bool)
        rows.append(_long_rows(ids, f"image_{issue_type}", score, flag))

    # Data value: KNN-Shapley of train samples against the eval split.
    if is_eval.any() and labelled.any():
        value = data_value_scores(graph, labels, splits)
        rows.append(_long_rows(ids, "low_value", value, _cut(value, config)))

    issue_rows = pd.concat(rows, ignore_index=True)
    pair_rank = rank_ascending(pairs["score"].to_numpy(float)).astype(np.int64)
    # At 1M samples there are ~12M candidate pairs; the store keeps the flagged ones and the best ranked.
    stored = pairs["is_issue"].to_numpy(bool) | (pair_rank <= config.max_pairs_stored)
    stored_pairs = pairs[stored]
    pair_rows = pd.DataFrame({
        "sample_a": ids[stored_pairs["i"].to_numpy()], "sample_b": ids[stored_pairs["j"].to_numpy()],
        "distance": stored_pairs["distance"].to_numpy(float), "score": stored_pairs["score"].to_numpy(float),
        "rank": pair_rank[stored], "is_issue": stored_pairs["is_issue"].to_numpy(bool),
        "group_id": stored_pairs["group_id"].to_numpy(np.int64),
        "evidence": stored_pairs["evidence"].astype(str).to_numpy(),
    })

    n_eval = int(is_eval.sum())
    group_sizes = pd.Series(groups[in_group]).value_counts()
    summary = {
        "n_samples": n,
        "n_eval": n_eval,
        "n_pairs": len(pairs),
        "n_pairs_stored": len(pair_rows),
        "n_pairs_pixel_verified": int(pairs["aligned"].notna().sum()) if "aligned" in pairs.columns else 0,
        "n_duplicate_pairs_flagged": int(pair_flag.sum()),
        "n_duplicate_groups": int(len(group_sizes)),
        "n_conflicting_groups": int(conflicts["is_conflict"].sum()) if len(conflicts) else 0,
        "near_duplicate_rate": float((group_sizes - 1).sum() / n) if n else 0.0,
        "leakage_rate": float(leak_flag[is_eval].sum() / n_eval) if n_eval else 0.0,
        "n_leaked_eval": int(leak_flag.sum()),
        "off_topic_rate": float(off_topic_flag.mean()) if n else 0.0,
        "label_error_rate": float(label_flag[labelled].mean()) if labelled.any() else 0.0,
        "config": config.to_dict(),
        "graph": {"index_kind": graph.index_kind, "recall_at_k": graph.recall_at_k, "k": int(graph.neighbors.shape[1])},
    }
    return ScoreOutputs(issue_rows, pair_rows, conflicts, confusion, summary)


def summary_json(outputs: ScoreOutputs) -> str:
    return json.dumps(outputs.summary, sort_keys=True, default=float)
