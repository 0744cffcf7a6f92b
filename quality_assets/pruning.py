"""`qaudit prune`: space for a store that keeps every version.

Every graph, score run and cleaned split version stays queryable by default (an identical re-run
reuses them, `qaudit diff` compares them). Pruning deletes the rows of all but the newest `keep`
versions of each (the current graph of each view always stays) and keeps their version rows, marked,
so lineage still reads and a pruned version that comes back is computed again rather than reused.
Stored pixel verdicts of an older verifier code are deleted too, and so are the row files of the
copy searches' pruned versions (`artifacts/copy_rows`), all but the newest `keep` fits of the
label-error pixel classifier (`artifacts/pixel_classifier`), of its representation classifiers
(`artifacts/label_model`) and of the near-duplicate copy descriptor (`artifacts/copy_descriptor`),
and, with Parquet row storage, the shard files no version lists any more; the small shard files of
each key are merged into few.
"""

from __future__ import annotations

import duckdb

from quality_assets import copy_descriptor_fits, label_model_fits, pixel_classifier_fits
from quality_assets.row_shards import compact_shards, delete_keys, remove_unlisted_shards
from quality_assets.score_run import verifier_version
from quality_assets.store import run_query
from quality_assets.view_graphs import remove_copy_rows


def prune_versions(conn: duckdb.DuckDBPyConnection, keep: int) -> dict[str, int]:
    """Prune to the `keep` newest versions; returns how many graph, score and split versions lost their rows."""
    if int(keep) < 1:
        raise ValueError(f"--keep must be at least 1 (the current versions), got {keep}")
    conn.execute("BEGIN TRANSACTION")
    try:
        counts = run_query(conn, "prune_versions", keep=int(keep), verifier_version=verifier_version()).iloc[0]
        delete_keys(conn, "knn_edges", "_pruned_graphs")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    # Parquet row storage: each key's small shard files (one per written chunk) become few.
    conn.execute("BEGIN TRANSACTION")
    try:
        compact_shards(conn)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    # Files go after the commit: the copy searches' rows of a pruned version (view_graphs), and
    # shard files no transaction lists any more (pruned, replaced or merged, or a crashed write's).
    remove_copy_rows(conn, run_query(conn, "pruned_copy_rows").graph_version)
    remove_unlisted_shards(conn)
    pixel_classifier_fits.prune_fits(conn, keep)
    copy_descriptor_fits.prune_fits(conn, keep)
    label_model_fits.prune_fits(conn, keep)
    # Deleted rows free their blocks for reuse at the checkpoint; the file itself does not shrink.
    conn.execute("CHECKPOINT")
    return {name: int(counts[name]) for name in ("graphs", "score_runs", "splits")}
