from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, build_graph, embed_missing, ensure_model, load_graph
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
