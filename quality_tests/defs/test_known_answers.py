"""Known answers on a real image folder, through the real asset graph.

Vectors come from the images' own pixels via the `precomputed` embedder, so the answers depend on the
scores and the wiring, not on how well a seconds-long DINO run learned. Two classes are noisy copies of
two prototypes; into them go an exact copy, a flipped label, a photo from another domain and a train
image copied into test.
"""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
from quality_assets.defs.gates import GateThresholds
from quality_assets.view_graphs import load_graph
from quality_assets.scores.off_topic import mean_knn_distance_scores
from quality_assets.defs.resources import QualityStoreResource
from quality_lab.demo_data import load_offtopic_pool


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def _pixel_vectors(data: Path, out: Path) -> Path:
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    matrix = np.stack([np.asarray(Image.open(data / p).convert("L"), np.float32).ravel() for p in paths])
    matrix -= matrix.mean(axis=1, keepdims=True)
    np.save(out, matrix)
    Path(str(out) + ".paths.txt").write_text("\n".join(paths))
    return out


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The folder audited once; returns a read-only connection factory on its store."""
    from quality_assets.store import Store

    tmp_path = tmp_path_factory.mktemp("known_answers")
    store = Store(tmp_path / "home")
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    prototypes = {"a": rng.uniform(0, 255, (28, 28)), "b": rng.uniform(0, 255, (28, 28))}
    for split, count in (("train", 30), ("test", 6)):
        for label, proto in prototypes.items():
            for i in range(count):
                _write(data / f"{split}/{label}/{label}_{i:02d}.png", proto + rng.normal(0, 40, (28, 28)))
    shutil.copyfile(data / "train/a/a_00.png", data / "train/a/copy_of_a_00.png")        # exact duplicate
    _write(data / "train/b/mislabelled.png", prototypes["a"] + rng.normal(0, 40, (28, 28)))  # label error
    photo = Image.fromarray(load_offtopic_pool()[0]).convert("L").resize((28, 28))
    photo.save(data / "train/a/photo.png")                                                   # off-topic
    shutil.copyfile(data / "train/b/b_05.png", data / "test/b/leaked.png")                  # leakage
    vectors = _pixel_vectors(data, tmp_path / "vectors.npy")

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ALL_ASSETS + ALL_CHECKS,
            resources={"store": QualityStoreResource(home=str(store.home)),
                       "gates": GateThresholds(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)},
            run_config={"ops": {"raw_manifest": {"config": {"data_root": str(data)}},
                                "ssl_model": {"config": {"embedder": "precomputed",
                                                         "embeddings_file": str(vectors)}}}},
            instance=instance, raise_on_error=False,
        )
    assert result.success, result.get_step_failure_events()
    return store


def test_copy_flipped_label_and_leak_rank_first(audited):
    with audited.connect(read_only=True) as conn:
        pairs = conn.execute("SELECT path_a, path_b FROM duplicate_pairs ORDER BY rank LIMIT 2").fetchall()
        labels = conn.execute("SELECT path, suggested_label FROM issues WHERE issue_type = 'label_error' "
                              "ORDER BY rank LIMIT 2").fetchall()
        [(most_off_topic,)] = conn.execute("SELECT path FROM issues WHERE issue_type = 'off_topic' "
                                           "ORDER BY rank LIMIT 1").fetchall()
        leak = conn.execute("SELECT path, partner_path, is_issue FROM issues WHERE issue_type = 'leakage' "
                            "ORDER BY rank LIMIT 1").fetchone()
    assert {"train/a/a_00.png", "train/a/copy_of_a_00.png"} in [set(p) for p in pairs]
    # The photo carries an arbitrary label. On 76 samples the off-topic cut flags nothing, so it is
    # scored as a label error too, and its score depends on the classifier's folds, i.e. on the
    # sample order (sample ids hash the temporary data root): between 0 and 0.7 over runs. It is the
    # top off-topic sample; apart from it, the flipped label comes first.
    assert most_off_topic == "train/a/photo.png"
    assert [row for row in labels if row[0] != most_off_topic][0] == ("train/b/mislabelled.png", "a")
    assert leak == ("test/b/leaked.png", "train/b/b_05.png", True)


def test_photo_from_another_domain_is_a_top_outlier_for_the_knn_baseline(audited):
    # The baseline is no longer an issue type of the service: compute it on the stored SSL graph.
    with audited.connect(read_only=True) as conn:
        sample_ids, graph, _, _ = load_graph(conn)
        paths = dict(conn.execute("SELECT sample_id, path FROM manifest").fetchall())
    order = np.argsort(mean_knn_distance_scores(graph), kind="stable")
    top = [paths[sample_ids[i]] for i in order[:3]]
    assert "train/a/photo.png" in top


def test_photo_from_another_domain_is_a_top_off_topic(audited):
    # Two equal classes that form separate graph components: plain LAD visits the whole smaller
    # class before the photo inside the other one; the two-view score does not depend on that walk.
    with audited.connect(read_only=True) as conn:
        top = [r[0] for r in conn.execute(
            "SELECT path FROM issues WHERE issue_type = 'off_topic' ORDER BY rank LIMIT 3").fetchall()]
    assert "train/a/photo.png" in top


def test_the_pixel_classifier_option_trains_on_the_data_roots_files(audited, tmp_path):
    """A score run with `label_error.pixel_classifier` reads every image from its data root (a copy of
    the audited store, so the other tests keep theirs) and still puts the flipped label first."""
    import json

    from quality_assets.score_run import run_scores
    from quality_assets.scoring import ScoreConfig
    from quality_assets.store import Store

    shutil.copytree(audited.home, tmp_path / "home")
    store = Store(tmp_path / "home")
    with store.connect() as conn:
        run = run_scores(conn, ScoreConfig({"label_error": {"pixel_classifier": "on"}}))
        labels = conn.execute("SELECT path, suggested_label FROM issues WHERE issue_type = 'label_error' "
                              "ORDER BY rank LIMIT 2").fetchall()
        [(config_json,)] = conn.execute("SELECT config_json FROM score_runs WHERE score_version = ?",
                                        [run.score_version]).fetchall()
    assert not run.reused and json.loads(config_json)["label_error"]["pixel_classifier"] == "on"
    assert ("train/b/mislabelled.png", "a") in labels
