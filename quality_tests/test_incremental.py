"""Incremental runs: a version already stored is reused (an identical re-run does no work), every graph
version stays queryable, and a drop under the same model updates the graphs instead of rebuilding
them, with the same graph and the same scores as a full rebuild.

Vectors come from the images' own pixels through the `precomputed` embedder, written once for every
drop, so a drop embeds under the same model and the graphs are exact (flat).
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from quality_assets.cleaning import CleaningPolicy
from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.defs.resources import QualityStoreResource
from quality_assets.ingest import ingest_drop
from quality_assets.imaging import hue_matrix
from quality_assets.pixel_view import CROPS, copy_candidate_pairs
from quality_assets.representation import (
    ModelOptions,
    embed_missing,
    ensure_model,
    load_thumbnails,
    thumbnail_missing,
)
from quality_assets.score_run import build_cleaned_split, run_scores
from quality_assets.scoring import ScoreConfig
from quality_assets.store import Store, run_query, run_query_arrow
from quality_assets.view_graphs import (
    COPY_SEARCHES,
    build_graph,
    build_pixel_views,
    build_property_view,
    load_graph,
    stored_search_vectors,
)
from quality_tests.imagefolders import make_imagefolder

DROP1 = {"train": {"a": 40, "b": 40}, "test": {"a": 8, "b": 8}}
DROP2 = {"train": {"a": 3, "b": 2}}


def _pixel_vectors(data: Path, out: Path) -> Path:
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    matrix = np.stack([np.asarray(Image.open(data / p).convert("L").resize((8, 8), Image.BOX), np.float32).ravel()
                       for p in paths])
    matrix -= matrix.mean(axis=1, keepdims=True)
    np.save(out, matrix)
    Path(str(out) + ".paths.txt").write_text("\n".join(paths))
    return out


@pytest.fixture
def two_drops(tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data / "d1", DROP1, seed=1)
    make_imagefolder(data / "d2", DROP2, seed=2)
    return data, _pixel_vectors(data, tmp_path / "vectors.npy")


def _graphs_and_scores(store: Store, data: Path, vectors: Path, drops: list[str]):
    with store.connect() as conn:
        for drop in drops:
            ingest_drop(conn, data, data / drop)
        model = ensure_model(conn, store, ModelOptions(embedder="precomputed", embeddings_file=str(vectors)))
        embed_missing(conn, store, model)
        thumbnail_missing(conn)
        records = [build_graph(conn, model.model_version, 8), *build_pixel_views(conn, k=8, copy_k=4),
                   *build_property_view(conn, k=8)]
        run = run_scores(conn, ScoreConfig())
    return {r.view: r for r in records}, run


def _copy_rows_versions(conn) -> dict[str, str]:
    """The current graph version of each copy search's rows, by view."""
    return dict(conn.execute("SELECT view, graph_version FROM current_graphs "
                             "WHERE view LIKE 'pixel_copy_%_rows'").fetchall())


def _fresh_copy_pairs(conn) -> list[tuple[str, str, int]]:
    """(sample, neighbour, position) of the pixel view's own candidate search on the stored thumbnails."""
    manifest = run_query(conn, "manifest_for_scoring").sort_values("sample_id")
    ids = manifest.sample_id.tolist()
    thumbs, known = load_thumbnails(conn, ids)
    i, j, position = copy_candidate_pairs(thumbs, known, 4, mirror=True,
                                          hue_histograms=hue_matrix(manifest["hue_histogram"]))
    return sorted(zip([ids[x] for x in i], [ids[x] for x in j], position.tolist()))


def _same_up_to_ties(a, b, atol=1e-5):
    np.testing.assert_allclose(a.distances, b.distances, atol=atol)
    for row in np.flatnonzero((a.neighbors != b.neighbors).any(axis=1)):
        kth = max(a.distances[row, -1], b.distances[row, -1])
        assert (set(a.neighbors[row][a.distances[row] < kth - atol].tolist())
                == set(b.neighbors[row][b.distances[row] < kth - atol].tolist())), row


def _scores(store: Store, score_version: str) -> pd.DataFrame:
    with store.connect(read_only=True) as conn:
        return conn.execute("SELECT sample_id, issue_type, score, rank, is_issue, suggested_label "
                            "FROM issue_scores WHERE score_version = ? ORDER BY issue_type, sample_id",
                            [score_version]).df()


def test_a_drop_updates_the_graphs_and_scores_like_a_full_rebuild(two_drops, tmp_path):
    data, vectors = two_drops
    incremental, full = Store(tmp_path / "incremental"), Store(tmp_path / "full")
    first, _ = _graphs_and_scores(incremental, data, vectors, ["d1"])
    updated, updated_run = _graphs_and_scores(incremental, data, vectors, ["d2"])
    rebuilt, rebuilt_run = _graphs_and_scores(full, data, vectors, ["d1", "d2"])

    assert {v: r.built for v, r in first.items()} == dict.fromkeys(first, "full")
    # Same model, 5 new samples on 96: the kNN views and the copy candidates' searches are updated,
    # the property view (scaled by the whole set) is built again.
    assert {v: r.built for v, r in updated.items()} == {
        "ssl": "incremental", "pixel": "incremental", "pixel_copy": "incremental", "properties": "full"}
    assert updated["ssl"].params["incremental"]["added"] == 5
    assert {v: r.built for v, r in rebuilt.items()} == dict.fromkeys(rebuilt, "full")
    # Same inputs, same version, however the graph was reached.
    assert {v: r.graph_version for v, r in updated.items()} == {v: r.graph_version for v, r in rebuilt.items()}
    for view in ("ssl", "pixel"):
        with incremental.connect(read_only=True) as a, full.connect(read_only=True) as b:
            (ids_a, graph_a, _, _), (ids_b, graph_b, _, _) = load_graph(a, view), load_graph(b, view)
        assert ids_a == ids_b
        _same_up_to_ties(graph_a, graph_b)

    # The copy candidates: the same pairs at the same positions as a fresh search, and as the
    # pixel view's own candidate search on the stored thumbnails.
    copy_version = updated["pixel_copy"].graph_version
    query = "SELECT sample_id, neighbor_id, rank FROM knn_edges WHERE graph_version = ? ORDER BY ALL"
    with incremental.connect(read_only=True) as a, full.connect(read_only=True) as b:
        pairs_a, pairs_b = a.execute(query, [copy_version]).fetchall(), b.execute(query, [copy_version]).fetchall()
        fresh = _fresh_copy_pairs(b)
    assert pairs_a == pairs_b == fresh

    assert updated_run.score_version == rebuilt_run.score_version and not updated_run.reused
    # Pixel verdicts: the drop's run read back the first run's and verified only the pairs it
    # brought; the rebuild verified every pair (same scores below either way).
    assert updated_run.summary["pair_verdicts_reused"] > 0
    assert 0 < updated_run.summary["pairs_verified_now"] < rebuilt_run.summary["pairs_verified_now"]
    assert rebuilt_run.summary["pair_verdicts_reused"] == 0
    # Registrations (the costliest verdict) are read back the same way.
    assert 0 < updated_run.summary["pairs_registered_now"] < rebuilt_run.summary["pairs_registered_now"]
    # And the crop measures (pair evidence's crop distances, leakage's crop search).
    # (These digits have no pair within the near-exact check's bound: its memo is tested in test_near_exact.)
    for measure in ("crop_distances_measured_now", "leak_crop_searches_now"):
        assert 0 < updated_run.summary[measure] < rebuilt_run.summary[measure], measure
    a, b = _scores(incremental, updated_run.score_version), _scores(full, rebuilt_run.score_version)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), atol=1e-6)
    assert (a.is_issue.to_numpy() == b.is_issue.to_numpy()).all()
    assert (a.suggested_label.fillna("").to_numpy() == b.suggested_label.fillna("").to_numpy()).all()
    # Ranks agree up to ties: within each issue type, rank order follows the (shared) scores.
    for _, group in a.merge(b, on=["issue_type", "sample_id"], suffixes=("_a", "_b")).groupby("issue_type"):
        differs = group[group.rank_a != group.rank_b]
        for _, row in differs.iterrows():
            tied = group[np.isclose(group.score_a, row.score_a, atol=1e-9)]
            assert row.rank_b in set(tied.rank_a), row.to_dict()


def test_an_identical_rerun_reuses_every_version_and_old_versions_stay_queryable(two_drops, tmp_path):
    data, vectors = two_drops
    store = Store(tmp_path / "home")
    first, first_run = _graphs_and_scores(store, data, vectors, ["d1"])
    again, again_run = _graphs_and_scores(store, data, vectors, ["d1"])
    assert {v: r.built for v, r in again.items()} == dict.fromkeys(first, "reused")
    assert {v: r.graph_version for v, r in again.items()} == {v: r.graph_version for v, r in first.items()}
    assert again_run.reused and again_run.score_version == first_run.score_version
    assert again_run.summary == first_run.summary and again_run.n_issue_rows == len(first_run.outputs.issue_rows)

    with store.connect() as conn:
        split = build_cleaned_split(conn, CleaningPolicy())
        same_split = build_cleaned_split(conn, CleaningPolicy())
        other_policy = build_cleaned_split(conn, CleaningPolicy(drop_off_topic=False))
        back = build_cleaned_split(conn, CleaningPolicy())
        current = run_query(conn, "app_split_version").split_version[0]
    assert not split.reused and same_split.reused and not other_policy.reused and back.reused
    assert same_split.split_version == back.split_version == split.split_version == current
    assert same_split.counts == split.counts and len(same_split.split) == len(split.split)

    # A drop makes new versions; the first ones keep their edges and rows, and become current
    # again when their inputs come back (here: a k the first run used).
    later, _ = _graphs_and_scores(store, data, vectors, ["d2"])
    with store.connect() as conn:
        for view, record in first.items():
            old_edges = run_query_arrow(conn, "knn_edges_current", graph_version=record.graph_version)
            assert old_edges.num_rows > 0, view
            assert later[view].graph_version != record.graph_version
        current = dict(conn.execute("SELECT view, graph_version FROM current_graphs").fetchall())
        assert {v: current[v] for v in later} == {v: r.graph_version for v, r in later.items()}
        # The copy candidates' search rows, the base of the next update, are current too.
        assert {"pixel_copy_plain_rows", "pixel_copy_canonical_rows"} <= set(current)
        assert conn.execute("SELECT count(*) FROM score_runs").fetchone()[0] == 2
        assert conn.execute("SELECT count(DISTINCT score_version) FROM issue_scores").fetchone()[0] == 2
        smaller_k = build_graph(conn, later["ssl"].model_version, 5)
        assert smaller_k.built == "full"  # another k: no graph to update from
        back_to_8 = build_graph(conn, later["ssl"].model_version, 8)
        assert back_to_8.built == "reused" and back_to_8.graph_version == later["ssl"].graph_version
        assert load_graph(conn)[2] == later["ssl"].graph_version


def _materialize(home: Path, data: Path, vectors: Path, instance) -> dict:
    result = dg.materialize(
        ALL_ASSETS + ALL_CHECKS,
        resources={"store": QualityStoreResource(home=str(home)),
                   "gates": GateThresholds(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)},
        run_config={"ops": {"raw_manifest": {"config": {"data_root": str(data), "drops": ["d1"]}},
                            "ssl_model": {"config": {"embedder": "precomputed", "embeddings_file": str(vectors)}}}},
        instance=instance, raise_on_error=False,
        selection=["raw_manifest", "ssl_model", "embeddings", "knn_graph", "issue_scores", "cleaned_split",
                   "training_probe"],
    )
    assert result.success, result.get_step_failure_events()
    return {event.asset_key.to_user_string(): event.materialization.metadata
            for event in result.get_asset_materialization_events()}


def _consumer_rows(store: Store) -> tuple[list, pd.DataFrame]:
    with store.connect(read_only=True) as conn:
        return (conn.execute("SELECT consumer_version, consumer, split_version, created_at FROM consumer_runs")
                .fetchall(), conn.execute("SELECT * FROM consumer_accuracies ORDER BY train").df())


def test_an_identical_rerun_through_dagster_says_it_reused_each_stage(two_drops, tmp_path):
    from quality_assets.defs.training.assets import training_probe

    data, vectors = two_drops
    store = Store(tmp_path / "home")
    with dg.instance_for_test() as instance:
        first = _materialize(store.home, data, vectors, instance)
        runs_first, accuracies_first = _consumer_rows(store)
        second = _materialize(store.home, data, vectors, instance)
        runs_second, accuracies_second = _consumer_rows(store)
        # A store that lost the consumer's rows (one from before the consumer tables) trains once more.
        with store.connect() as conn:
            conn.execute("DELETE FROM consumer_accuracies")
            conn.execute("DELETE FROM consumer_runs")
        again = dg.materialize([training_probe], resources={"store": QualityStoreResource(home=str(store.home))},
                               instance=instance)
        runs_again, accuracies_again = _consumer_rows(store)
    for asset in ("knn_graph", "issue_scores", "cleaned_split", "training_probe"):
        assert first[asset]["reused"].value is False, asset
        assert second[asset]["reused"].value is True, asset
    assert json.loads(json.dumps(second["knn_graph"]["built"].value)) == {
        "ssl": "reused", "pixel": "reused", "pixel_copy": "reused", "properties": "reused"}
    for key in ("graph_version", "score_version", "split_version"):
        asset = {"graph_version": "knn_graph", "score_version": "issue_scores", "split_version": "cleaned_split"}[key]
        assert first[asset][key].value == second[asset][key].value
    assert second["issue_scores"]["dagster/row_count"].value == first["issue_scores"]["dagster/row_count"].value
    # The training consumer: same split, same config, same code: its figures are carried over.
    assert first["training_probe"]["consumer_version"].value == second["training_probe"]["consumer_version"].value
    assert second["training_probe"]["accuracy_cleaned_split"] == first["training_probe"]["accuracy_cleaned_split"]
    # Stored once per consumer version, keyed by the split it trained on; the reused run is marked
    # the newest again instead of being written twice.
    version = first["training_probe"]["consumer_version"].value
    [(stored_version, consumer, split_version, trained_at)] = runs_first
    assert (stored_version, consumer, split_version) == (version, "linear",
                                                         first["cleaned_split"]["split_version"].value)
    assert accuracies_first[["seed", "train", "eval"]].values.tolist() == [[0, "cleaned", "kept"], [0, "raw", "kept"]]
    assert accuracies_first.set_index("train").accuracy.to_dict() == {
        "cleaned": first["training_probe"]["accuracy_cleaned_split"].value,
        "raw": first["training_probe"]["accuracy_raw_split"].value}
    [(_, _, _, marked_at)] = runs_second
    assert marked_at > trained_at and accuracies_second.equals(accuracies_first)
    [probe] = again.asset_materializations_for_node("training_probe")
    assert probe.metadata["reused"].value is False
    assert [r[0] for r in runs_again] == [version] and accuracies_again.equals(accuracies_first)


def test_prune_keeps_the_newest_versions_and_a_pruned_version_is_computed_again(two_drops, tmp_path):
    from quality_assets.cli import main as qaudit

    data, vectors = two_drops
    store = Store(tmp_path / "home")
    first, first_run = _graphs_and_scores(store, data, vectors, ["d1"])
    later, later_run = _graphs_and_scores(store, data, vectors, ["d2"])
    assert qaudit(["prune", "--home", str(store.home), "--keep", "0"]) == 2
    assert qaudit(["prune", "--home", str(store.home), "--keep", "1"]) == 0
    with store.connect(read_only=True) as conn:
        kept = dict(conn.execute("SELECT graph_version, edges_kept FROM knn_graphs").fetchall())
        edges = dict(conn.execute("SELECT graph_version, count(*) FROM knn_edges GROUP BY ALL").fetchall())
        scores = dict(conn.execute("SELECT score_version, count(*) FROM issue_scores GROUP BY ALL").fetchall())
        runs = {v for (v,) in conn.execute("SELECT score_version FROM score_runs").fetchall()}
    for view in first:
        assert kept[first[view].graph_version] is False and first[view].graph_version not in edges
        assert kept[later[view].graph_version] is True and edges[later[view].graph_version] > 0
    assert set(scores) == {later_run.score_version} and runs == {first_run.score_version, later_run.score_version}
    # The copy searches' rows are files: the pruned versions' files are gone, the current ones stay.
    with store.connect(read_only=True) as conn:
        row_versions = dict(conn.execute("SELECT graph_version, edges_kept FROM knn_graphs "
                                         "WHERE view LIKE 'pixel_copy_%_rows'").fetchall())
    files = {path.stem for path in (store.artifacts_dir / "copy_rows").glob("*.npz")}
    searches = len(COPY_SEARCHES)
    assert len(row_versions) == 2 * searches and files == {v for v, kept in row_versions.items() if kept}
    assert len(files) == searches

    # The first data again (the second drop's samples superseded): its pruned versions are rebuilt.
    with store.connect() as conn:
        from quality_assets.store import record_superseded

        drop2 = conn.execute("SELECT sample_id FROM raw_manifest WHERE path LIKE 'd2/%'").df()
        record_superseded(conn, drop2.assign(reason="missing_on_read", detail="test", superseded_by=None))
        model = later["ssl"].model_version
        again = build_graph(conn, model, 8)
        assert again.graph_version == first["ssl"].graph_version and again.built == "incremental"
        build_pixel_views(conn, k=8, copy_k=4)
        build_property_view(conn, k=8)
        rerun = run_scores(conn, ScoreConfig())
    assert rerun.score_version == first_run.score_version and not rerun.reused
    with store.connect(read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM issue_scores WHERE score_version = ?",
                            [first_run.score_version]).fetchone()[0] == len(rerun.outputs.issue_rows)


def test_the_copy_searches_rows_are_files_and_a_lost_or_damaged_file_means_a_full_search(two_drops, tmp_path):
    data, vectors = two_drops
    store = Store(tmp_path / "home")
    _graphs_and_scores(store, data, vectors, ["d1"])
    with store.connect(read_only=True) as conn:
        current = _copy_rows_versions(conn)
        edge_rows = conn.execute("SELECT count(*) FROM knn_edges WHERE graph_version IN "
                                 "(SELECT graph_version FROM current_graphs WHERE view LIKE 'pixel_copy_%_rows')"
                                 ).fetchone()[0]
    files = sorted((store.artifacts_dir / "copy_rows").glob("*.npz"))
    assert len(current) == len(COPY_SEARCHES) and sorted(path.stem for path in files) == sorted(current.values())
    assert edge_rows == 0  # the rows are not edge rows
    # Lost, truncated, not an npz at all, or arrays of the wrong shape: each counts as lost.
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    files[2].write_text("not an array file")
    np.savez(files[3], ids=np.array(["a"]), neighbors=np.zeros((1, 1), np.int32), distances=np.zeros(1, np.float32))
    later, run = _graphs_and_scores(store, data, vectors, ["d2"])
    assert later["pixel_copy"].params["built"] == "full" and later["ssl"].built == "incremental"
    assert run.n_issue_rows > 0


def test_copy_search_rows_an_older_release_kept_as_edges_are_still_updated_from(two_drops, tmp_path):
    from quality_assets.view_graphs import MIRRORED, MIRRORED_SEARCHES

    data, vectors = two_drops
    store = Store(tmp_path / "home")
    _graphs_and_scores(store, data, vectors, ["d1"])
    with store.connect() as conn:
        current = _copy_rows_versions(conn)
        for view, version in current.items():
            if view == "pixel_copy_crop_rows":
                continue  # the crop search is newer than rows kept as edges
            path = store.artifacts_dir / "copy_rows" / f"{version}.npz"
            with np.load(path) as rows:
                ids, neighbors, distances = rows["ids"].astype(object), rows["neighbors"], rows["distances"]
            mirrored = view.removeprefix("pixel_copy_").removesuffix("_rows") in MIRRORED_SEARCHES
            names = np.concatenate([ids, ids + MIRRORED]) if mirrored else ids
            n, k = neighbors.shape
            edges = pd.DataFrame({"graph_version": version, "sample_id": np.repeat(ids, k),
                                  "neighbor_id": names[neighbors.ravel()], "rank": np.tile(np.arange(1, k + 1), n),
                                  "distance": distances.ravel()})
            conn.register("_old_edges", edges)
            conn.execute("INSERT INTO knn_edges SELECT * FROM _old_edges")
            conn.unregister("_old_edges")
            path.unlink()
    later, _ = _graphs_and_scores(store, data, vectors, ["d2"])
    assert later["pixel_copy"].params["built"] == "incremental"


def test_a_drop_reads_the_copy_searches_vectors_back_and_computes_only_its_new_images(
        two_drops, tmp_path, monkeypatch):
    import quality_assets.pixel_view as pixel_view
    from quality_assets.view_graphs import MIRRORED_SEARCHES

    data, vectors = two_drops
    store = Store(tmp_path / "home")
    _graphs_and_scores(store, data, vectors, ["d1"])
    files = {path.stem: path for path in (store.artifacts_dir / "copy_rows").glob("*.npz")}
    with store.connect(read_only=True) as conn:
        current = _copy_rows_versions(conn)
        plain = files[current["pixel_copy_plain_rows"]]
        with np.load(plain) as rows:
            ids = rows["ids"].tolist()
            stored = rows["vectors"]
        thumbs, _ = load_thumbnails(conn, ids)
    # The stored vectors are the images', then their mirror images'.
    assert np.array_equal(stored, np.vstack([pixel_view.search_vectors(thumbs),
                                             pixel_view.search_vectors(thumbs, mirror=True)]))
    # A file from before the vectors were kept: that search computes them all and writes them.
    canonical = files[current["pixel_copy_canonical_rows"]]
    with np.load(canonical) as rows:
        np.savez(canonical, **{key: rows[key] for key in rows.files if key != "vectors"})

    computed: dict[str, list[int]] = {}

    def counting(name):
        original = getattr(pixel_view, name)

        def wrapper(t, *args, **kwargs):
            computed.setdefault(name, []).append(len(t))
            return original(t, *args, **kwargs)
        return wrapper

    for name in ("search_vectors", "canonical_search_vectors", "polar_search_vectors", "crop_search_vectors",
                 "_crop_entries"):
        monkeypatch.setattr(pixel_view, name, counting(name))
    later, _ = _graphs_and_scores(store, data, vectors, ["d2"])
    assert later["pixel_copy"].params["built"] == "incremental"
    n_new, n_all = 5, len(ids) + 5
    # Plain search: the 5 new images and their mirror images; crop search: the 5 new images (the
    # pixel kNN view still takes every image's plain vector, the new pairs' crop distances their images').
    assert computed["search_vectors"].count(n_new) == 3
    assert computed["canonical_search_vectors"] == [n_all, n_all]
    # Polar: the copy search's new images only; registration reads the stored ones.
    assert computed["polar_search_vectors"] == [n_new]
    # Crop: the copy search's new images, then the crop distances of the pairs the drop brings
    # (their images only: the other pairs' distances are read back).
    assert computed["crop_search_vectors"] == [n_new]
    # (The crop distances make their crops one shape at a time, on each of their sizes of averages.)
    crops = computed["_crop_entries"]
    assert len(crops) == 1 + len(pixel_view.CROP_SHAPES) * len(pixel_view.CROP_DISTANCE_SIZES)
    assert crops[0] == n_new and len(set(crops[1:])) == 1 and crops[1] < n_all
    with store.connect(read_only=True) as conn:
        now = _copy_rows_versions(conn)
        for view, version in now.items():
            with np.load(store.artifacts_dir / "copy_rows" / f"{version}.npz") as rows:
                assert "vectors" in rows.files
                search = view.removeprefix("pixel_copy_").removesuffix("_rows")
                n_blocks = 2 if search in MIRRORED_SEARCHES else 1 + CROPS if search == "crop" else 1
                assert rows["vectors"].shape[0] == n_blocks * n_all
        # What the scores read back: every sample's polar vector, as computed from its thumbnail,
        # and NaN rows for a sample the rows do not hold.
        ids_now = sorted(run_query(conn, "manifest_for_scoring").sample_id)
        thumbs_now, known = load_thumbnails(conn, ids_now)
        assert known.all()
        polar = stored_search_vectors(conn, "polar", ids_now + ["not-a-sample"])
    monkeypatch.undo()
    assert np.array_equal(polar[:-1], pixel_view.polar_search_vectors(thumbs_now))
    assert np.isnan(polar[-1]).all()


def test_stored_vectors_of_the_wrong_shape_are_computed_again_and_the_candidates_stay_exact(two_drops, tmp_path):
    data, vectors = two_drops
    store = Store(tmp_path / "home")
    _graphs_and_scores(store, data, vectors, ["d1"])
    with store.connect(read_only=True) as conn:
        current = _copy_rows_versions(conn)

    def damage(view, bad_vectors):
        path = store.artifacts_dir / "copy_rows" / f"{current[view]}.npz"
        with np.load(path) as rows:
            arrays = {key: rows[key] for key in rows.files}
        np.savez(path, **{**arrays, "vectors": bad_vectors(arrays["vectors"])})

    damage("pixel_copy_plain_rows", lambda v: v[:-3])                         # rows missing
    damage("pixel_copy_canonical_rows", lambda v: np.ones((len(v), 5), np.float32))  # another width
    damage("pixel_copy_polar_rows", lambda v: v.ravel())                      # not a matrix
    damage("pixel_copy_crop_rows", lambda v: v[:2 * len(v) // (1 + CROPS)])  # two blocks, not 1 + CROPS
    later, _ = _graphs_and_scores(store, data, vectors, ["d2"])
    assert later["pixel_copy"].params["built"] == "incremental"
    query = "SELECT sample_id, neighbor_id, rank FROM knn_edges WHERE graph_version = ? ORDER BY ALL"
    with store.connect(read_only=True) as conn:
        pairs = conn.execute(query, [later["pixel_copy"].graph_version]).fetchall()
        fresh = _fresh_copy_pairs(conn)
    assert pairs == fresh
