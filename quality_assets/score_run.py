"""Run every score on the current graph and persist a versioned score run; build the cleaned split.

Both versions are hashes of their inputs (graph versions, manifest, config or policy, reviews, code
version), computed before the work: a version already stored is marked current (it becomes the
newest, which the public views read) and returned with `reused = True`. The scores are global
(calibrated cuts, the off-topic dendrogram), so a changed graph means a full re-score on it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from quality_assets.cleaning import CleaningPolicy, apply_policy, cleaning_frame
from quality_assets.code_version import code_version
from quality_assets.issue_types import View
from quality_assets.copy_descriptor_fits import StoredCopyDescriptorFits
from quality_assets.label_model_fits import StoredLabelModelFits
from quality_assets.pixel_classifier_fits import StoredPixelClassifierFits
from quality_assets.pixel_view import THUMBNAIL_SIZE, graph_vectors
from quality_assets.property_view import property_vectors
from quality_assets.representation import load_colour_grids, load_thumbnails, load_vectors
from quality_assets.view_graphs import (load_graph, load_pixel_views, load_view_graph, manifest_for_scoring,
                                        planned_view_versions, stored_search_vectors)
from quality_assets.scores.pixel_classifier import PIXEL_CLASSIFIER_CONFIG
from quality_assets.scores.pixel_copies import VerifiedPairMemo
from quality_assets.scoring import ScoreConfig, ScoreOutputs, compute_scores, summary_json
from quality_assets.store import insert_df, run_query


# Editing these modules (or what they import) makes the next run score again / clean again.
SCORE_CODE_ROOTS = ("quality_assets.scoring", "quality_assets.issue_types", "quality_assets.pixel_view",
                    "quality_assets.property_view")
SCORE_SQL = ("manifest_for_scoring",)
SPLIT_CODE_ROOTS = ("quality_assets.cleaning",)
# A stored pixel verdict is read back only under the same verifier code and thumbnail size.
# Every verdict `VerifiedPairMemo` keeps: the verifiers, registration, the two crop measures
# (`pixel_view.crop_distances` through pixel_copies' imports, leakage's `near_exact.crop_differences`)
# and the near-exact check's `near_exact.grid_measures`.
VERIFIER_CODE_ROOTS = ("quality_assets.scores.pixel_copies", "quality_assets.scores.registration",
                       "quality_assets.scores.near_exact")
# The pixel classifier's images are kept in memory up to this size (64 px RGB: about 40k images).
_IMAGES_IN_MEMORY = 512 * 2**20


def verifier_version() -> str:
    return f"{code_version(*VERIFIER_CODE_ROOTS)}-{THUMBNAIL_SIZE}"
SPLIT_SQL = ("cleaning_inputs", "cleaning_flags", "review_decisions_all")


@dataclass
class ScoreRun:
    score_version: str
    graph_version: str
    model_version: str
    manifest_version: str
    outputs: ScoreOutputs | None  # None when a stored version was reused
    summary: dict = field(default_factory=dict)
    n_issue_rows: int = 0
    reused: bool = False


def _score_version(view_versions: str, manifest_version: str, config: ScoreConfig) -> str:
    return hashlib.sha256("|".join([
        view_versions, manifest_version, json.dumps(config.to_dict(), sort_keys=True),
        code_version(*SCORE_CODE_ROOTS, sql=SCORE_SQL)]).encode()).hexdigest()[:16]


def run_scores(conn: duckdb.DuckDBPyConnection, config: ScoreConfig, *, reuse: bool = True) -> ScoreRun:
    manifest_version = str(run_query(conn, "manifest_version").manifest_version[0])
    planned = planned_view_versions(conn, manifest_version)
    if reuse and planned is not None:
        stored = run_query(conn, "stored_score_run", score_version=_score_version(planned[1], manifest_version, config))
        if not stored.empty:
            row = stored.iloc[0]
            run_query(conn, "mark_score_run_current", score_version=row.score_version)
            return ScoreRun(str(row.score_version), str(row.graph_version), str(row.model_version),
                            str(row.manifest_version), None, json.loads(row.summary_json or "{}"),
                            int(row.n_issue_rows), True)

    sample_ids, graph, graph_version, model_version = load_graph(conn)
    manifest = manifest_for_scoring(conn, manifest_version)
    if set(manifest.sample_id) != set(sample_ids):
        raise ValueError("the kNN graph does not cover the current manifest: materialize knn_graph first")
    vector_ids, vectors = load_vectors(conn, model_version)
    if vector_ids != list(sample_ids):
        vectors = None  # the graph's node order is the authority; LAD then joins components by size
    thumbnails, thumbnail_known = load_thumbnails(conn, list(sample_ids))
    colour_grids, colour_grid_known = load_colour_grids(conn, list(sample_ids))
    manifest_in_order = manifest.set_index("sample_id").loc[list(sample_ids)].reset_index()
    pixel_graph, copy_candidates, pixel_versions = load_pixel_views(conn, list(sample_ids))
    pixel = None if pixel_graph is None else View(pixel_graph, graph_vectors(thumbnails))
    property_graph, property_version = load_view_graph(conn, "properties", list(sample_ids))
    properties = None if property_graph is None else View(property_graph, property_vectors(manifest_in_order))
    view_versions = f"{graph_version}+{pixel_versions}+{property_version}"
    if copy_candidates is None:
        copy_candidates = (np.empty(0, np.int64),) * 3  # no stored candidates: none are searched here
    # Pairs verified by an earlier run are read back: a drop verifies only the pairs it brings.
    verifications = VerifiedPairMemo(sample_ids, run_query(conn, "pair_verifications_for",
                                                           verifier_version=verifier_version()))
    # A drop predicts its new rows with the last pixel-classifier fit instead of training one.
    pixel_fits = StoredPixelClassifierFits(conn)
    # And embeds its new rows with the last copy descriptor fine-tuned from the same SSL model, and
    # predicts them with the representation classifiers' last fit.
    descriptor_fits = StoredCopyDescriptorFits(conn)
    label_model_fits = StoredLabelModelFits(conn)
    outputs = compute_scores(sample_ids, graph, manifest, config, vectors=vectors,
                             thumbnails=thumbnails if thumbnail_known.any() else None,
                             thumbnail_known=thumbnail_known, pixel=pixel, properties=properties,
                             copy_candidates=copy_candidates,
                             build_missing_views=False, pair_verifier=verifications,
                             polar_vectors=stored_search_vectors(conn, "polar", sample_ids),
                             images=_image_loader(manifest_in_order),
                             colour_grids=colour_grids if colour_grid_known.any() else None,
                             colour_grid_known=colour_grid_known, pixel_classifier_fits=pixel_fits,
                             ssl_model=_ssl_model_loader(conn, model_version), copy_descriptor_fits=descriptor_fits,
                             label_model_fits=label_model_fits)
    outputs.summary.update(pairs_verified_now=verifications.n_verified, pair_verdicts_reused=verifications.n_reused,
                           pairs_registered_now=verifications.n_registered,
                           crop_distances_measured_now=verifications.n_measured.get(("crop_distance", "whole_distance"), 0),
                           leak_crop_searches_now=verifications.n_measured.get(("crop_difference",), 0),
                           grid_measures_now=verifications.n_measured.get(("grid_difference", "grid_relative"), 0))
    score_version = _score_version(view_versions, manifest_version, config)

    conn.execute("BEGIN TRANSACTION")
    try:
        run_query(conn, "delete_score_version", score_version=score_version)
        insert_df(conn, "issue_scores", outputs.issue_rows.assign(score_version=score_version))
        insert_df(conn, "pair_scores", outputs.pair_rows.assign(score_version=score_version))
        insert_df(conn, "duplicate_groups", outputs.groups.assign(score_version=score_version))
        insert_df(conn, "class_confusion", outputs.confusion.assign(score_version=score_version))
        pixel_fits.save()
        descriptor_fits.save()
        label_model_fits.save()
        new_verdicts = verifications.new_rows()
        if len(new_verdicts):
            conn.register("_new_pair_verifications", new_verdicts)
            try:
                run_query(conn, "insert_pair_verifications", verifier_version=verifier_version())
            finally:
                conn.unregister("_new_pair_verifications")
        run_query(conn, "insert_score_run", score_version=score_version, graph_version=graph_version,
                  model_version=model_version, manifest_version=manifest_version,
                  config_json=json.dumps(config.to_dict(), sort_keys=True), summary_json=summary_json(outputs))
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return ScoreRun(score_version, graph_version, model_version, manifest_version, outputs,
                    json.loads(summary_json(outputs)), len(outputs.issue_rows), False)


def _ssl_model_loader(conn: duckdb.DuckDBPyConnection, model_version: str):
    """Loads the graph's DINO model (`ScoringInputs.ssl_model`); None when the representation is
    another embedder's (a timm checkpoint, precomputed vectors) or its file is gone. A file that is
    there but cannot be read is an error that names it."""
    row = run_query(conn, "model_by_version", model_version=model_version)
    if row.empty or row.iloc[0]["embedder_kind"] != "dino":
        return None
    path = Path(str(run_query(conn, "database_path").path[0])).parent / str(row.iloc[0]["checkpoint_path"])
    if not path.exists():
        return None

    def load():
        from quality_assets.ssl.checkpoints import load_checkpoint

        try:
            return load_checkpoint(path)
        except Exception as err:   # torch.load's errors on a damaged file name neither the file nor a fix
            # (and its text suggests weights_only=False, which no damaged file should be given)
            why = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: not a readable checkpoint"
            raise ValueError(f"the DINO model {path} cannot be read ({why}); materialize ssl_model again or turn "
                             "near_duplicate.copy_descriptor off") from err

    return load


def _image_loader(manifest: pd.DataFrame):
    """Loads the manifest's images at the row positions asked for, as the pixel classifier and the copy
    descriptor take them:
    RGB at the first image's largest side clipped to [32, 64] px (`consumer_cnn.load_images`'s rule),
    from a local or an object-store data root. A set that fits in `_IMAGES_IN_MEMORY` bytes is read
    once and kept when a request asks for a tenth of it or more (small requests, a drop's new rows, are
    read alone); a larger set is read per request (both ask for bounded chunks)."""
    cache: dict[str, np.ndarray] = {}

    def read(rows: np.ndarray) -> np.ndarray:
        from quality_assets.consumer_cnn import image_side, load_images
        from quality_assets.data_roots import is_remote, join, read_object

        if manifest.empty:
            raise ValueError("no images to load")
        first = manifest.iloc[0]
        side = image_side(first["width"], first["height"], PIXEL_CLASSIFIER_CONFIG.max_image_size)
        picked = manifest.iloc[np.asarray(rows, dtype=np.int64)]
        files = [join(str(root), str(path)) for root, path in zip(picked["data_root"], picked["path"])]
        try:
            sources = [io.BytesIO(read_object(f)) if is_remote(f) else f for f in files]
            return load_images(sources, side, max_size=PIXEL_CLASSIFIER_CONFIG.max_image_size)
        except OSError as err:   # a file moved or changed since ingest: say which option needed it
            raise ValueError(f"the options that train on the pixels (label_error.pixel_classifier, "
                             f"near_duplicate.copy_descriptor) need every image of the manifest and could not "
                             f"read one ({err}); re-ingest the data root or turn the option off") from err

    def load(rows: np.ndarray) -> np.ndarray:
        side = PIXEL_CLASSIFIER_CONFIG.max_image_size
        if len(manifest) * side * side * 3 > _IMAGES_IN_MEMORY:
            return read(rows)
        if "all" not in cache and 10 * len(rows) < len(manifest):
            # A drop's new rows, predicted by a kept fit: not the whole set. (A fold's training rows
            # are at least 1/8 of any set that fits in memory: min(4/5 of it, 5,000 of <= 40k).)
            return read(rows)
        if "all" not in cache:
            cache["all"] = read(np.arange(len(manifest)))
        return cache["all"][np.asarray(rows, dtype=np.int64)]
    return load


@dataclass
class SplitRun:
    split_version: str
    score_version: str
    counts: dict
    split: pd.DataFrame
    reused: bool = False


def build_cleaned_split(conn: duckdb.DuckDBPyConnection, policy: CleaningPolicy, *, reuse: bool = True) -> SplitRun:
    latest = run_query(conn, "latest_score_run")
    if latest.empty:
        raise ValueError("no score run yet: materialize issue_scores first")
    run = latest.iloc[0]
    reviews = run_query(conn, "review_decisions_all")
    review_stamp = str(reviews.decided_at.max()) if len(reviews) else ""
    split_version = hashlib.sha256("|".join([
        str(run.score_version), json.dumps(policy.to_dict(), sort_keys=True), str(len(reviews)), review_stamp,
        code_version(*SPLIT_CODE_ROOTS, sql=SPLIT_SQL)]).encode()).hexdigest()[:16]
    if reuse:
        stored = run_query(conn, "stored_split_version", split_version=split_version)
        if not stored.empty:
            run_query(conn, "mark_split_version_current", split_version=split_version)
            return SplitRun(split_version, str(run.score_version), json.loads(stored.counts_json[0]),
                            run_query(conn, "split_rows", split_version=split_version), True)
    inputs = cleaning_frame(run_query(conn, "cleaning_inputs"), run_query(conn, "cleaning_flags"))
    split = apply_policy(inputs, policy, reviews)
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
