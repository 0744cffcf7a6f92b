"""Per-stage costs for docs/SCALE_PLAN.md: ingest per file (`scan_drop`, one worker: walk, sha256,
decode, image properties) on 256 px JPEGs and 28 px PNGs, and DuckDB vector writes (384-d, chunks of
4,096, as `embed_missing` writes them).

Usage:
    .venv/bin/python benchmarks/bench_stage_costs.py
"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quality_assets.scan import scan_drop
from quality_assets.store import Store, run_query, vectors_to_arrow

work = Path(tempfile.mkdtemp(prefix="stagecost_"))
rng = np.random.default_rng(0)
out = {}
for side, fmt, n in ((256, "JPEG", 600), (28, "PNG", 1500)):
    data = work / f"data_{side}"
    for i in range(n):
        p = data / "train" / ("a" if i % 2 else "b") / f"{i:05d}.{fmt.lower()}"
        p.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (side // 8 + 1, side // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(base).resize((side, side), Image.BILINEAR).save(p, fmt)
    t = time.perf_counter()
    result = scan_drop(data, data, "d", workers=1)
    dt = time.perf_counter() - t
    out[f"ingest_{side}px_{fmt}_files_per_s_1core"] = round(len(result.accepted) / dt, 1)
store = Store(work / "home")
n, dim = 100_000, 384
vectors = rng.standard_normal((n, dim)).astype(np.float32)
ids = [f"s{i:08d}" for i in range(n)]
with store.connect() as conn:
    t = time.perf_counter()
    for start in range(0, n, 4096):
        conn.execute("BEGIN TRANSACTION")
        conn.register("_new_rows", vectors_to_arrow(ids[start:start + 4096], vectors[start:start + 4096]))
        run_query(conn, "insert_embeddings", model_version="m")
        conn.unregister("_new_rows")
        conn.execute("COMMIT")
    dt = time.perf_counter() - t
out["duckdb_vector_insert_rows_per_s_384d"] = round(n / dt, 1)
out["db_mb_after_100k_384d"] = round(store.db_path.stat().st_size / 2**20, 1)
print(json.dumps(out))
shutil.rmtree(work)
