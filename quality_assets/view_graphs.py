"""Every stored view's graph on the store: the SSL embedding's kNN graph, the pixel view's graph and
copy-candidate pairs (from the thumbnails), the property view's graph (from the ingest statistics).

Each graph is an edge table (`knn_edges`) with a row in `knn_graphs` whose `view` names it; its
version is the content of its inputs, so an identical rebuild gives the same version. The scores
read these graphs (`load_graph`, `load_pixel_views`, `load_view_graph`) and never rebuild them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from quality_assets.pixel_view import THUMBNAIL_SIZE
from quality_assets.representation import load_thumbnails, load_vectors
from quality_assets.store import run_query, run_query_arrow

@dataclass
class GraphRecord:
    graph_version: str
    model_version: str
    n_nodes: int
    k: int
    index_kind: str
    recall_at_k: float | None
    seconds: float
    params: dict
    view: str = "ssl"


def _store_graph(conn: duckdb.DuckDBPyConnection, view: str, source_version: str, sample_ids: np.ndarray,
                 neighbor_ids: np.ndarray, ranks: np.ndarray, distances: np.ndarray, *, k: int, index_kind: str,
                 recall_at_k: float | None, params: dict, seconds: float) -> GraphRecord:
    """Write one view's graph (edge rows: sample_id, neighbor_id, 1-based rank, distance) and its
    knn_graphs row in one short transaction; the version is the content of the edges' inputs."""
    graph_version = hashlib.sha256("|".join([
        view, source_version, hashlib.sha256(",".join(map(str, sample_ids)).encode()).hexdigest(), str(k),
        index_kind, json.dumps(params, sort_keys=True, default=str)]).encode()).hexdigest()[:16]
    n_nodes = len(np.unique(sample_ids)) if view == "pixel_copy" else len(sample_ids) // max(k, 1)
    edges = pa.table({
        "sample_id": pa.array(sample_ids, pa.string()),
        "neighbor_id": pa.array(neighbor_ids, pa.string()),
        "rank": pa.array(np.asarray(ranks, dtype=np.int32)),
        "distance": pa.array(np.asarray(distances, dtype=np.float32)),
    })
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register("_new_edges", edges)
        run_query(conn, "replace_knn_edges", graph_version=graph_version, view=view)
        conn.unregister("_new_edges")
        run_query(conn, "insert_knn_graph", graph_version=graph_version, model_version=source_version,
                  n_nodes=n_nodes, k=k, index_kind=index_kind, recall_at_k=recall_at_k,
                  params_json=json.dumps(params, sort_keys=True, default=str), seconds=seconds, view=view)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return GraphRecord(graph_version, source_version, n_nodes, k, index_kind, recall_at_k, seconds, params, view)


def _knn_edges(ids: np.ndarray, graph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, kk = graph.neighbors.shape
    return (np.repeat(ids, kk), ids[graph.neighbors.reshape(-1)],
            np.tile(np.arange(1, kk + 1, dtype=np.int32), n), graph.distances.reshape(-1))


def build_graph(conn: duckdb.DuckDBPyConnection, model_version: str, k: int, *, exact_limit: int | None = None,
                method: str = "auto", seed: int = 0) -> GraphRecord:
    """The SSL view's kNN graph on the current model's vectors."""
    from quality_assets.knn import build_knn_graph

    sample_ids, vectors = load_vectors(conn, model_version)
    n_manifest = int(run_query(conn, "manifest_version").n_samples[0])
    if len(sample_ids) != n_manifest:
        raise ValueError(f"{n_manifest - len(sample_ids)} samples have no {model_version} vector; "
                         "materialize embeddings first")
    k_eff = min(k, len(sample_ids) - 1)
    if k_eff < 1:
        raise ValueError("a kNN graph needs at least two samples")
    started = time.perf_counter()
    kwargs = {"method": method, "seed": seed}
    if exact_limit is not None:
        kwargs["exact_limit"] = exact_limit
    graph = build_knn_graph(vectors, k=k_eff, **kwargs)
    seconds = time.perf_counter() - started
    ids = np.asarray(sample_ids, dtype=object)
    return _store_graph(conn, "ssl", model_version, *_knn_edges(ids, graph), k=graph.neighbors.shape[1],
                        index_kind=graph.index_kind, recall_at_k=graph.recall_at_k, params=graph.params,
                        seconds=seconds)


# Bump when the pixel view's vectors or candidate search change: the stored graphs then rebuild.
PIXEL_VIEW_VERSION = "1"


def build_pixel_views(conn: duckdb.DuckDBPyConnection, *, k: int = 16, copy_k: int = 8, method: str = "auto",
                      seed: int = 0) -> list[GraphRecord]:
    """The pixel view's kNN graph and its copy-candidate pairs, from the stored thumbnails.

    The candidates are searched among the samples that hold a thumbnail; the kNN graph is built
    only when every sample has one (a view with holes would rank the holes as isolated), otherwise
    the scores read the SSL view alone for off-topic and label errors.
    """
    from quality_assets.knn import build_knn_graph
    from quality_assets.pixel_view import copy_candidate_pairs, search_vectors

    ids = np.asarray(sorted(run_query(conn, "manifest_for_scoring").sample_id), dtype=object)
    thumbs, known = load_thumbnails(conn, list(ids))
    if len(ids) <= 8 or known.sum() < 2:
        return []
    source = (f"thumbnails{THUMBNAIL_SIZE}:v{PIXEL_VIEW_VERSION}:"
              + hashlib.sha256(thumbs.tobytes() + np.packbits(known).tobytes()).hexdigest()[:16])
    vectors = search_vectors(thumbs)
    records = []
    started = time.perf_counter()
    a, b, position = copy_candidate_pairs(thumbs, known, copy_k, mirror=True, seed=seed)
    distance = np.clip((1.0 - np.einsum("ij,ij->i", vectors[a], vectors[b])) / 2.0, 0.0, 1.0)
    records.append(_store_graph(conn, "pixel_copy", source, ids[a], ids[b], position, distance, k=copy_k,
                                index_kind="pairs", recall_at_k=None, params={"mirror": True, "canonical": True},
                                seconds=time.perf_counter() - started))
    if known.all():
        started = time.perf_counter()
        graph = build_knn_graph(vectors, min(k, len(ids) - 1), method=method, seed=seed, recall_sample=0)
        records.append(_store_graph(conn, "pixel", source, *_knn_edges(ids, graph), k=graph.neighbors.shape[1],
                                    index_kind=graph.index_kind, recall_at_k=graph.recall_at_k,
                                    params=graph.params, seconds=time.perf_counter() - started))
    return records


def build_property_view(conn: duckdb.DuckDBPyConnection, *, k: int = 16) -> list[GraphRecord]:
    """The property view's kNN graph (`quality_assets.property_view`) from the manifest's ingest
    statistics; its version is the content of those statistics."""
    from quality_assets.property_view import property_graph, property_vectors

    manifest = run_query(conn, "manifest_for_scoring").sort_values("sample_id").reset_index(drop=True)
    if len(manifest) <= 8:
        return []
    ids = manifest["sample_id"].to_numpy(dtype=object)
    started = time.perf_counter()
    vectors = property_vectors(manifest)
    graph = property_graph(vectors, k)
    source = "properties:v1:" + hashlib.sha256(vectors.tobytes()).hexdigest()[:16]
    return [_store_graph(conn, "properties", source, *_knn_edges(ids, graph), k=graph.neighbors.shape[1],
                         index_kind=graph.index_kind, recall_at_k=None, params={"dims": int(vectors.shape[1])},
                         seconds=time.perf_counter() - started)]


def load_view_graph(conn: duckdb.DuckDBPyConnection, view: str, sample_ids: list[str]):
    """(KnnGraph, graph_version) of a stored view built for exactly `sample_ids`, else (None, "")."""
    if _graph_row(conn, view) is None:
        return None, ""
    ids, graph, version, _ = load_graph(conn, view)
    return (graph, version) if ids == list(sample_ids) else (None, "")


def _graph_row(conn: duckdb.DuckDBPyConnection, view: str):
    latest = run_query(conn, "latest_graph", view=view)
    return None if latest.empty else latest.iloc[0]


def load_graph(conn: duckdb.DuckDBPyConnection, view: str = "ssl"):
    """A kNN view's current graph as (sample_ids, KnnGraph, graph_version, source version), rows in
    sample_id order. Raises when the view has no graph."""
    from quality_assets.knn import KnnGraph

    row = _graph_row(conn, view)
    if row is None:
        raise ValueError(f"no {view} kNN graph yet: materialize knn_graph first")
    table = run_query_arrow(conn, "knn_edges_current", graph_version=row.graph_version)
    k = int(row.k)
    sample_col = table.column("sample_id").to_numpy(zero_copy_only=False)
    ordered_ids = np.asarray(sample_col[::k], dtype=str)  # sorted: the query orders by sample_id
    sample_ids = list(ordered_ids)
    neighbor_ids = np.asarray(table.column("neighbor_id").to_numpy(zero_copy_only=False), dtype=str)
    neighbors = np.searchsorted(ordered_ids, neighbor_ids).astype(np.int64)
    distances = table.column("distance").to_numpy().astype(np.float32)
    graph = KnnGraph(neighbors=neighbors.reshape(-1, k), distances=distances.reshape(-1, k),
                     index_kind=str(row.index_kind),
                     recall_at_k=None if pd.isna(row.recall_at_k) else float(row.recall_at_k),
                     params=json.loads(row.params_json or "{}"))
    return sample_ids, graph, str(row.graph_version), str(row.model_version)


def load_pixel_views(conn: duckdb.DuckDBPyConnection, sample_ids: list[str]):
    """(pixel KnnGraph or None, copy candidates (i, j, position) or None, version string) aligned
    with `sample_ids`. A stored view built for other samples counts as missing."""
    versions = []
    graph = None
    pixel_row, copy_row = _graph_row(conn, "pixel"), _graph_row(conn, "pixel_copy")
    if pixel_row is not None and copy_row is not None and pixel_row.model_version == copy_row.model_version:
        pixel_ids, pixel_graph, pixel_version, _ = load_graph(conn, "pixel")
        if pixel_ids == list(sample_ids):
            graph = pixel_graph
            versions.append(pixel_version)
    candidates = None
    if copy_row is not None:
        table = run_query_arrow(conn, "knn_edges_current", graph_version=copy_row.graph_version)
        position = pd.Series(np.arange(len(sample_ids)), index=sample_ids)
        a = position.reindex(np.asarray(table.column("sample_id").to_numpy(zero_copy_only=False), dtype=str)).to_numpy()
        b = position.reindex(np.asarray(table.column("neighbor_id").to_numpy(zero_copy_only=False), dtype=str)).to_numpy()
        # Candidates of samples that left the manifest are dropped; new samples wait for the next graph.
        keep = ~(np.isnan(a) | np.isnan(b))
        candidates = (a[keep].astype(np.int64), b[keep].astype(np.int64),
                      table.column("rank").to_numpy()[keep].astype(np.int64))
        versions.append(str(copy_row.graph_version))
    return graph, candidates, "+".join(versions)
