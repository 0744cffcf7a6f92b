from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, embed_missing, ensure_model
from quality_assets.view_graphs import build_graph, load_graph
from quality_tests.imagefolders import make_imagefolder

TINY = ModelOptions(epochs=1, batch_size=16, time_budget_s=20.0)


def test_a_new_drop_embeds_only_its_own_images_and_the_model_is_reused(store, tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"a": 20, "b": 20}}, seed=1)
    make_imagefolder(data / "drop2", {"train": {"a": 3, "b": 2}}, seed=2)
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        model = ensure_model(conn, store, TINY)
        first = embed_missing(conn, store, model)
        ingest_drop(conn, data, data / "drop2")
        # 5 new images on 40 is 12.5% growth, under the 20% retrain threshold: same model.
        again = ensure_model(conn, store, TINY)
        second = embed_missing(conn, store, again)
        record = build_graph(conn, again.model_version, k=8)
        sample_ids, graph, _, _ = load_graph(conn)
    assert model.retrained and not again.retrained and again.model_version == model.model_version
    assert "up to date" in again.reason or "grew" in again.reason
    assert (first.n_embedded, second.n_embedded, second.n_total) == (40, 5, 45)
    assert record.n_nodes == 45 and graph.neighbors.shape == (45, 8)
    assert len(set(sample_ids)) == 45


def test_thumbnails_are_made_once_match_the_files_and_survive_a_missing_file(store, tmp_path):
    import numpy as np
    from PIL import Image

    from quality_assets.representation import load_colour_grids, load_thumbnails, thumbnail_missing
    from quality_assets.store import run_query

    data = tmp_path / "data"
    paths = make_imagefolder(data / "drop1", {"train": {"a": 4, "b": 3}}, seed=3)
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        (data / "drop1" / paths[0]).unlink()  # gone after ingest: no thumbnail, no crash
        (data / "drop1" / paths[1]).write_bytes(b"\x89PNG\r\n garbage")  # corrupted after ingest
        first = thumbnail_missing(conn, size=24)
        second = thumbnail_missing(conn, size=24)
        manifest = run_query(conn, "manifest_for_scoring")
        ids = list(manifest.sample_id)
        thumbs, known = load_thumbnails(conn, ids, size=24)
        grids, grid_known = load_colour_grids(conn, ids, size=32)
        superseded = conn.execute("SELECT sample_id, reason FROM superseded_samples").df()
    assert (first.n_made, first.n_unreadable, first.n_total) == (5, 2, 5)
    # The missing and the changed file leave the active manifest (reported, not retried forever);
    # the others are not made again.
    assert sorted(superseded.reason) == ["changed_on_read", "missing_on_read"]
    assert (second.n_made, second.n_unreadable, second.n_total) == (0, 0, 5)
    assert known.sum() == 5 and thumbs.shape == (5, 24, 24) and thumbs.dtype == np.uint8
    rel = dict(zip(manifest.sample_id, manifest.path))
    some = next(i for i, sid in enumerate(ids) if known[i])
    with Image.open(data / rel[ids[some]]) as im:
        expected = np.asarray(im.convert("L").resize((24, 24), Image.BILINEAR))
        expected_grid = np.asarray(im.convert("RGB").resize((32, 32), Image.BOX))
    assert np.array_equal(thumbs[some], expected)
    # The colour grid (near-exact copies) comes from the same decode, for the same samples.
    assert np.array_equal(grid_known, known) and grids.shape == (5, 32, 32, 3)
    assert np.array_equal(grids[some], expected_grid)


def test_a_store_made_before_colour_grids_gets_them_without_new_grayscale_thumbnails(store, tmp_path):
    import numpy as np

    from quality_assets.representation import load_colour_grids, load_thumbnails, thumbnail_missing

    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"a": 3, "b": 3}}, seed=4)
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        thumbnail_missing(conn, size=24)
        ids = list(conn.execute("SELECT sample_id FROM active_manifest ORDER BY sample_id").df().sample_id)
        before, _ = load_thumbnails(conn, ids, size=24)
        # An older store held only the grayscale thumbnails.
        conn.execute("DELETE FROM thumbnails WHERE size = 32")
        again = thumbnail_missing(conn, size=24)
        after, _ = load_thumbnails(conn, ids, size=24)
        grids, grid_known = load_colour_grids(conn, ids)
        rows = conn.execute("SELECT size, count(*) AS n FROM thumbnails GROUP BY size ORDER BY size").fetchall()
    assert again.n_made == 6 and again.n_total == 6
    assert rows == [(24, 6), (32, 6)]            # one row per sample and view: nothing doubled
    assert np.array_equal(before, after) and grid_known.all() and grids.any()


def test_the_colour_grid_needs_its_own_size():
    import pytest

    from quality_assets.representation import thumbnail_missing

    with pytest.raises(ValueError, match="another size"):
        thumbnail_missing(None, size=32, colour_grid_size=32)


def _tiny_model(store, tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data / "d1", {"train": {"a": 10, "b": 10}})
    with store.connect() as conn:
        ingest_drop(conn, data, data / "d1")
        return ensure_model(conn, store, ModelOptions(epochs=1, batch_size=8))


def test_the_embedding_runs_on_the_gpu_when_there_is_one_unless_told_otherwise(store, tmp_path, monkeypatch):
    import pytest
    import torch

    from quality_assets.representation import EMBED_DEVICE_ENV, make_embedder_for

    model = _tiny_model(store, tmp_path)
    monkeypatch.delenv(EMBED_DEVICE_ENV, raising=False)
    assert make_embedder_for(model.row, store).device == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(EMBED_DEVICE_ENV, "cpu")
    assert make_embedder_for(model.row, store).device == "cpu"
    for bad in ("gpu", "cuda:x", "tpu"):
        monkeypatch.setenv(EMBED_DEVICE_ENV, bad)
        with pytest.raises(ValueError, match=EMBED_DEVICE_ENV):
            make_embedder_for(model.row, store)


def test_vectors_embedded_on_the_gpu_are_the_cpus_within_mixed_precision(store, tmp_path, monkeypatch):
    import numpy as np
    import pytest
    import torch

    from quality_assets.representation import EMBED_DEVICE_ENV, load_vectors

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (CI has none)")
    model = _tiny_model(store, tmp_path)
    monkeypatch.setenv(EMBED_DEVICE_ENV, "cuda")
    embed_missing(store, store, model)
    with store.connect(read_only=True) as conn:
        ids, on_gpu = load_vectors(conn, model.model_version)
    with store.connect() as conn:
        conn.execute("DELETE FROM embeddings")
    monkeypatch.setenv(EMBED_DEVICE_ENV, "cpu")
    embed_missing(store, store, model)
    with store.connect(read_only=True) as conn:
        same_ids, on_cpu = load_vectors(conn, model.model_version)
    assert ids == same_ids
    assert np.abs((on_gpu * on_cpu).sum(axis=1) - 1).max() < 1e-2  # cosine to the CPU's vector
