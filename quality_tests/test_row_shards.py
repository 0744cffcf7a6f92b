"""Parquet row storage: embeddings, thumbnails and kNN edges as shard files that DuckDB reads.

Real homes, real images, real DuckDB files and Parquet files: a sharded home must score exactly as
a home with tables, convert either way without losing a row, survive a write killed before its
commit, and give its space back on `qaudit prune`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg
import duckdb
import numpy as np
import pytest

from quality_assets.row_shards import SHARDS_DIR, is_sharded, remove_unlisted_shards, write_rows
from quality_assets.store import ROW_STORAGE_ENV, FAULT_ENV, Store, vectors_to_arrow
from quality_tests.test_incremental import _graphs_and_scores, _materialize, _scores, two_drops  # noqa: F401

BULK = {"embeddings": "ALL", "thumbnails": "ALL",
        "knn_edges": "ALL"}


def _bulk_rows(store: Store) -> dict[str, list]:
    with store.connect(read_only=True) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # noqa: S608
                for table, order in BULK.items()}


def _kinds(store: Store) -> dict[str, str]:
    with store.connect(read_only=True) as conn:
        return dict(conn.execute("SELECT table_name, table_type FROM information_schema.tables "
                                 "WHERE table_name IN ('embeddings', 'thumbnails', 'knn_edges')").fetchall())


def _shard_files(store: Store) -> set[str]:
    root = store.home / SHARDS_DIR
    return {p.relative_to(store.home).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _listed(store: Store) -> set[str]:
    with store.connect(read_only=True) as conn:
        return {path for (path,) in conn.execute("SELECT path FROM row_shards").fetchall()}


def test_a_sharded_home_scores_as_a_home_with_tables_and_its_file_keeps_no_bulk_rows(two_drops, tmp_path,
                                                                                      monkeypatch):
    data, vectors = two_drops
    tables, shards = Store(tmp_path / "tables"), Store(tmp_path / "shards", row_storage="parquet")
    for drops in (["d1"], ["d2"]):  # a full build, then a drop that updates the graphs incrementally
        graphs_t, run_t = _graphs_and_scores(tables, data, vectors, drops)
        graphs_s, run_s = _graphs_and_scores(shards, data, vectors, drops)
        assert {v: (r.graph_version, r.built) for v, r in graphs_t.items()} == {
            v: (r.graph_version, r.built) for v, r in graphs_s.items()}
        assert run_s.score_version == run_t.score_version
        assert _scores(shards, run_s.score_version).equals(_scores(tables, run_t.score_version))
    assert graphs_s["ssl"].built == "incremental"

    assert _kinds(tables) == dict.fromkeys(BULK, "BASE TABLE") and _kinds(shards) == dict.fromkeys(BULK, "VIEW")
    rows = _bulk_rows(tables)
    assert all(rows.values()) and _bulk_rows(shards) == rows
    # Every row is in a listed file, each file under its table and key; nothing unlisted is left.
    files = _shard_files(shards)
    assert files == _listed(shards) and {f.split("/")[1] for f in files} == set(BULK)
    with duckdb.connect(str(shards.db_path), read_only=True) as conn:
        listed_rows = dict(conn.execute("SELECT table_name, sum(n_rows) FROM row_shards GROUP BY ALL").fetchall())
    assert listed_rows == {table: len(table_rows) for table, table_rows in rows.items()}
    # Relative file names: the home reads the same from another working folder, and after a move.
    moved = Store(shards.home.rename(tmp_path / "moved"))
    monkeypatch.chdir(data)
    assert _bulk_rows(moved) == rows
    # The duckdb shell reads them when started in the home (as a person would).
    monkeypatch.chdir(moved.home)
    with duckdb.connect("quality.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM knn_edges").fetchone()[0] == len(rows["knn_edges"])


def test_a_home_converts_either_way_with_every_row_and_a_rerun_reuses_its_versions(two_drops, tmp_path):
    data, vectors = two_drops
    store = Store(tmp_path / "home")
    first, first_run = _graphs_and_scores(store, data, vectors, ["d1"])
    rows = _bulk_rows(store)

    sharded = Store(store.home, row_storage="parquet")
    with sharded.connect() as conn:
        assert is_sharded(conn)
    assert _kinds(store) == dict.fromkeys(BULK, "VIEW") and _bulk_rows(store) == rows
    again, again_run = _graphs_and_scores(sharded, data, vectors, ["d1"])
    assert {r.built for r in again.values()} == {"reused"} and again_run.reused
    assert again_run.score_version == first_run.score_version
    # Converting an already sharded home again is a no-op: no file is written twice.
    files = _shard_files(store)
    with Store(store.home, row_storage="parquet").connect():
        pass
    assert _shard_files(store) == files

    with Store(store.home, row_storage="duckdb").connect() as conn:
        assert not is_sharded(conn)
        keys = {row[0] for row in conn.execute("SELECT constraint_type FROM duckdb_constraints() "
                                                "WHERE table_name = 'embeddings'").fetchall()}
    assert _kinds(store) == dict.fromkeys(BULK, "BASE TABLE") and _bulk_rows(store) == rows
    assert "PRIMARY KEY" in keys  # the table is as a new home has it
    assert _shard_files(store) == set() and _listed(store) == set()
    back, back_run = _graphs_and_scores(store, data, vectors, ["d1"])
    assert {r.built for r in back.values()} == {"reused"} and back_run.score_version == first_run.score_version


def test_vectors_already_stored_are_kept_and_a_rolled_back_write_leaves_a_file_prune_removes(tmp_path):
    store = Store(tmp_path / "home", row_storage="parquet")
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4, 4)).astype(np.float32)
    with store.connect() as conn:
        write_rows(conn, "embeddings", "m1", vectors_to_arrow(["a", "b", "c"], first))
        # "c" again with other values, and "d": the stored "c" stays, as the table's key would keep it.
        write_rows(conn, "embeddings", "m1", vectors_to_arrow(["c", "d", "d", "e"], second))
        stored = conn.execute("SELECT sample_id, vector FROM embeddings ORDER BY sample_id").fetchall()
        conn.execute("BEGIN TRANSACTION")
        write_rows(conn, "embeddings", "m2", vectors_to_arrow(["a"], first[:1]))
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 6
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 5
        # Every listed file is there; the rolled-back one is not listed, and goes.
        listed = {path for (path,) in conn.execute("SELECT path FROM row_shards").fetchall()}
        assert len(_shard_files(store)) == len(listed) + 1 and listed < _shard_files(store)
        assert remove_unlisted_shards(conn) == 1
    assert [sid for sid, _ in stored] == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose(stored[2][1], first[2]) and np.testing.assert_allclose(stored[3][1], second[1])
    assert _shard_files(store) == _listed(store)


def test_a_write_killed_before_its_commit_leaves_the_home_as_it_was(tmp_path):
    store = Store(tmp_path / "home", row_storage="parquet")
    with store.connect() as conn:
        write_rows(conn, "thumbnails", 16, _thumbnail_rows(["a", "b"]))
    before = _bulk_rows(store)
    script = textwrap.dedent(f"""
        from quality_assets.row_shards import write_rows
        from quality_assets.store import Store
        from quality_tests.test_row_shards import _thumbnail_rows
        with Store({str(store.home)!r}).connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            write_rows(conn, "thumbnails", 16, _thumbnail_rows(["c", "d"]))
            conn.execute("COMMIT")
    """)
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, FAULT_ENV: "after:insert_thumbnails"},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr  # SIGKILLed inside the transaction
    assert _bulk_rows(store) == before
    assert len(_shard_files(store) - _listed(store)) == 1  # the dead write's file, listed nowhere
    from quality_assets.cli import main as qaudit

    assert qaudit(["prune", "--home", str(store.home), "--keep", "1"]) == 0
    assert _shard_files(store) == _listed(store) and _bulk_rows(store) == before


def _thumbnail_rows(ids: list[str]):
    import pyarrow as pa

    return pa.table({"sample_id": pa.array(ids, pa.string()),
                     "pixels": pa.array([bytes([i]) * 256 for i in range(len(ids))], pa.binary())})


def test_prune_on_a_sharded_home_deletes_the_pruned_graphs_files(two_drops, tmp_path):
    from quality_assets.cli import main as qaudit

    data, vectors = two_drops
    store = Store(tmp_path / "home", row_storage="parquet")
    first, _ = _graphs_and_scores(store, data, vectors, ["d1"])
    later, _ = _graphs_and_scores(store, data, vectors, ["d2"])
    edge_files = {f for f in _shard_files(store) if f.startswith(f"{SHARDS_DIR}/knn_edges/")}
    assert qaudit(["prune", "--home", str(store.home), "--keep", "1"]) == 0
    with store.connect(read_only=True) as conn:
        versions = {v for (v,) in conn.execute("SELECT DISTINCT graph_version FROM knn_edges").fetchall()}
    assert {r.graph_version for r in later.values()} <= versions
    assert not versions & {r.graph_version for r in first.values()}
    kept = {f for f in _shard_files(store) if f.startswith(f"{SHARDS_DIR}/knn_edges/")}
    assert kept < edge_files and _shard_files(store) == _listed(store)
    assert all(f.split("/")[2] in versions or f.split("/")[2] == "_columns" for f in kept)


def test_the_dagster_assets_write_a_sharded_home_when_asked_by_environment(two_drops, tmp_path, monkeypatch):
    data, vectors = two_drops
    monkeypatch.setenv(ROW_STORAGE_ENV, "parquet")
    with dg.instance_for_test() as instance:
        metadata = _materialize(tmp_path / "home", data, vectors, instance)
    store = Store(tmp_path / "home")
    assert _kinds(store) == dict.fromkeys(BULK, "VIEW")
    assert all(_bulk_rows(store).values())
    assert metadata["issue_scores"]["dagster/row_count"].value > 0


@pytest.mark.parametrize("value", ["s3", "PARQUET", "tables"])
def test_an_unknown_row_storage_is_refused_by_name(value, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="row storage must be one of duckdb, parquet"):
        Store(tmp_path / "home", row_storage=value)
    monkeypatch.setenv(ROW_STORAGE_ENV, value)
    with pytest.raises(ValueError, match=ROW_STORAGE_ENV):
        Store(tmp_path / "home")


def _worker_shard(store: Store, model_version: str, ids: list[str], vectors: np.ndarray) -> str:
    """A shard file as a Ray embedding actor writes it (distributed.embedding.EmbedActor)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from quality_assets.row_shards import partial_name, shard_folder

    relative = partial_name(shard_folder("embeddings", model_version))
    (store.home / relative).parent.mkdir(parents=True, exist_ok=True)
    table = vectors_to_arrow(ids, vectors).add_column(1, "model_version", pa.array([model_version] * len(ids)))
    pq.write_table(table, store.home / relative)
    return relative


def test_a_workers_shard_file_is_listed_as_written_and_a_retried_one_adds_only_its_new_rows(tmp_path):
    from quality_assets.row_shards import adopt_shard

    store = Store(tmp_path / "home", row_storage="parquet")
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5, 4)).astype(np.float32)
    first = _worker_shard(store, "m1", ["a", "b", "c"], vectors[:3])
    retried = _worker_shard(store, "m1", ["c", "d", "e"], vectors[2:])
    with store.connect() as conn:
        conn.execute("BEGIN TRANSACTION")
        assert adopt_shard(conn, "embeddings", "m1", first) == 3
        conn.execute("COMMIT")
        # The first file is listed as it is, under its final name: nothing was read or rewritten.
        listed = conn.execute("SELECT path, n_rows FROM row_shards WHERE shard_key = 'm1'").fetchall()
        assert listed == [(first.removesuffix(".partial"), 3)]
        assert adopt_shard(conn, "embeddings", "m1", retried) == 2  # "c" is stored already
        stored = conn.execute("SELECT sample_id, vector FROM embeddings ORDER BY sample_id").fetchall()
    assert [sid for sid, _ in stored] == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose(np.array([v for _, v in stored]), vectors, rtol=1e-6)
    assert _shard_files(store) == _listed(store)  # the retried file's partial is gone


def test_adopting_a_file_that_is_not_a_whole_worker_shard_is_refused(tmp_path):
    from quality_assets.row_shards import adopt_shard

    sharded, tables = Store(tmp_path / "shards", row_storage="parquet"), Store(tmp_path / "tables")
    whole = _worker_shard(sharded, "m1", ["a"], np.ones((1, 4), np.float32))
    with sharded.connect() as conn:
        with pytest.raises(FileNotFoundError, match="no worker shard file"):
            adopt_shard(conn, "embeddings", "m1", whole.removesuffix(".partial"))  # not a partial name
        with pytest.raises(FileNotFoundError, match="no worker shard file"):
            adopt_shard(conn, "embeddings", "m1", "shards/embeddings/m1/gone.parquet.partial")
        with pytest.raises(ValueError, match="added by key"):
            adopt_shard(conn, "knn_edges", "g1", whole)
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0
    with tables.connect() as conn, pytest.raises(ValueError, match="sharded home only"):
        adopt_shard(conn, "embeddings", "m1", whole)


def test_prune_merges_a_keys_small_shard_files_and_keeps_every_row(tmp_path):
    from quality_assets.cli import main as qaudit
    from quality_assets.row_shards import compact_shards

    store = Store(tmp_path / "home", row_storage="parquet")
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(40, 4)).astype(np.float32)
    with store.connect() as conn:
        for start in range(0, 40, 8):  # five chunks of model m1, one of m2
            write_rows(conn, "embeddings", "m1", vectors_to_arrow([f"s{i:02d}" for i in range(start, start + 8)],
                                                                   vectors[start:start + 8]))
        write_rows(conn, "embeddings", "m2", vectors_to_arrow(["s00"], vectors[:1]))
    rows = _bulk_rows(store)
    files_before = {f for f in _listed(store) if "/m1/" in f}
    assert len(files_before) == 5
    with store.connect() as conn:  # at most 16 rows a file: 8 + 8 | 8 + 8 | 8
        conn.execute("BEGIN TRANSACTION")
        assert compact_shards(conn, target_rows=16) == 4
        conn.execute("COMMIT")
        counts = sorted(n for (n,) in conn.execute(
            "SELECT n_rows FROM row_shards WHERE shard_key = 'm1'").fetchall())
    assert counts == [8, 16, 16] and _bulk_rows(store) == rows
    assert qaudit(["prune", "--home", str(store.home), "--keep", "1"]) == 0  # the default: one file a key
    m1 = {f for f in _listed(store) if "/m1/" in f}
    assert len(m1) == 1 and not m1 & files_before and _bulk_rows(store) == rows
    assert _shard_files(store) == _listed(store)  # the merged files are gone from disk


def test_a_new_release_schema_leaves_a_sharded_home_sharded(tmp_path):
    # A new release's DDL runs again (another schema digest): CREATE TABLE IF NOT EXISTS must not
    # bring an empty table back over the views.
    store = Store(tmp_path / "home", row_storage="parquet")
    with store.connect() as conn:
        write_rows(conn, "thumbnails", 24, _thumbnail_rows(["a", "b", "c"]))
        conn.execute("UPDATE schema_state SET digest = 'previous-release'")
    rows = _bulk_rows(store)
    with Store(store.home).connect() as conn:
        assert is_sharded(conn)
    assert _kinds(store) == dict.fromkeys(BULK, "VIEW") and _bulk_rows(store) == rows and rows["thumbnails"]


def test_prune_leaves_a_workers_partial_file_in_progress_and_removes_an_old_one(tmp_path):
    import time

    store = Store(tmp_path / "home", row_storage="parquet")
    in_progress = _worker_shard(store, "m1", ["a"], np.ones((1, 4), np.float32))
    abandoned = _worker_shard(store, "m1", ["b"], np.ones((1, 4), np.float32))
    old = time.time() - 2 * 3600
    os.utime(store.home / abandoned, (old, old))
    with store.connect() as conn:
        assert remove_unlisted_shards(conn) == 1
    assert (store.home / in_progress).is_file() and not (store.home / abandoned).exists()


def test_a_shard_file_lost_from_disk_is_a_clear_error_naming_it(tmp_path):
    store = Store(tmp_path / "home", row_storage="parquet")
    with store.connect() as conn:
        write_rows(conn, "embeddings", "m1", vectors_to_arrow(["a", "b"], np.ones((2, 4), np.float32)))
    [lost] = [f for f in _listed(store) if "/m1/" in f]
    (store.home / lost).unlink()
    with store.connect(read_only=True) as conn, pytest.raises(duckdb.IOException, match=lost.split("/")[-1]):
        conn.execute("SELECT count(*) FROM embeddings").fetchone()
