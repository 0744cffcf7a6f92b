"""The Ray engine against the in-process engine on a real local Ray cluster (`ray start` head and
worker nodes, started and stopped here): the same vectors, the same superseded samples, the same
ingest outcomes, the same kNN graphs."""

import shutil

import numpy as np
import pytest

pytest.importorskip("ray")

from quality_assets.distributed.engine import RAY_ADDRESS_ENV, RAY_BATCH_SIZE_ENV, RAY_KNN_SHARD_ROWS_ENV
from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, embed_missing, ensure_model, load_vectors
from quality_assets.store import Store
from quality_tests.imagefolders import make_imagefolder

TINY = ModelOptions(epochs=1, batch_size=16, time_budget_s=20.0)

pytestmark = pytest.mark.slow  # a Ray cluster takes 15-30 s to start on 2 busy cores


def _superseded(store: Store) -> list[tuple[str, str]]:
    with store.connect(read_only=True) as conn:
        return sorted(conn.execute("SELECT sample_id, reason FROM superseded_samples").fetchall())


def _model_and_a_copy_of_its_home(tmp_path, counts: dict, seed: int, changed: int, copy: str, **store_options):
    """A home with ingested images and a trained model, one file changed after ingest, and a copy
    of that home: (the home, its copy, the model)."""
    data = tmp_path / "data"
    paths = make_imagefolder(data / "drop1", {"train": counts}, seed=seed)
    local = Store(tmp_path / "in_process")
    with local.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        model = ensure_model(conn, local, TINY)
    (data / "drop1" / paths[changed]).write_bytes(b"\x89PNG\r\n not the ingested bytes")
    shutil.copytree(local.home, tmp_path / copy)
    return local, Store(tmp_path / copy, **store_options), model


def test_ray_engine_embeds_the_same_vectors_and_supersedes_the_same_samples(ray_cluster, tmp_path, monkeypatch):
    import ray

    local, on_ray, model = _model_and_a_copy_of_its_home(tmp_path, {"a": 24, "b": 21}, 5, 3, "on_ray")

    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    in_process = embed_missing(local, local, model)
    monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)
    monkeypatch.setenv(RAY_BATCH_SIZE_ENV, "8")
    distributed = embed_missing(on_ray, on_ray, model)

    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2.0
    assert (distributed.n_embedded, distributed.n_total) == (in_process.n_embedded, in_process.n_total) == (44, 44)
    with local.connect(read_only=True) as conn:
        ids_local, vectors_local = load_vectors(conn, model.model_version)
    with on_ray.connect(read_only=True) as conn:
        ids_ray, vectors_ray = load_vectors(conn, model.model_version)
    order_local, order_ray = np.argsort(ids_local), np.argsort(ids_ray)
    assert [ids_local[i] for i in order_local] == [ids_ray[i] for i in order_ray]
    np.testing.assert_allclose(vectors_ray[order_ray], vectors_local[order_local], atol=1e-5)
    assert _superseded(on_ray) == _superseded(local) and len(_superseded(local)) == 1
    # Nothing left to do: a second call embeds nothing and does not touch the cluster's output.
    again = embed_missing(on_ray, on_ray, model)
    assert (again.n_embedded, again.n_total) == (0, 44)


def test_with_parquet_row_storage_the_actors_write_the_vectors_as_shard_files(ray_cluster, tmp_path, monkeypatch):
    from quality_assets.row_shards import SHARDS_DIR

    local, sharded, model = _model_and_a_copy_of_its_home(tmp_path, {"a": 12, "b": 11}, 6, 5, "sharded",
                                                          row_storage="parquet")

    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    in_process = embed_missing(local, local, model)
    monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)
    monkeypatch.setenv(RAY_BATCH_SIZE_ENV, "8")
    distributed = embed_missing(sharded, sharded, model)

    assert (distributed.n_embedded, distributed.n_total) == (in_process.n_embedded, in_process.n_total) == (22, 22)
    with local.connect(read_only=True) as conn:
        expected = dict(zip(*load_vectors(conn, model.model_version)))
    with sharded.connect(read_only=True) as conn:
        got = dict(zip(*load_vectors(conn, model.model_version)))
        listed = conn.execute("SELECT path, n_rows FROM row_shards WHERE table_name = 'embeddings' "
                              "AND shard_key IS NOT NULL").fetchall()
    assert sorted(got) == sorted(expected)
    np.testing.assert_allclose(np.stack([got[s] for s in sorted(got)]),
                               np.stack([expected[s] for s in sorted(expected)]), atol=1e-5)
    # One file per actor batch of at most 8 (23 rows: 3 batches), not one per driver chunk: the
    # actors wrote them, the driver only listed them; the changed file's sample is in none.
    assert len(listed) == 3 and sum(n for _, n in listed) == 22 and max(n for _, n in listed) <= 8
    files = {p.relative_to(sharded.home).as_posix() for p in (sharded.home / SHARDS_DIR).rglob("*") if p.is_file()}
    assert {path for path, _ in listed} < files and not any(f.endswith(".partial") for f in files)
    assert _superseded(sharded) == _superseded(local) and len(_superseded(local)) == 1


def test_ray_tasks_inspect_files_exactly_as_the_in_process_scan(ray_cluster, tmp_path):
    from quality_assets.distributed.ingest import inspect_on_ray
    from quality_assets.scan import _inspect_one
    from quality_tests.imagefolders import (
        write_corrupt_png, write_png_bomb, write_text_as_image, write_truncated, write_zero_byte,
    )

    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 9, "b": 8}}, seed=7)
    write_corrupt_png(data / "train/a/corrupt.png")
    write_truncated(data / "train/a/truncated.jpg", fmt="JPEG")
    write_zero_byte(data / "train/b/empty.png")
    write_text_as_image(data / "train/b/text.png")
    write_png_bomb(data / "train/b/bomb.png")
    (data / "train/b/large.png").write_bytes((data / "train/a").joinpath(sorted(
        p.name for p in (data / "train/a").glob("*.png"))[0]).read_bytes() * 50)
    jobs = [(str(path), 40_000_000, 2_000) for path in sorted(data.rglob("*.*"))]
    seen = []
    on_ray = inspect_on_ray(ray_cluster.address, jobs, chunk_size=4, progress=lambda d, t: seen.append((d, t)))
    in_process = [_inspect_one(job) for job in jobs]
    assert on_ray == in_process
    reasons = sorted(outcome[1] for outcome in in_process if not outcome[0])
    assert len(reasons) == 6 and "corrupt" in reasons  # the bad files are rejected, not crashed on
    assert sum(ok for ok, _, _ in in_process) == len(jobs) - 6
    assert seen[0] == (0, len(jobs)) and seen[-1] == (len(jobs), len(jobs))


def test_an_ingest_with_a_ray_cluster_configured_stores_the_same_rows(ray_cluster, tmp_path, monkeypatch):
    from quality_tests.imagefolders import write_corrupt_png, write_zero_byte

    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"a": 12, "b": 10}, "test": {"a": 4}}, seed=9)
    write_corrupt_png(data / "drop1/train/a/corrupt.png")
    write_zero_byte(data / "drop1/train/b/empty.png")
    rows = {}
    for engine in ("in_process", "ray"):
        if engine == "ray":
            monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)
        else:
            monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
        store = Store(tmp_path / engine)
        with store.connect() as conn:
            ingest_drop(conn, data, data / "drop1")
            manifest = conn.execute("SELECT * EXCLUDE (ingested_at) FROM raw_manifest ORDER BY sample_id").df()
            rejected = conn.execute("SELECT path, reason FROM rejected_samples ORDER BY path").fetchall()
        rows[engine] = (manifest, rejected)
    (manifest_local, rejected_local), (manifest_ray, rejected_ray) = rows["in_process"], rows["ray"]
    assert len(manifest_local) == 26 and len(rejected_local) == 2
    assert rejected_ray == rejected_local
    assert manifest_ray.drop(columns=["hue_histogram"]).equals(manifest_local.drop(columns=["hue_histogram"]))
    for a, b in zip(manifest_ray.hue_histogram, manifest_local.hue_histogram):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("method", ["flat", "ivf"])
def test_a_knn_graph_searched_in_shards_on_ray_equals_the_in_process_graph(ray_cluster, monkeypatch, method):
    from quality_assets.distributed.knn import build_knn_graph_on_engine, build_knn_graph_on_ray
    from quality_assets.knn import build_knn_graph
    from quality_lab.synthetic_vectors import clustered_vectors

    x, _ = clustered_vectors(4000, 24, n_clusters=20, spread=0.3, seed=21)
    x[3990] = x[1500] = x[10]  # exact duplicates in three shards: ties at distance 0
    kwargs = {"method": method, "chunk_rows": 256, "recall_sample": 300, "seed": 2}
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    monkeypatch.delenv(RAY_KNN_SHARD_ROWS_ENV, raising=False)
    in_process = build_knn_graph(x, 10, **kwargs)
    seen = []
    on_ray = build_knn_graph_on_ray(ray_cluster.address, x, 10, shard_rows=700,
                                    progress=lambda stage, done, total: seen.append((stage, done, total)), **kwargs)

    np.testing.assert_array_equal(on_ray.neighbors, in_process.neighbors)
    np.testing.assert_array_equal(on_ray.distances, in_process.distances)
    assert on_ray.neighbors.dtype == np.int64 and on_ray.distances.dtype == np.float32
    assert on_ray.index_kind == in_process.index_kind == method
    assert on_ray.recall_at_k == in_process.recall_at_k
    assert in_process.neighbors[10, :2].tolist() == [1500, 3990]
    timings = ("seconds", "build_seconds", "search_seconds", "search")
    assert ({key: v for key, v in on_ray.params.items() if key not in timings}
            == {key: v for key, v in in_process.params.items() if key not in timings})
    record = on_ray.params["search"]
    # 700 rows per shard, rounded up to whole 256-row chunks: 768, six shards on the cluster's 2 CPUs.
    assert (record["engine"], record["shards"], record["shard_rows"], record["cluster_cpus"]) == ("ray", 6, 768, 2)
    assert "search" not in in_process.params
    if method == "ivf":
        # The index went over once per worker process, not once per shard.
        assert record["index_bytes"] > x.nbytes
        assert 1 <= record["index_loads"] == record["worker_processes"] < record["shards"]
    else:
        assert record["index_bytes"] == record["index_loads"] == 0
    assert ("search", 4000, 4000) in seen

    # The switch: the Ray path only from `min_rows` on, with the shard size from the environment.
    monkeypatch.setenv(RAY_KNN_SHARD_ROWS_ENV, "1000")
    switched = build_knn_graph_on_engine(x, 10, address=ray_cluster.address, min_rows=4000, **kwargs)
    assert (switched.params["search"]["shards"], switched.params["search"]["shard_rows"]) == (4, 1024)
    np.testing.assert_array_equal(switched.neighbors, in_process.neighbors)
    np.testing.assert_array_equal(switched.distances, in_process.distances)
    below = build_knn_graph_on_engine(x, 10, address=ray_cluster.address, min_rows=4001, **kwargs)
    assert "search" not in below.params


def _issue_rows(home) -> "pd.DataFrame":
    import duckdb

    with duckdb.connect(str(home / "quality.duckdb"), read_only=True) as conn:
        return conn.execute("SELECT path, issue_type, score, is_issue, suggested_label FROM issues "
                            "ORDER BY issue_type, path").df()


def test_an_audit_on_the_ray_engine_gives_the_in_process_issue_rows(ray_cluster, tmp_path, monkeypatch):
    """The whole audit through Dagster, in process against on Ray (ingest, DINO on Ray Train,
    embedding by Ray actors into Parquet shards): the same issue rows."""
    from quality_assets.distributed.engine import RAY_TRAIN_WORKERS_ENV
    from quality_assets.runner import run_audit
    from quality_assets.store import ROW_STORAGE_ENV

    data = tmp_path / "data"
    paths = make_imagefolder(data, {"train": {"a": 30, "b": 30}, "test": {"a": 6, "b": 6}}, seed=8)
    shutil.copyfile(data / paths[0], data / paths[0].replace(".png", "_copy.png"))  # an exact duplicate
    model = {"epochs": 1, "batch_size": 8}  # epochs, not a time budget: both runs train the same steps
    rows = {}
    for engine in ("in_process", "ray"):
        home = tmp_path / engine
        monkeypatch.setenv("QUALITY_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        if engine == "ray":
            monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)
            monkeypatch.setenv(RAY_TRAIN_WORKERS_ENV, "1")
            monkeypatch.setenv(ROW_STORAGE_ENV, "parquet")
        outcome = run_audit(home, data, [], extra_op_config={"ssl_model": model}, log_level="ERROR",
                            say=lambda _: None)
        assert outcome.success, outcome.error
        rows[engine] = _issue_rows(home)
    here, on_ray = rows["in_process"], rows["ray"]
    assert len(here) > 0 and set(here.issue_type) >= {"near_duplicate", "off_topic", "label_error", "leakage"}
    assert here[["path", "issue_type"]].equals(on_ray[["path", "issue_type"]])
    np.testing.assert_allclose(on_ray.score.to_numpy(), here.score.to_numpy(), atol=1e-4)
    assert (on_ray.is_issue == here.is_issue).all()
    assert (on_ray.suggested_label.fillna("") == here.suggested_label.fillna("")).all()
    assert here.loc[here.issue_type == "near_duplicate"].is_issue.any()  # the duplicate is found by both
    # The Ray run did go through the cluster: Ray Train's storage (its run's copy removed after the
    # result was read), and vectors in shard files.
    assert list((tmp_path / "ray" / "artifacts" / "ray_train").iterdir()) == []
    assert not (tmp_path / "in_process" / "artifacts" / "ray_train").exists()
    assert any((tmp_path / "ray" / "shards" / "embeddings").rglob("*.parquet"))
