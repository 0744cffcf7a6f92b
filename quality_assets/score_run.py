"""Run every score on the current graph and persist a versioned score run; build the cleaned split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from quality_assets.cleaning import CleaningPolicy, apply_policy, cleaning_frame
from quality_assets.issue_types import View
from quality_assets.pixel_view import search_vectors
from quality_assets.property_view import property_vectors
from quality_assets.representation import load_thumbnails, load_vectors
from quality_assets.view_graphs import load_graph, load_pixel_views, load_view_graph
from quality_assets.scoring import ScoreConfig, ScoreOutputs, compute_scores, summary_json
from quality_assets.store import insert_df, run_query


@dataclass
class ScoreRun:
    score_version: str
    graph_version: str
    model_version: str
    manifest_version: str
    outputs: ScoreOutputs


def run_scores(conn: duckdb.DuckDBPyConnection, config: ScoreConfig) -> ScoreRun:
    sample_ids, graph, graph_version, model_version = load_graph(conn)
    manifest = run_query(conn, "manifest_for_scoring")
    manifest_version = str(run_query(conn, "manifest_version").manifest_version[0])
    if set(manifest.sample_id) != set(sample_ids):
        raise ValueError("the kNN graph does not cover the current manifest: materialize knn_graph first")
    vector_ids, vectors = load_vectors(conn, model_version)
    if vector_ids != list(sample_ids):
        vectors = None  # the graph's node order is the authority; LAD then joins components by size
    thumbnails, thumbnail_known = load_thumbnails(conn, list(sample_ids))
    manifest_in_order = manifest.set_index("sample_id").loc[list(sample_ids)].reset_index()
    pixel_graph, copy_candidates, pixel_versions = load_pixel_views(conn, list(sample_ids))
    pixel = None if pixel_graph is None else View(pixel_graph, search_vectors(thumbnails))
    property_graph, property_version = load_view_graph(conn, "properties", list(sample_ids))
    properties = None if property_graph is None else View(property_graph, property_vectors(manifest_in_order))
    view_versions = f"{graph_version}+{pixel_versions}+{property_version}"
    if copy_candidates is None:
        copy_candidates = (np.empty(0, np.int64),) * 3  # no stored candidates: none are searched here
    outputs = compute_scores(sample_ids, graph, manifest, config, vectors=vectors,
                             thumbnails=thumbnails if thumbnail_known.any() else None,
                             thumbnail_known=thumbnail_known, pixel=pixel, properties=properties,
                             copy_candidates=copy_candidates,
                             build_missing_views=False)
    score_version = hashlib.sha256(
        f"{view_versions}|{manifest_version}|{json.dumps(config.to_dict(), sort_keys=True)}".encode()
    ).hexdigest()[:16]

    conn.execute("BEGIN TRANSACTION")
    try:
        run_query(conn, "delete_score_version", score_version=score_version)
        insert_df(conn, "issue_scores", outputs.issue_rows.assign(score_version=score_version))
        insert_df(conn, "pair_scores", outputs.pair_rows.assign(score_version=score_version))
        insert_df(conn, "duplicate_groups", outputs.groups.assign(score_version=score_version))
        insert_df(conn, "class_confusion", outputs.confusion.assign(score_version=score_version))
        run_query(conn, "insert_score_run", score_version=score_version, graph_version=graph_version,
                  model_version=model_version, manifest_version=manifest_version,
                  config_json=json.dumps(config.to_dict(), sort_keys=True), summary_json=summary_json(outputs))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return ScoreRun(score_version, graph_version, model_version, manifest_version, outputs)


@dataclass
class SplitRun:
    split_version: str
    score_version: str
    counts: dict
    split: pd.DataFrame


def build_cleaned_split(conn: duckdb.DuckDBPyConnection, policy: CleaningPolicy) -> SplitRun:
    latest = run_query(conn, "latest_score_run")
    if latest.empty:
        raise ValueError("no score run yet: materialize issue_scores first")
    run = latest.iloc[0]
    inputs = cleaning_frame(run_query(conn, "cleaning_inputs"), run_query(conn, "cleaning_flags"))
    reviews = run_query(conn, "review_decisions_all")
    split = apply_policy(inputs, policy, reviews)
    review_stamp = str(reviews.decided_at.max()) if len(reviews) else ""
    split_version = hashlib.sha256(
        f"{run.score_version}|{json.dumps(policy.to_dict(), sort_keys=True)}|{len(reviews)}|{review_stamp}".encode()
    ).hexdigest()[:16]
    counts = {
        "by_action": {k: int(v) for k, v in split.action.value_counts().items()},
        "by_reason": {k: int(v) for k, v in split.reason.value_counts().items()},
        "kept_per_split": {k: int(v) for k, v in split[split.action != "drop"].split.value_counts().items()},
    }
    conn.execute("BEGIN TRANSACTION")
    try:
        run_query(conn, "delete_split_version", split_version=split_version)
        insert_df(conn, "cleaned_splits", split.assign(split_version=split_version))
        run_query(conn, "insert_split_version", split_version=split_version, score_version=run.score_version,
                  model_version=run.model_version, manifest_version=run.manifest_version,
                  policy_json=json.dumps(policy.to_dict(), sort_keys=True), counts_json=json.dumps(counts))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return SplitRun(split_version, str(run.score_version), counts, split)
