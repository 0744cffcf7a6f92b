import numpy as np
import pytest

from quality_assets.store import Store, arrow_to_vectors, load_sql, run_query, schema_digest, vectors_to_arrow


def test_schema_is_idempotent_and_creates_the_public_views(store):
    with store.connect() as conn:
        first = {row[0] for row in conn.execute("SHOW TABLES").fetchall()}
    with store.connect() as conn:
        second = {row[0] for row in conn.execute("SHOW TABLES").fetchall()}
    assert first == second
    assert {"raw_manifest", "rejected_samples", "issues", "duplicate_pairs", "cleaned_split"} <= first
    assert store.db_path.name == "quality.duckdb"
    assert store.artifacts_dir.is_dir()


def test_a_store_with_another_schema_digest_is_brought_up_to_this_schema(store):
    # What a new release sees on a database the previous one wrote: a different digest (here a
    # view that release did not have) means the DDL runs again and the current digest is kept.
    with store.connect() as conn:
        conn.execute("DROP VIEW issues")
        conn.execute("UPDATE schema_state SET digest = 'previous-release'")
    with store.connect() as conn:
        views = {row[0] for row in conn.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        digests = conn.execute("SELECT digest FROM schema_state").fetchall()
    assert "issues" in views
    assert digests == [(schema_digest(),)]


def test_read_only_connect_on_a_missing_database_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="qaudit audit"):
        with Store(tmp_path / "nowhere").connect(read_only=True):
            pass


def test_unknown_query_name_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no SQL file named"):
        load_sql("does_not_exist")


def test_vectors_round_trip_through_duckdb_unchanged(store):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 5)).astype(np.float32)
    ids = [f"s{i}" for i in range(7)]
    with store.connect() as conn:
        conn.register("_new_vectors", vectors_to_arrow(ids, vectors))
        conn.execute("INSERT INTO embeddings SELECT sample_id, 'm1', vector FROM _new_vectors")
        table = conn.sql("SELECT sample_id, vector FROM embeddings ORDER BY sample_id").to_arrow_table()
    assert table.column("sample_id").to_pylist() == ids
    np.testing.assert_array_equal(arrow_to_vectors(table), vectors)


def test_empty_manifest_has_a_stable_version(store):
    with store.connect() as conn:
        version = run_query(conn, "manifest_version")
    assert version.manifest_version[0] == "empty"
    assert version.n_samples[0] == 0


def test_a_store_written_before_the_hue_histogram_gains_the_column(store):
    # A manifest table as the first release wrote it (no hue_histogram): connecting upgrades it,
    # and its samples read back with NULL (no colour evidence) instead of failing.
    store.db_path.parent.mkdir(parents=True, exist_ok=True)
    with store.connect() as conn:
        conn.execute("DROP TABLE schema_state")  # older releases kept no schema digest
        conn.execute("DROP VIEW IF EXISTS issues")
        conn.execute("ALTER TABLE raw_manifest DROP COLUMN hue_histogram")
        conn.execute("INSERT INTO raw_manifest (sample_id, drop_id, path, split, ingested_at) "
                     "VALUES ('s1', 'd1', 'a.png', 'train', now())")
    with store.connect() as conn:
        columns = {row[0] for row in conn.execute("DESCRIBE raw_manifest").fetchall()}
        value = conn.execute("SELECT hue_histogram FROM raw_manifest WHERE sample_id = 's1'").fetchone()[0]
    assert "hue_histogram" in columns and value is None


def test_a_store_written_before_graph_versions_were_kept_gains_the_columns_and_reads_its_graph(store):
    # knn_graphs as an older release wrote it (no manifest_version / edges_kept, no current_graphs):
    # connecting upgrades it; its graph stays the view's current one but is never reused.
    store.db_path.parent.mkdir(parents=True, exist_ok=True)
    with store.connect() as conn:
        conn.execute("DROP TABLE schema_state")
        conn.execute("ALTER TABLE knn_graphs DROP COLUMN manifest_version")
        conn.execute("ALTER TABLE knn_graphs DROP COLUMN edges_kept")
        conn.execute("DROP TABLE current_graphs")
        conn.execute("ALTER TABLE score_runs DROP COLUMN rows_pruned_at")
        conn.execute("INSERT INTO knn_graphs (graph_version, model_version, n_nodes, k, created_at, view) "
                     "VALUES ('old', 'm1', 3, 1, now() - INTERVAL 1 DAY, 'ssl'), "
                     "('older', 'm1', 3, 1, now() - INTERVAL 2 DAY, 'ssl')")
    with store.connect() as conn:
        columns = {row[0] for row in conn.execute("DESCRIBE knn_graphs").fetchall()}
        current = run_query(conn, "latest_graph", view="ssl").graph_version[0]
        reusable = run_query(conn, "stored_graph", graph_version="old")
        conn.execute("INSERT INTO current_graphs VALUES ('ssl', 'older', now())")
        marked = run_query(conn, "latest_graph", view="ssl").graph_version[0]
    assert {"manifest_version", "edges_kept"} <= columns
    assert current == "old" and reusable.empty and marked == "older"


def test_a_pair_registered_or_measured_after_it_was_verified_keeps_every_verdict(store):
    import pandas as pd

    rows = lambda aligned, agreement, registered, crop=(None, None): pd.DataFrame({  # noqa: E731
        "sample_a": ["a", "c"], "sample_b": ["b", "d"], "mirror": [True, True],
        "aligned": aligned, "agreement": agreement, "registered": registered,
        "crop_distance": [None, None], "whole_distance": [None, None], "crop_difference": list(crop),
        "grid_difference": [None, None], "grid_relative": [None, None]})
    query = ("SELECT sample_a, aligned, agreement, registered, crop_difference FROM pair_verifications "
             "ORDER BY sample_a")
    with store.connect() as conn:
        # Verified; then registered; then searched for a crop (+inf: none found).
        for frame in (rows([0.1, 0.2], [0.3, 0.4], [None, None]), rows([None, 0.2], [None, 0.4], [0.9, 0.8]),
                      rows([None, None], [None, None], [None, None], (0.05, float("inf")))):
            conn.register("_new_pair_verifications", frame)
            run_query(conn, "insert_pair_verifications", verifier_version="v1")
            conn.unregister("_new_pair_verifications")
        assert conn.execute(query).fetchall() == [("a", 0.1, 0.3, 0.9, 0.05), ("c", 0.2, 0.4, 0.8, float("inf"))]
