"""Row storage of the bulk tables: tables in the DuckDB file against Parquet shards (row_shards.py).

The same rows are written and read back through the service's own paths in one process, tables
first, then shards, `--repeats` times alternating: embeddings as `embed_missing` writes them (384-d,
chunks of 4,096, one transaction each), one kNN graph's edges as `_store_graph` writes them (k = 16),
then the full reads the scores make (`embeddings_for_model`, `knn_edges_current`). Reports rows/s,
read seconds, the DuckDB file's size and the shard files' size, and each shard figure as a ratio to
the tables' in the same run (this machine is shared: compare the ratios, not the absolute figures).

Usage:
    .venv/bin/python benchmarks/bench_row_storage.py [--rows 100000] [--dim 384] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_assets.row_shards import SHARDS_DIR, write_rows  # noqa: E402
from quality_assets.store import Store, run_query, run_query_arrow, vectors_to_arrow  # noqa: E402

CHUNK, K = 4096, 16


def _manifest(conn, ids: list[str]) -> None:
    """Just enough manifest for the reads' join with the active samples."""
    conn.execute("INSERT INTO drops (drop_id, data_root, drop_dir) VALUES ('d', '/data', '.')")
    frame = pa.table({"sample_id": ids, "drop_id": ["d"] * len(ids), "path": ids, "split": ["train"] * len(ids)})
    conn.register("_bench_manifest", frame)
    conn.execute("INSERT INTO raw_manifest (sample_id, drop_id, path, split, ingested_at) "
                 "SELECT sample_id, drop_id, path, split, now() FROM _bench_manifest")
    conn.unregister("_bench_manifest")


def one_run(home: Path, layout: str, ids: list[str], vectors: np.ndarray, edges: pa.Table) -> dict:
    store = Store(home, row_storage=layout)
    with store.connect() as conn:
        _manifest(conn, ids)
        started = time.perf_counter()
        for start in range(0, len(ids), CHUNK):
            conn.execute("BEGIN TRANSACTION")
            write_rows(conn, "embeddings", "m", vectors_to_arrow(ids[start:start + CHUNK], vectors[start:start + CHUNK]))
            conn.execute("COMMIT")
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("BEGIN TRANSACTION")
        write_rows(conn, "knn_edges", "g", edges)
        conn.execute("COMMIT")
        edges_s = time.perf_counter() - started
        conn.execute("CHECKPOINT")
    with store.connect(read_only=True) as conn:
        started = time.perf_counter()
        read = run_query_arrow(conn, "embeddings_for_model", model_version="m")
        read_vectors_s = time.perf_counter() - started
        started = time.perf_counter()
        read_edges = run_query_arrow(conn, "knn_edges_current", graph_version="g")
        read_edges_s = time.perf_counter() - started
        assert read.num_rows == len(ids) and read_edges.num_rows == edges.num_rows
        assert int(run_query(conn, "count_embeddings", model_version="m").n[0]) == len(ids)
    shards = sum(p.stat().st_size for p in (home / SHARDS_DIR).rglob("*.parquet")) if layout == "parquet" else 0
    return {"vector_rows_per_s": len(ids) / embed_s, "edge_rows_per_s": edges.num_rows / edges_s,
            "read_vectors_s": read_vectors_s, "read_edges_s": read_edges_s,
            "duckdb_file_mb": store.db_path.stat().st_size / 2**20, "shard_files_mb": shards / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = [f"s{i:09d}" for i in range(args.rows)]
    vectors = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    neighbours = rng.integers(0, args.rows, (args.rows, K))
    edges = pa.table({"sample_id": pa.array(np.repeat(ids, K)),
                      "neighbor_id": pa.array(np.asarray(ids)[neighbours.ravel()]),
                      "rank": pa.array(np.tile(np.arange(1, K + 1, dtype=np.int32), args.rows)),
                      "distance": pa.array(rng.random(args.rows * K, dtype=np.float32))})
    runs: dict[str, list[dict]] = {"duckdb": [], "parquet": []}
    work = Path(tempfile.mkdtemp(prefix="rowstorage_"))
    try:
        for repeat in range(args.repeats):
            for layout in ("duckdb", "parquet"):
                home = work / f"{layout}{repeat}"
                runs[layout].append(one_run(home, layout, ids, vectors, edges))
                shutil.rmtree(home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    medians = {layout: {key: statistics.median(run[key] for run in layout_runs) for key in layout_runs[0]}
               for layout, layout_runs in runs.items()}
    ratios = {key: medians["parquet"][key] / medians["duckdb"][key]
              for key in medians["duckdb"] if medians["duckdb"][key]}
    print(json.dumps({"rows": args.rows, "dim": args.dim, "k": K, "repeats": args.repeats,
                      "median": {layout: {k: round(v, 3) for k, v in m.items()} for layout, m in medians.items()},
                      "parquet_over_duckdb": {k: round(v, 3) for k, v in ratios.items()}}, indent=2))


if __name__ == "__main__":
    main()
