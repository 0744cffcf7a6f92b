"""Every stored view's graph on the store: the SSL embedding's kNN graph, the pixel view's graph and
copy-candidate pairs (from the thumbnails), the property view's graph (from the ingest statistics).

Each graph is an edge table (`knn_edges`) with a row in `knn_graphs` whose `view` names it, and
`current_graphs` names the one each view's scores read; every version keeps its edges. The copy
searches' neighbour rows, which only the next update reads, are a file per version instead
(`artifacts/copy_rows/`). A version
is a hash of the graph's inputs (source version, active manifest, parameters, code version),
computed before any work: a re-run that finds its version stored marks it current and returns.
When samples were only added (or a few removed) under the same inputs, a kNN view (and the copy
candidates' two searches) is updated from its current graph (`knn.update_knn_graph`,
`knn.update_knn_rows`) instead of rebuilt; the property view is always rebuilt (its vectors are
scaled by the whole set). A full build searches its rows on the Ray cluster when QUALITY_RAY_ADDRESS
is set and the graph is large (`distributed.knn`: the same graph, sharded). The scores read these graphs
(`load_graph`, `load_pixel_views`, `load_view_graph`) and never rebuild them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
import weakref
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from quality_assets.code_version import code_version
from quality_assets.pixel_view import PIXEL_GRAPH_SIZE, THUMBNAIL_SIZE
from quality_assets.representation import load_thumbnails, load_vectors
from quality_assets.row_shards import write_rows
from quality_assets.store import run_query, run_query_arrow

# A stage's version includes this: editing the graph code (or anything it imports) rebuilds the graphs.
GRAPH_CODE_ROOTS = ("quality_assets.view_graphs",)
GRAPH_SQL = ("embeddings_for_model", "thumbnails_for_size", "manifest_for_scoring")
# Above this share of changed nodes (added + removed) a graph is rebuilt rather than updated: the
# update searches the changed rows against every vector, which stops being cheaper than an index.
INCREMENTAL_MAX_FRACTION = 0.25


# The kNN graphs this process stored or read, by (database file, version): a version names its
# content, so the scores take the graphs the knn_graph step has just written from memory instead of
# reading their edges back (about 1 s a graph at 100k samples). `runner.run_audit` clears it when a
# run starts, so no run leans on an earlier one's memory; small, and large graphs are not kept.
_GRAPH_CACHE: OrderedDict = OrderedDict()
GRAPH_CACHE_ENTRIES = 4
GRAPH_CACHE_MAX_EDGES = 16_000_000


def clear_graph_cache() -> None:
    _GRAPH_CACHE.clear()
    _MANIFEST_CACHE.clear()


# The active manifest as the graphs and scores read it, kept for one (database, manifest version):
# rows are never rewritten and the version hashes the active sample ids, so the same version reads
# the same rows (0.3 s a read at 100k samples, four reads a run). Callers must not modify it.
_MANIFEST_CACHE: dict = {}


def manifest_for_scoring(conn: duckdb.DuckDBPyConnection, manifest_version: str | None = None) -> pd.DataFrame:
    """The `manifest_for_scoring` rows (sample_id order) of this manifest version (default: the current one)."""
    if manifest_version is None:
        manifest_version = _manifest_state(conn)[0]
    key = (_database_of(conn), manifest_version)
    if key not in _MANIFEST_CACHE:
        frame = run_query(conn, "manifest_for_scoring")
        _MANIFEST_CACHE.clear()
        _MANIFEST_CACHE[key] = frame
    return _MANIFEST_CACHE[key]


# The database file of each open connection, asked once per connection (a run asks a few dozen
# times); weak keys, so a connection's entry goes with it.
_DATABASE_OF: "weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, str]" = weakref.WeakKeyDictionary()


def _database_of(conn: duckdb.DuckDBPyConnection) -> str:
    if (path := _DATABASE_OF.get(conn)) is None:
        path = _DATABASE_OF[conn] = str(run_query(conn, "database_path").path[0])
    return path


def _remember_graph(conn: duckdb.DuckDBPyConnection, record: "GraphRecord", ids, graph) -> None:
    """Keep a graph just stored as `load_graph` would read it back: rows in sample_id order (the
    edge query's order, so ids that are not strictly ascending are not kept), float32 distances,
    the stored parameters; arrays read-only, since every reader shares them."""
    from quality_assets.knn import KnnGraph

    ids = list(ids)
    if graph.neighbors.size > GRAPH_CACHE_MAX_EDGES or any(b <= a for a, b in zip(ids, ids[1:])):
        return
    neighbors = np.array(graph.neighbors, dtype=np.int64)
    distances = np.array(graph.distances, dtype=np.float32)
    neighbors.flags.writeable = distances.flags.writeable = False
    params = json.loads(json.dumps(record.params, sort_keys=True, default=str))
    kept = KnnGraph(neighbors=neighbors, distances=distances, index_kind=record.index_kind,
                    recall_at_k=record.recall_at_k, params=params)
    _cache_put((_database_of(conn), record.graph_version), (ids, kept, record.graph_version, record.model_version))


def _cache_put(key: tuple[str, str], value: tuple) -> None:
    _GRAPH_CACHE[key] = value
    _GRAPH_CACHE.move_to_end(key)
    while len(_GRAPH_CACHE) > GRAPH_CACHE_ENTRIES:
        _GRAPH_CACHE.popitem(last=False)


def _cached_graph(key: tuple[str, str]):
    """A kept graph as load_graph returns it (the caller may change params and the id list)."""
    from quality_assets.knn import KnnGraph

    if key not in _GRAPH_CACHE:
        return None
    ids, graph, version, source = _GRAPH_CACHE[key]
    return list(ids), KnnGraph(neighbors=graph.neighbors, distances=graph.distances, index_kind=graph.index_kind,
                               recall_at_k=graph.recall_at_k, params=copy.deepcopy(graph.params)), version, source


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
    built: str = "full"  # full | incremental | reused (the stored version, marked current)

    @property
    def reused(self) -> bool:
        return self.built == "reused"


def _graph_version(view: str, source_version: str, manifest_version: str, inputs: dict) -> str:
    """The version of a graph from its inputs alone, known before anything is built."""
    return hashlib.sha256("|".join([
        view, source_version, manifest_version, code_version(*GRAPH_CODE_ROOTS, sql=GRAPH_SQL),
        json.dumps(inputs, sort_keys=True, default=str)]).encode()).hexdigest()[:16]


def _record_of(row, built: str) -> GraphRecord:
    return GraphRecord(str(row.graph_version), str(row.model_version), int(row.n_nodes), int(row.k),
                       str(row.index_kind), None if pd.isna(row.recall_at_k) else float(row.recall_at_k),
                       float(row.seconds), json.loads(row.params_json or "{}"), str(row["view"]), built)


def _reuse(conn: duckdb.DuckDBPyConnection, view: str, graph_version: str) -> GraphRecord | None:
    """The stored graph of this version, marked current, or None when it is not stored whole."""
    stored = run_query(conn, "stored_graph", graph_version=graph_version)
    if stored.empty:
        return None
    run_query(conn, "mark_graph_current", view=view, graph_version=graph_version)
    return _record_of(stored.iloc[0], "reused")


def _store_graph(conn: duckdb.DuckDBPyConnection, view: str, graph_version: str, source_version: str,
                 manifest_version: str, sample_ids: np.ndarray, neighbor_ids: np.ndarray, ranks: np.ndarray,
                 distances: np.ndarray, *, k: int, index_kind: str, recall_at_k: float | None, params: dict,
                 seconds: float, built: str = "full", n_nodes: int | None = None) -> GraphRecord:
    """Write one view's graph (edge rows: sample_id, neighbor_id, 1-based rank, distance), its
    knn_graphs row and its current mark in one short transaction. Older versions keep their edges."""
    _GRAPH_CACHE.pop((_database_of(conn), graph_version), None)  # its edges are being replaced
    sample_ids, neighbor_ids = _id_column(sample_ids), _id_column(neighbor_ids)
    if n_nodes is None:
        n_nodes = (len(np.unique(sample_ids.indices.to_numpy())) if view == "pixel_copy"
                   else len(sample_ids) // max(k, 1))
    params = {**params, "built": built}
    edges = pa.table({
        "sample_id": sample_ids,
        "neighbor_id": neighbor_ids,
        "rank": pa.array(np.asarray(ranks, dtype=np.int32)),
        "distance": pa.array(np.asarray(distances, dtype=np.float32)),
    })
    conn.execute("BEGIN TRANSACTION")
    try:
        write_rows(conn, "knn_edges", graph_version, edges)
        run_query(conn, "insert_knn_graph", graph_version=graph_version, model_version=source_version,
                  n_nodes=n_nodes, k=k, index_kind=index_kind, recall_at_k=recall_at_k,
                  params_json=json.dumps(params, sort_keys=True, default=str), seconds=seconds, view=view,
                  manifest_version=manifest_version)
        run_query(conn, "mark_graph_current", view=view, graph_version=graph_version)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return GraphRecord(graph_version, source_version, n_nodes, k, index_kind, recall_at_k, seconds, params, view,
                       built)


def _ids_at(ids: np.ndarray, positions: np.ndarray) -> pa.DictionaryArray:
    """`ids[positions]` as a dictionary-encoded Arrow column: the ids are converted once, not once per
    edge (building 3.2M edge strings took 1.6 s a graph at 100k samples)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(positions, dtype=np.int32)),
                                          pa.array(np.asarray(ids, dtype=object), pa.string()))


def _id_column(values) -> pa.DictionaryArray:
    """Edge ids as a dictionary-encoded column, whether given encoded or as an array of strings."""
    if isinstance(values, pa.DictionaryArray):
        return values
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return _ids_at(uniques, codes)


def _knn_edges(ids: np.ndarray, graph) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    n, kk = graph.neighbors.shape
    return (_ids_at(ids, np.repeat(np.arange(n), kk)), _ids_at(ids, graph.neighbors.reshape(-1)),
            np.tile(np.arange(1, kk + 1, dtype=np.int32), n), graph.distances.reshape(-1))


def _manifest_state(conn: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    row = run_query(conn, "manifest_version").iloc[0]
    return str(row.manifest_version), int(row.n_samples)


def _index_kind(method: str, n: int, exact_limit: int | None) -> str:
    from quality_assets.knn import DEFAULT_EXACT_LIMIT

    if method != "auto":
        return method
    return "flat" if n <= (DEFAULT_EXACT_LIMIT if exact_limit is None else exact_limit) else "ivf"


def _knn_view(conn: duckdb.DuckDBPyConnection, view: str, graph_version: str, source_version: str,
              manifest_version: str, inputs: dict, ids: np.ndarray, vectors: np.ndarray, *, k: int, method: str,
              seed: int, exact_limit: int | None = None, recall_sample: int = 1000) -> GraphRecord:
    """Build and store one kNN view: updated from the view's current graph when that graph was
    built from the same inputs (same model, k, index, code) and few nodes changed, else rebuilt."""
    from quality_assets.distributed.engine import ray_address
    from quality_assets.distributed.knn import build_knn_graph_on_engine
    from quality_assets.knn import update_knn_graph

    started = time.perf_counter()
    graph, built = None, "full"
    base = _graph_row(conn, view)
    if (base is not None and not pd.isna(base.edges_kept) and bool(base.edges_kept)
            and json.loads(base.params_json or "{}").get("inputs") == inputs):
        base_ids, base_graph, base_version, _ = load_graph(conn, view)
        base_ids = np.asarray(base_ids, dtype=object)
        at = np.searchsorted(ids, base_ids).clip(0, len(ids) - 1)
        positions = np.where(ids[at] == base_ids, at, -1)
        n_changed = int((positions < 0).sum()) + (len(ids) - int((positions >= 0).sum()))
        if n_changed <= INCREMENTAL_MAX_FRACTION * len(ids):
            graph = update_knn_graph(base_graph, positions, vectors, seed=seed, recall_sample=recall_sample)
            graph.params["incremental"]["base_graph"] = base_version
            built = "incremental"
    if graph is None:
        kwargs = {"method": method, "seed": seed, "recall_sample": recall_sample}
        if exact_limit is not None:
            kwargs["exact_limit"] = exact_limit
        graph = build_knn_graph_on_engine(vectors, k, address=ray_address(), **kwargs)
    seconds = time.perf_counter() - started
    record = _store_graph(conn, view, graph_version, source_version, manifest_version, *_knn_edges(ids, graph),
                          k=graph.neighbors.shape[1], index_kind=graph.index_kind, recall_at_k=graph.recall_at_k,
                          params={**graph.params, "inputs": inputs}, seconds=seconds, built=built)
    _remember_graph(conn, record, ids, graph)
    return record


def build_graph(conn: duckdb.DuckDBPyConnection, model_version: str, k: int, *, exact_limit: int | None = None,
                method: str = "auto", seed: int = 0, reuse: bool = True) -> GraphRecord:
    """The SSL view's kNN graph on the current model's vectors.

    Its version (model, active manifest, k, index, seed, code) is known before any vector is read:
    a stored graph of that version is marked current and returned (`built == "reused"`). When only
    some samples were added or removed under the same model, the current graph is updated.
    """
    manifest_version, n_manifest = _manifest_state(conn)
    n_vectors = int(run_query(conn, "count_embeddings", model_version=model_version).n[0])
    if n_vectors != n_manifest:
        raise ValueError(f"{n_manifest - n_vectors} samples have no {model_version} vector; "
                         "materialize embeddings first")
    k_eff = min(k, n_manifest - 1)
    if k_eff < 1:
        raise ValueError("a kNN graph needs at least two samples")
    inputs = {"model_version": model_version, "k": k_eff, "index": _index_kind(method, n_manifest, exact_limit),
              "seed": seed}
    graph_version = _graph_version("ssl", model_version, manifest_version, inputs)
    if reuse and (stored := _reuse(conn, "ssl", graph_version)) is not None:
        return stored
    sample_ids, vectors = load_vectors(conn, model_version)
    return _knn_view(conn, "ssl", graph_version, model_version, manifest_version, inputs,
                     np.asarray(sample_ids, dtype=object), vectors, k=k_eff, method=inputs["index"], seed=seed,
                     exact_limit=exact_limit)


# Bump when the pixel view's vectors or candidate search change: the stored graphs then rebuild.
PIXEL_VIEW_VERSION = "4"  # 2: the hue search joins the copy candidates; 3: the crop search; 4: oblong crops
PIXEL_VIEW_CODE = f"thumbnails{THUMBNAIL_SIZE}:v{PIXEL_VIEW_VERSION}"


def build_pixel_views(conn: duckdb.DuckDBPyConnection, *, k: int = 16, copy_k: int = 8, method: str = "auto",
                      seed: int = 0, reuse: bool = True) -> list[GraphRecord]:
    """The pixel view's kNN graph and its copy-candidate pairs, from the stored thumbnails.

    The candidates are searched among the samples that hold a thumbnail; the kNN graph is built
    only when every sample has one (a view with holes would rank the holes as isolated), otherwise
    the scores read the SSL view alone for off-topic and label errors.

    Versions come from the set of samples holding a thumbnail (a thumbnail is a function of the
    sample's bytes): a stored version is reused. The kNN graph, and the rows of the copy
    candidates' searches, are updated incrementally like the SSL graph.
    """
    from quality_assets.knn import pair_dot
    from quality_assets.pixel_view import graph_vectors, search_vectors

    manifest_version, n_manifest = _manifest_state(conn)
    thumbnail_set = run_query(conn, "thumbnail_set_version", size=THUMBNAIL_SIZE).iloc[0]
    n_known = int(thumbnail_set.n_thumbnails)
    if n_manifest <= 8 or n_known < 2:
        return []
    source = f"{PIXEL_VIEW_CODE}:{str(thumbnail_set.thumbnail_set_version)[:16]}"
    # The view's code version is an input: a drop reuses the stored rows' vectors as well as the rows.
    copy_inputs = {"copy_k": copy_k, "mirror": True, "canonical": True, "seed": seed,
                   "view": PIXEL_VIEW_CODE}
    copy_version = _graph_version("pixel_copy", source, manifest_version, copy_inputs)
    pixel_k = min(k, n_manifest - 1)
    pixel_inputs = {"view": PIXEL_VIEW_CODE, "size": PIXEL_GRAPH_SIZE, "k": pixel_k,
                    "index": _index_kind(method, n_manifest, None), "seed": seed}
    pixel_version = _graph_version("pixel", source, manifest_version, pixel_inputs)
    all_known = n_known == n_manifest

    rows_versions = {view: _graph_version(f"pixel_copy_{view}_rows", source, manifest_version, copy_inputs)
                     for view in COPY_SEARCHES}
    records: list[GraphRecord | None] = [_reuse(conn, "pixel_copy", copy_version) if reuse else None]
    if records[0] is not None:
        for view, version in rows_versions.items():  # the base of the next update
            _reuse(conn, f"pixel_copy_{view}_rows", version)
    if all_known:
        records.append(_reuse(conn, "pixel", pixel_version) if reuse else None)
    if all(record is not None for record in records):
        return records
    ids = np.asarray(sorted(manifest_for_scoring(conn, manifest_version).sample_id), dtype=object)
    thumbs, known = load_thumbnails(conn, list(ids))
    vectors = search_vectors(thumbs)  # the pairs' distances
    if records[0] is None:
        started = time.perf_counter()
        a, b, position, built = _copy_candidates(conn, ids, thumbs, known, copy_k, seed, source, manifest_version,
                                                 copy_inputs, rows_versions)
        distance = np.clip((1.0 - pair_dot(vectors, a, b)) / 2.0, 0.0, 1.0)
        records[0] = _store_graph(conn, "pixel_copy", copy_version, source, manifest_version,
                                  _ids_at(ids, a), _ids_at(ids, b),
                                  position, distance, k=copy_k, index_kind="pairs", recall_at_k=None,
                                  params={"mirror": True, "canonical": True, "inputs": copy_inputs},
                                  seconds=time.perf_counter() - started, built=built)
    if all_known and records[1] is None:
        records[1] = _knn_view(conn, "pixel", pixel_version, source, manifest_version, pixel_inputs, ids,
                               graph_vectors(thumbs), k=pixel_k, method=pixel_inputs["index"], seed=seed,
                               recall_sample=0)
    return records


# The copy candidates' five searches (`pixel_view.pixel_candidate_pairs`): plain and canonical-frame
# thumbnails, each index holding the mirrored thumbnails too, the polar vectors, the ingest hue
# histograms, and the plain thumbnails among every image's crops. Each search's rows (an image's 2k
# nearest entries, 2k + CROPS in the crop search; a mirrored entry stored as its sample id +
# MIRRORED) are stored as a graph of their own, `pixel_copy_<search>_rows`, so that a drop updates
# them instead of searching again.
# The polar and hue searches (turn- and mirror-invariant vectors) hold one entry per image; the hue
# search's pairs with a colourless end are dropped after it.
COPY_SEARCHES = ("plain", "canonical", "polar", "hue", "crop")
MIRRORED_SEARCHES = ("plain", "canonical")
MIRRORED = "|mirrored"


def _search_blocks(search: str) -> int:
    """Index entries per image of a copy search: the image's, then its mirror image's or its crops'."""
    from quality_assets.pixel_view import CROPS

    return 2 if search in MIRRORED_SEARCHES else 1 + CROPS if search == "crop" else 1


def _search_k(search: str, copy_k: int) -> int:
    """Entries a copy search's row keeps (`pixel_view.pixel_candidate_pairs`' k of that search)."""
    from quality_assets.pixel_view import crop_search_k

    return crop_search_k(copy_k) if search == "crop" else 2 * copy_k


def _copy_search_vectors(thumbs: np.ndarray, search: str, hue_vectors: np.ndarray,
                         stored: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A search's index vectors, block by block (`_search_blocks`): the images', then their
    mirror images' (plain, canonical) or their crops' (crop).

    `stored` (positions in `thumbs` of the stored rows' images, -1 for one gone, and the stored
    vectors in the same layout) supplies the vectors of the images it holds: each image's vector
    is a function of its thumbnail alone (the same bits whatever batch computes it, tested), so a
    drop computes only its new images' (at 100k samples the three searches took about 4 s a drop)."""
    from quality_assets.pixel_view import (
        canonical_search_vectors, crop_search_vectors, polar_search_vectors, search_vectors,
    )

    if search == "hue":
        return hue_vectors
    if search == "polar":
        compute = polar_search_vectors
    elif search == "crop":
        def compute(t):
            whole = search_vectors(t)
            return np.vstack([whole, crop_search_vectors(t, whole=whole)])
    else:
        vectors = search_vectors if search == "plain" else canonical_search_vectors
        compute = lambda t: np.vstack([vectors(t), vectors(t, mirror=True)])  # noqa: E731
    n = len(thumbs)
    if stored is None:
        return compute(thumbs)
    positions, stored_vectors = stored
    blocks = stored_vectors.shape[0] // max(positions.size, 1)
    have = positions >= 0
    missing = np.setdiff1d(np.arange(n), positions[have])
    fresh = compute(thumbs[missing]) if missing.size else None
    dim = stored_vectors.shape[1] if fresh is None else fresh.shape[1]
    if fresh is not None and dim != stored_vectors.shape[1]:
        return compute(thumbs)
    out = np.empty((blocks * n, dim), dtype=np.float32)
    for block in range(blocks):
        out[block * n + positions[have]] = stored_vectors[block * positions.size + np.flatnonzero(have)]
        if fresh is not None:
            out[block * n + missing] = fresh[block * missing.size:(block + 1) * missing.size]
    return out


def _copy_rows_file(conn: duckdb.DuckDBPyConnection, graph_version: str) -> Path:
    """Where a copy search's rows live: the quality home's artifacts, beside the database."""
    from quality_assets.store import Store

    return Store(Path(_database_of(conn)).parent).artifacts_dir / "copy_rows" / f"{graph_version}.npz"


def _write_copy_rows(conn: duckdb.DuckDBPyConnection, graph_version: str, ids: np.ndarray, neighbors: np.ndarray,
                     distances: np.ndarray, vectors: np.ndarray) -> None:
    """A search's rows and index vectors as arrays (written whole, then renamed into place: a crash
    leaves no half file).

    The rows are the base of the next drop's update and nothing else reads them, so they are not
    edge rows: writing and reading 2 x 1.6M edge rows took about 8 s of a 1% drop at 100k samples."""
    path = _copy_rows_file(conn, graph_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial.npz")
    np.savez(partial, ids=np.asarray(ids, dtype=str), neighbors=np.asarray(neighbors, dtype=np.int32),
             distances=np.asarray(distances, dtype=np.float32), vectors=np.asarray(vectors, dtype=np.float32))
    os.replace(partial, path)


def remove_copy_rows(conn: duckdb.DuckDBPyConnection, graph_versions) -> int:
    """Delete the row files of these graph versions (pruned ones); returns how many were there."""
    removed = 0
    for version in graph_versions:
        path = _copy_rows_file(conn, str(version))
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def _load_copy_rows(conn: duckdb.DuckDBPyConnection, row, ids: np.ndarray, blocks: int = 2):
    """A stored search's rows as (old query positions, old base positions, neighbours, distances,
    vectors) in the index space of `ids` (and, for a search of several `blocks`, their mirrored or
    cropped entries after them, block by block); -1 where a sample left. None when the rows are
    gone (their file deleted or damaged): the search then runs in full. The vectors (the old
    base's, in its order) are None where the rows have none.

    The old base is the stored queries' samples, then their other entries. Rows written by an
    earlier release sit in the edge table, their ids matched through hash indexes."""
    k = int(row.k)
    path = _copy_rows_file(conn, str(row.graph_version))
    vectors = None
    if path.exists():
        try:
            with np.load(path) as stored:
                sources = stored["ids"].astype(object)
                old_neighbors = stored["neighbors"].astype(np.int64)
                distances = stored["distances"]
                vectors = stored["vectors"] if "vectors" in stored.files else None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            return None  # a damaged file counts as lost: the search runs in full and writes it anew
        if old_neighbors.shape != (sources.size, k) or distances.shape != (sources.size, k):
            return None
        if vectors is not None and (vectors.ndim != 2 or vectors.shape[0] != sources.size * blocks):
            vectors = None
    else:
        table = run_query_arrow(conn, "knn_edges_current", graph_version=row.graph_version)
        if table.num_rows == 0:
            return None
        sources = np.asarray(table.column("sample_id").to_numpy(zero_copy_only=False), dtype=object)[::k]
        neighbors = np.asarray(table.column("neighbor_id").to_numpy(zero_copy_only=False), dtype=object)
        # Only the mirrored searches are old enough to have rows in the edge table.
        names = np.concatenate([sources, sources + MIRRORED]) if blocks == 2 else sources
        old_neighbors = pd.Index(names).get_indexer(neighbors).reshape(-1, k)
        distances = table.column("distance").to_numpy().astype(np.float32).reshape(-1, k)
    n_names = sources.size * blocks
    old_neighbors = np.where(old_neighbors >= 0, old_neighbors, n_names)
    query_positions = pd.Index(np.asarray(ids, dtype=object)).get_indexer(sources)
    held = query_positions >= 0
    base_positions = np.concatenate([np.where(held, query_positions + block * len(ids), -1) for block in range(blocks)]
                                    + [[-1]])  # the last entry stands for a neighbour outside the old base
    return query_positions, base_positions, old_neighbors, distances, vectors


def _copy_candidates(conn, ids, thumbs, known, copy_k, seed, source, manifest_version, inputs, rows_versions):
    """(i, j, best 1-based position, built) as `pixel_view.copy_candidate_pairs` gives them, with each
    search's rows updated from its stored rows when they were built from the same inputs."""
    from quality_assets.distributed.engine import ray_address
    from quality_assets.distributed.knn import build_knn_graph_on_engine
    from quality_assets.knn import update_knn_rows

    from quality_assets.imaging import hue_matrix
    from quality_assets.pixel_view import hue_search_vectors

    rows = np.flatnonzero(known)
    known_ids, t = ids[rows], thumbs[rows]
    n = rows.size
    manifest = manifest_for_scoring(conn, manifest_version).set_index("sample_id")
    hue_vectors, coloured = hue_search_vectors(hue_matrix(manifest["hue_histogram"].reindex(known_ids)), t)
    keys, positions, built = [], [], []
    for search in COPY_SEARCHES:
        started = time.perf_counter()
        view = f"pixel_copy_{search}_rows"
        blocks = _search_blocks(search)
        k = min(_search_k(search, min(copy_k, n - 1)), blocks * n - 1)
        nb = dist = x = None
        base = _graph_row(conn, view)
        if (base is not None and not pd.isna(base.edges_kept) and bool(base.edges_kept) and int(base.k) == k
                and json.loads(base.params_json or "{}").get("inputs") == inputs
                and (old_rows := _load_copy_rows(conn, base, known_ids, blocks)) is not None):
            query_positions, base_positions, old_nb, old_d, old_x = old_rows
            n_changed = int((query_positions < 0).sum()) + n - int((query_positions >= 0).sum())
            if n_changed <= INCREMENTAL_MAX_FRACTION * n:
                x = _copy_search_vectors(t, search, hue_vectors,
                                         None if old_x is None else (query_positions, old_x))
                nb, dist, counts = update_knn_rows(old_nb, old_d, query_positions, base_positions, x, np.arange(n))
                built.append("incremental")
        if nb is None:
            x = _copy_search_vectors(t, search, hue_vectors)
            graph = build_knn_graph_on_engine(x, k, address=ray_address(), seed=seed, recall_sample=0, queries=n)
            nb, dist = graph.neighbors, graph.distances
            built.append("full")
        _write_copy_rows(conn, rows_versions[search], known_ids, nb, dist, x)
        _store_graph(conn, view, rows_versions[search], source, manifest_version, _ids_at(known_ids, []),
                     _ids_at(known_ids, []), np.empty(0, np.int32), np.empty(0, np.float32), k=k,
                     index_kind="rows", recall_at_k=None, params={"inputs": inputs, "rows": "artifact"},
                     seconds=time.perf_counter() - started, built=built[-1], n_nodes=n)
        # As pixel_view._graph_pairs: a mirrored or cropped entry stands for its source image, a
        # row's own entries are skipped, the position counts the entries left.
        target = nb % n
        src = np.repeat(np.arange(n, dtype=np.int64), k)
        keep = src != target.ravel()
        position = np.cumsum(keep.reshape(n, -1), axis=1).ravel()[keep]
        a, b = np.minimum(src[keep], target.ravel()[keep]), np.maximum(src[keep], target.ravel()[keep])
        pair_ok = coloured[a] & coloured[b] if search == "hue" else np.ones(a.size, dtype=bool)
        keys.append(a[pair_ok] * n + b[pair_ok])
        positions.append(position[pair_ok])
    # As pixel_view.pixel_candidate_pairs: each pair once, at its best position in either search.
    key, position = np.concatenate(keys), np.concatenate(positions)
    order = np.lexsort((position, key))
    key, position = key[order], position[order]
    first = np.r_[True, key[1:] != key[:-1]]
    key, position = key[first], position[first].astype(np.int64)
    return rows[key // n], rows[key % n], position, "incremental" if set(built) == {"incremental"} else "full"


# Bump when the property view's vectors change.
PROPERTY_VIEW_VERSION = "1"


def build_property_view(conn: duckdb.DuckDBPyConnection, *, k: int = 16, reuse: bool = True) -> list[GraphRecord]:
    """The property view's kNN graph (`quality_assets.property_view`) from the manifest's ingest
    statistics (a function of each sample's bytes, so the active manifest versions them).

    Always a full rebuild when the manifest changes: its vectors are scaled by the whole set's
    median and spread, so one new sample moves every vector (13 dimensions: cheap)."""
    from quality_assets.property_view import property_graph, property_vectors

    manifest_version, n_manifest = _manifest_state(conn)
    if n_manifest <= 8:
        return []
    source = f"properties:v{PROPERTY_VIEW_VERSION}"
    inputs = {"k": k}
    graph_version = _graph_version("properties", source, manifest_version, inputs)
    if reuse and (stored := _reuse(conn, "properties", graph_version)) is not None:
        return [stored]
    manifest = manifest_for_scoring(conn, manifest_version).sort_values("sample_id").reset_index(drop=True)
    ids = manifest["sample_id"].to_numpy(dtype=object)
    started = time.perf_counter()
    vectors = property_vectors(manifest)
    graph = property_graph(vectors, k)
    record = _store_graph(conn, "properties", graph_version, source, manifest_version, *_knn_edges(ids, graph),
                          k=graph.neighbors.shape[1], index_kind=graph.index_kind, recall_at_k=None,
                          params={"dims": int(vectors.shape[1]), "inputs": inputs},
                          seconds=time.perf_counter() - started)
    _remember_graph(conn, record, ids, graph)
    return [record]


def planned_view_versions(conn: duckdb.DuckDBPyConnection, manifest_version: str) -> tuple[str, str] | None:
    """(ssl graph version, "ssl+pixel+property" versions) the scores will read, from the current
    graphs' rows alone (no edges loaded), as `load_graph`, `load_pixel_views` and `load_view_graph`
    would find them for this manifest; None when a current graph does not say which manifest it
    was built for (a graph of an older release)."""
    rows = {view: _graph_row(conn, view) for view in ("ssl", "pixel", "pixel_copy", "properties")}
    for row in rows.values():
        if row is not None and pd.isna(row.manifest_version):
            return None
    ssl, pixel, copy, properties = rows["ssl"], rows["pixel"], rows["pixel_copy"], rows["properties"]
    if ssl is None or ssl.manifest_version != manifest_version:
        return None
    pixel_versions = []
    if (pixel is not None and copy is not None and pixel.model_version == copy.model_version
            and pixel.manifest_version == manifest_version):
        pixel_versions.append(str(pixel.graph_version))
    if copy is not None:
        pixel_versions.append(str(copy.graph_version))
    property_version = (str(properties.graph_version)
                        if properties is not None and properties.manifest_version == manifest_version else "")
    return str(ssl.graph_version), f"{ssl.graph_version}+{'+'.join(pixel_versions)}+{property_version}"


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
    key = (_database_of(conn), str(row.graph_version))
    if (kept := _cached_graph(key)) is not None:
        return kept
    table = run_query_arrow(conn, "knn_edges_current", graph_version=row.graph_version)
    k = int(row.k)
    sample_col = table.column("sample_id").to_numpy(zero_copy_only=False)
    ordered_ids = np.asarray(sample_col[::k], dtype=object)  # sorted: the query orders by sample_id
    sample_ids = list(ordered_ids)
    # A hash index, not a binary search over fixed-width unicode copies (5 s for 5 graphs at 100k).
    neighbors = pd.Index(ordered_ids).get_indexer(
        np.asarray(table.column("neighbor_id").to_numpy(zero_copy_only=False), dtype=object)).astype(np.int64)
    if (neighbors < 0).any():
        raise ValueError(f"the {view} graph {row.graph_version} has edges to samples that are not its nodes")
    distances = table.column("distance").to_numpy().astype(np.float32)
    graph = KnnGraph(neighbors=neighbors.reshape(-1, k), distances=distances.reshape(-1, k),
                     index_kind=str(row.index_kind),
                     recall_at_k=None if pd.isna(row.recall_at_k) else float(row.recall_at_k),
                     params=json.loads(row.params_json or "{}"))
    if graph.neighbors.size > GRAPH_CACHE_MAX_EDGES:
        return sample_ids, graph, str(row.graph_version), str(row.model_version)
    graph.neighbors.flags.writeable = graph.distances.flags.writeable = False
    _cache_put(key, (sample_ids, graph, str(row.graph_version), str(row.model_version)))
    return _cached_graph(key)


def stored_search_vectors(conn: duckdb.DuckDBPyConnection, search: str, sample_ids) -> np.ndarray | None:
    """A copy search's vectors as its current rows file holds them, float32 [len(sample_ids), d]
    (the images', not their mirror images'), NaN rows for samples it does not hold; None when there
    is no such file or it was written by other view code."""
    row = _graph_row(conn, f"pixel_copy_{search}_rows")
    if row is None or json.loads(row.params_json or "{}").get("inputs", {}).get("view") != PIXEL_VIEW_CODE:
        return None
    stored = _load_copy_rows(conn, row, np.asarray(sample_ids, dtype=object), _search_blocks(search))
    if stored is None or stored[4] is None:
        return None
    query_positions, vectors = stored[0], stored[4]
    out = np.full((len(sample_ids), vectors.shape[1]), np.nan, dtype=np.float32)
    held = query_positions >= 0
    out[query_positions[held]] = vectors[:query_positions.size][held]
    return out


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
        position = pd.Index(np.asarray(sample_ids, dtype=object))
        a = position.get_indexer(np.asarray(table.column("sample_id").to_numpy(zero_copy_only=False), dtype=object))
        b = position.get_indexer(np.asarray(table.column("neighbor_id").to_numpy(zero_copy_only=False), dtype=object))
        # Candidates of samples that left the manifest are dropped; new samples wait for the next graph.
        keep = (a >= 0) & (b >= 0)
        candidates = (a[keep].astype(np.int64), b[keep].astype(np.int64),
                      table.column("rank").to_numpy()[keep].astype(np.int64))
        versions.append(str(copy_row.graph_version))
    return graph, candidates, "+".join(versions)
