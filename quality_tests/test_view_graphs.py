import shutil
from pathlib import Path

import numpy as np
import pytest

from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, embed_missing, ensure_model
from quality_assets.store import Store
from quality_assets.view_graphs import build_graph, build_property_view, clear_graph_cache, load_graph
from quality_tests.imagefolders import make_imagefolder

TINY = ModelOptions(epochs=1, batch_size=16, time_budget_s=20.0)


@pytest.fixture
def graphs_stored(store, tmp_path):
    """A store whose ssl and property graphs this process has just built (and so keeps in memory)."""
    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"a": 12, "b": 12}, "test": {"a": 4, "b": 4}}, seed=5)
    clear_graph_cache()
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        model = ensure_model(conn, store, TINY)
        embed_missing(conn, store, model)
        build_graph(conn, model.model_version, k=6)
        build_property_view(conn, k=6)
    yield store
    clear_graph_cache()


def _same_graph(a, b) -> None:
    ids_a, graph_a, version_a, source_a = a
    ids_b, graph_b, version_b, source_b = b
    assert (ids_a, version_a, source_a) == (ids_b, version_b, source_b)
    np.testing.assert_array_equal(graph_a.neighbors, graph_b.neighbors)
    np.testing.assert_array_equal(graph_a.distances, graph_b.distances)
    assert graph_a.distances.dtype == graph_b.distances.dtype == np.float32
    assert (graph_a.index_kind, graph_a.recall_at_k, graph_a.params) == (graph_b.index_kind, graph_b.recall_at_k,
                                                                         graph_b.params)


@pytest.mark.parametrize("view", ["ssl", "properties"])
def test_a_graph_kept_in_memory_reads_as_its_stored_edges(graphs_stored, view):
    with graphs_stored.connect() as conn:
        kept = load_graph(conn, view)      # the graph this process stored, from memory
        clear_graph_cache()
        stored = load_graph(conn, view)    # the same version read from the edge table
        again = load_graph(conn, view)     # kept since that read
    _same_graph(kept, stored)
    _same_graph(again, stored)
    # Every reader shares the kept arrays: writing into them must fail, not change the next reader's.
    with pytest.raises(ValueError, match="read-only"):
        kept[1].neighbors[0, 0] = 0
    kept[1].params["changed"] = True
    kept[0].append("not a sample")
    with graphs_stored.connect() as conn:
        _same_graph(load_graph(conn, view), stored)


def test_the_memory_is_per_database_file(graphs_stored, tmp_path):
    # A copy of the database holds the very same graph version; its edges changed on disk must be
    # what a reader of the copy gets, never the original's graph kept in memory.
    copy = Store(tmp_path / "copy")
    copy.ensure_layout()
    shutil.copy(graphs_stored.db_path, copy.db_path)
    with copy.connect() as conn:
        conn.execute("UPDATE knn_edges SET distance = 0.75")
        _, copied, copied_version, _ = load_graph(conn)
    with graphs_stored.connect() as conn:
        _, original, original_version, _ = load_graph(conn)
    assert copied_version == original_version
    assert np.all(copied.distances == np.float32(0.75))
    assert not np.all(original.distances == np.float32(0.75))


def test_the_manifest_kept_in_memory_follows_the_manifest_version(graphs_stored, tmp_path):
    from quality_assets.store import run_query
    from quality_assets.view_graphs import manifest_for_scoring

    data = tmp_path / "data"
    make_imagefolder(data / "drop2", {"train": {"a": 2, "c": 1}}, seed=6)
    with graphs_stored.connect() as conn:
        first = manifest_for_scoring(conn)
        assert manifest_for_scoring(conn) is first  # the same version: read once
        ingest_drop(conn, data, data / "drop2")
        second = manifest_for_scoring(conn)
        read = run_query(conn, "manifest_for_scoring")
    assert len(first) == 32 and len(second) == 35
    assert list(second.sample_id) == list(read.sample_id) and list(second.label) == list(read.label)


def test_each_connection_knows_its_own_database_file_and_forgets_it_when_gone(graphs_stored, tmp_path):
    import gc

    from quality_assets.view_graphs import _DATABASE_OF, _database_of

    other = Store(tmp_path / "other")
    kept_before = len(_DATABASE_OF)  # the fixture's connection, still referenced by its frame
    for _ in range(3):  # connections come and go; each one answers for its own file
        with graphs_stored.connect(read_only=True) as a, other.connect() as b:
            assert Path(_database_of(a)) == graphs_stored.db_path
            assert Path(_database_of(b)) == other.db_path
            assert Path(_database_of(a)) == graphs_stored.db_path  # asked again: the kept answer
            assert a in _DATABASE_OF and b in _DATABASE_OF
        del a, b
        gc.collect()
        assert len(_DATABASE_OF) == kept_before
