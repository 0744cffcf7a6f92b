"""Every issue score from the stored representations, in the store's output shape.

Scoring is a loop over the issue-type registry (`quality_assets.issue_types`): each type reads the
shared inputs (the graphs of the stored views, the vectors, the thumbnails, the manifest) and the
results of the types it requires, applies its own cut-off and returns one `IssueResult`. This
module aligns the manifest with the graph's node order and turns the results into the long rows of
`issue_scores` and `pair_scores`, the duplicate groups, the class-confusion table and the summary
the gates read.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from quality_assets.issue_types import IssueResult, ScoringInputs, View, issue_types, options_from_dict
from quality_assets.knn import KnnGraph, build_knn_graph
from quality_assets.scores import rank_ascending
from quality_assets.pixel_view import graph_vectors
from quality_assets.property_view import property_graph, property_vectors

PIXEL_VIEW_K = 16  # neighbours per image in the pixel view's graph


class ScoreConfig:
    """Options per issue type ({type: options dataclass or dict of its fields}); missing types and
    fields take their defaults. Part of the score version."""

    def __init__(self, issue_types: Mapping[str, Any] | None = None):
        raw = {name: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
               for name, value in (issue_types or {}).items()}
        self.options: dict[str, Any] = options_from_dict(raw)

    def of(self, name: str) -> Any:
        return self.options[name]

    def to_dict(self) -> dict:
        return {name: dataclasses.asdict(options) for name, options in sorted(self.options.items())}


@dataclass
class ScoreOutputs:
    issue_rows: pd.DataFrame
    pair_rows: pd.DataFrame
    groups: pd.DataFrame
    confusion: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _long_rows(sample_ids: np.ndarray, issue_type: str, result: IssueResult) -> pd.DataFrame:
    score = np.asarray(result.score, dtype=float)
    n = len(score)
    valid = ~np.isnan(score)
    ranks = rank_ascending(np.where(valid, score, np.nan))
    partner = np.full(n, None, dtype=object)
    if result.partner is not None:
        has = np.asarray(result.partner) >= 0
        partner[has] = sample_ids[np.asarray(result.partner)[has]]
    return pd.DataFrame({
        "sample_id": sample_ids[valid],
        "issue_type": issue_type,
        "score": np.clip(score[valid], 0.0, 1.0),
        "rank": ranks[valid].astype(np.int64),
        "is_issue": np.asarray(result.is_issue)[valid].astype(bool),
        "suggested_label": (result.suggested if result.suggested is not None else np.full(n, None, dtype=object))[valid],
        "confidence": (result.confidence if result.confidence is not None else np.full(n, np.nan))[valid],
        "partner_id": partner[valid],
    })


def _stack_long_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """`pd.concat` of the per-type long rows, column by column: the frames share one schema, and
    pandas' concat checks every value of an all-None object column one by one (0.5 s at 10k samples
    and eight issue types, a tenth of a drop's re-score)."""
    if not frames:
        return _long_rows(np.empty(0, dtype=object), "", IssueResult(score=np.empty(0), is_issue=np.empty(0, bool)))
    return pd.DataFrame({column: np.concatenate([frame[column].to_numpy() for frame in frames])
                         for column in frames[0].columns})


def pixel_view(thumbnails: np.ndarray, k: int = PIXEL_VIEW_K, seed: int = 0) -> View:
    """The pixel view's graph: kNN on the thumbnails' `graph_vectors`."""
    vectors = graph_vectors(thumbnails)
    return View(build_knn_graph(vectors, min(k, len(vectors) - 1), seed=seed, recall_sample=0), vectors)


def _pair_rows(ids: np.ndarray, pairs: pd.DataFrame, max_stored: int) -> pd.DataFrame:
    pair_rank = rank_ascending(pairs["score"].to_numpy(float)).astype(np.int64)
    # At 1M samples there are ~12M candidate pairs; the store keeps the flagged ones and the best ranked.
    stored = pairs["is_issue"].to_numpy(bool) | (pair_rank <= max_stored)
    kept = pairs[stored]
    return pd.DataFrame({
        "sample_a": ids[kept["i"].to_numpy()], "sample_b": ids[kept["j"].to_numpy()],
        "distance": kept["distance"].to_numpy(float), "score": kept["score"].to_numpy(float),
        "rank": pair_rank[stored], "is_issue": kept["is_issue"].to_numpy(bool),
        "group_id": kept["group_id"].to_numpy(np.int64),
        "evidence": kept["evidence"].astype(str).to_numpy(),
    })


_EMPTY_PAIRS = pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
    ("sample_a", object), ("sample_b", object), ("distance", float), ("score", float), ("rank", "int64"),
    ("is_issue", bool), ("group_id", "int64"), ("evidence", object))})


def compute_scores(sample_ids: list[str], graph: KnnGraph, manifest: pd.DataFrame,
                   config: ScoreConfig | None = None, vectors: np.ndarray | None = None,
                   thumbnails: np.ndarray | None = None, thumbnail_known: np.ndarray | None = None, *,
                   pixel: View | None = None, properties: View | None = None,
                   copy_candidates: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                   build_missing_views: bool = True, pair_verifier=None,
                   polar_vectors: np.ndarray | None = None,
                   images: Callable[[np.ndarray], np.ndarray] | None = None,
                   colour_grids: np.ndarray | None = None,
                   colour_grid_known: np.ndarray | None = None,
                   pixel_classifier_fits=None, ssl_model=None, copy_descriptor_fits=None,
                   label_model_fits=None) -> ScoreOutputs:
    """Run every registered issue type. `manifest` rows, `vectors` and `thumbnails` must be aligned
    with `sample_ids` (the graph's node order).

    `pixel` (the stored pixel view), `properties` (the stored property view) and `copy_candidates`
    (the stored thumbnail copy candidates) come from the representation stage; when the views are
    missing (and, for the pixel view, every sample has a thumbnail) they are built here (the lab and small callers rely on that) unless
    `build_missing_views` is off (the service: its views are the representation stage's outputs).
    `pair_verifier`: what verifies candidate pairs on the thumbnails (default
    `scores.pixel_copies.verify_pairs`; the service passes a `VerifiedPairMemo` over earlier runs).
    `polar_vectors`: the thumbnails' polar search vectors the copy search stored (NaN rows where none).
    `images`: loads the images at given positions of `sample_ids` (`ScoringInputs.images`), for
    options that train on the pixels. `colour_grids` / `colour_grid_known`: the samples' RGB colour grids
    (`ScoringInputs.colour_grids`), for near-exact copies. `pixel_classifier_fits`: where the label-error
    pixel classifier's fits are kept between runs (`ScoringInputs.pixel_classifier_fits`). `ssl_model`:
    loads the audit's DINO backbone (`ScoringInputs.ssl_model`), for options that start from it.
    `copy_descriptor_fits`: where near_duplicate's copy descriptor fits are kept between runs
    (`ScoringInputs.copy_descriptor_fits`). `label_model_fits`: where the label-error classifiers'
    fits on the representation are kept (`ScoringInputs.label_model_fits`).
    """
    config = config or ScoreConfig()
    ids = np.asarray(sample_ids, dtype=object)
    manifest = manifest.set_index("sample_id").loc[list(ids)].reset_index()
    n = len(ids)
    all_known = thumbnails is not None and (thumbnail_known is None or bool(np.all(thumbnail_known)))
    if pixel is None and build_missing_views and all_known and n > 8:
        pixel = pixel_view(thumbnails)
    if properties is None and build_missing_views and n > 8:
        x = property_vectors(manifest)
        properties = View(property_graph(x), x)
    views = {"ssl": View(graph, vectors)}
    if pixel is not None:
        views["pixel"] = pixel
    if properties is not None:
        views["properties"] = properties
    inputs = ScoringInputs(ids, manifest, views, thumbnails=thumbnails, thumbnail_known=thumbnail_known,
                           copy_candidates=copy_candidates, pair_verifier=pair_verifier,
                           polar_vectors=polar_vectors, images=images,
                           colour_grids=colour_grids, colour_grid_known=colour_grid_known,
                           pixel_classifier_fits=pixel_classifier_fits, ssl_model=ssl_model,
                           copy_descriptor_fits=copy_descriptor_fits, label_model_fits=label_model_fits)

    found: dict[str, IssueResult] = {}
    rows, pair_frames, groups, confusions = [], [], [], []
    summary: dict[str, Any] = {"n_samples": n, "n_eval": int(inputs.is_eval.sum())}
    for issue_type in issue_types():
        result = issue_type.score(inputs, config.of(issue_type.name), found)
        if result is None:
            continue
        found[issue_type.name] = result
        rows.append(_long_rows(ids, issue_type.name, result))
        summary.update(result.summary)
        if result.pairs is not None:
            max_stored = getattr(config.of(issue_type.name), "max_pairs_stored", 1_000_000)
            pair_frames.append(_pair_rows(ids, result.pairs, max_stored))
        if result.groups is not None:
            groups.append(result.groups)
        if result.confusion is not None:
            confusions.append(result.confusion)

    pair_rows = pd.concat(pair_frames, ignore_index=True) if pair_frames else _EMPTY_PAIRS.copy()
    summary.update({
        "n_pairs_stored": len(pair_rows),
        "config": config.to_dict(),
        "graph": {"index_kind": graph.index_kind, "recall_at_k": graph.recall_at_k, "k": int(graph.neighbors.shape[1])},
        "views": sorted(views),
    })
    return ScoreOutputs(
        _stack_long_rows(rows),
        pair_rows,
        pd.concat(groups, ignore_index=True) if groups else pd.DataFrame(
            columns=["group_id", "size", "n_labels", "majority_label", "is_conflict"]),
        pd.concat(confusions, ignore_index=True) if confusions else pd.DataFrame(),
        summary,
    )


def summary_json(outputs: ScoreOutputs) -> str:
    return json.dumps(outputs.summary, sort_keys=True, default=float)
