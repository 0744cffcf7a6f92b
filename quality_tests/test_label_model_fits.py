"""The label-error classifiers' fit on the representation kept between score runs (`label_model_fits`),
through real Dagster runs on real image files and a real DuckDB store: a small drop is scored with the
fit the first run made (its new rows predicted by every fold's stored models, nothing fitted), the
earlier rows keep their probabilities, and a mislabelled image in the drop still leads the label
errors. A fit whose files are gone is made again; a stored fit reads back whole, pruning keeps the
newest, and a damaged file reads as no fit."""

import json
import shutil

import dagster as dg
import numpy as np
import pytest

from quality_assets.label_model_fits import StoredLabelModelFits, prune_fits
from quality_assets.scores.kept_label_model import fit_kept_label_model, label_model_probabilities
from quality_assets.store import Store
from quality_tests.drop_scenarios import check_the_mislabelled_image_leads, make_colour_drops, scored_drop

# The representation's classifiers alone (the pixel classifier's fits have their own test), kept at
# any size (the default keeps them from 20k labelled rows).
PIXELS_OFF = {"label_error": {"pixel_classifier": "off", "classifier_keep_from_rows": 0}}


def _audit(store, data, vectors, drop, instance):
    summary, top = scored_drop(store, data, vectors, drop, instance, PIXELS_OFF)
    with store.connect(read_only=True) as conn:
        fits = conn.execute("SELECT rows_path, models_path, n_rows, n_trained, settings_json FROM label_model_fits "
                            "ORDER BY created_at").fetchall()
    return summary, top, fits


def _latest(store, settings_json):
    with store.connect() as conn:
        return StoredLabelModelFits(conn).latest(json.loads(settings_json))


@pytest.fixture(scope="module")
def drops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label_model_fits")
    data = tmp / "data"
    vectors = make_colour_drops(data)
    store = Store(tmp / "home")
    with dg.instance_for_test() as instance:
        first, _, first_fits = _audit(store, data, vectors, "base", instance)
        first_fit = _latest(store, first_fits[0][4])
        drop, top, drop_fits = _audit(store, data, vectors, "more", instance)
        drop_fit = _latest(store, drop_fits[-1][4])
        shutil.rmtree(store.home / "artifacts" / "label_model")
        with store.connect() as conn:
            conn.execute("DELETE FROM score_runs")   # so the run is not reused from the store
        lost, _, _ = _audit(store, data, vectors, "more", instance)
    return {"data": data, "first": first, "first_fit": first_fit, "drop": drop, "drop_fit": drop_fit, "top": top,
            "fits": drop_fits, "lost": lost}


def test_a_small_drop_is_predicted_by_the_kept_models_without_fitting(drops):
    assert drops["first"]["classifier_fitted"] is True and drops["first"]["classifier_reason"] == "no earlier fit"
    assert drops["drop"]["classifier_fitted"] is False, drops["drop"]["classifier_reason"]
    assert drops["drop"]["classifier_rows_predicted"] == 9 and drops["drop"]["kernel_model_used"] is True
    (first_rows, first_models, *_), (drop_rows, drop_models, n_rows, n_trained, _) = drops["fits"]
    assert drop_models == first_models and drop_rows != first_rows   # the same models, more rows
    assert (n_rows, n_trained) == (129, 120)
    first, grown = drops["first_fit"], drops["drop_fit"]
    np.testing.assert_array_equal(grown.keys[:120], first.keys)
    np.testing.assert_array_equal(grown.probabilities[:120], first.probabilities)
    assert not grown.trained[120:].any()


def test_the_mislabelled_image_of_the_drop_leads_the_label_errors(drops):
    check_the_mislabelled_image_leads(drops)


def test_a_fit_whose_files_are_gone_is_made_again(drops):
    assert drops["lost"]["classifier_fitted"] is True and drops["lost"]["classifier_reason"] == "no earlier fit"


def test_a_stored_fit_reads_back_whole_and_pruning_keeps_the_newest(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 8))
    x = np.concatenate([c + rng.normal(0, 1.5, (40, 8)) for c in centres])
    codes = np.repeat(np.arange(3), 40)
    keys = np.array([f"k{i:03d}" for i in range(120)], dtype=object)
    classes = ("x", "y", "z")
    store = Store(tmp_path / "home")
    with store.connect() as conn:
        fits = StoredLabelModelFits(conn)
        first = fit_kept_label_model(x[:110], codes[:110], classes, keys[:110])
        fits.keep(first)
        fits.save()
        back = StoredLabelModelFits(conn).latest(first.settings)
        for name in ("keys", "labels", "anchored", "trained", "probabilities", "probe", "probe_features"):
            np.testing.assert_array_equal(getattr(back, name), getattr(first, name))
        assert back.classes == classes and back.n_trained == 110
        # The models read back predict as the fitted ones.
        np.testing.assert_array_equal(back.model.predict(x[110:]), first.model.predict(x[110:]))
        # A drop of ten rows: a new fit that shares the models' file.
        fits = StoredLabelModelFits(conn)
        grown = label_model_probabilities(x, codes, classes, keys, previous=fits.latest(first.settings))
        assert not grown.trained and grown.n_predicted == 10
        fits.keep(grown.fit)
        fits.save()
        (store.artifacts_dir / "label_model" / "stray.models.pkl.partial").write_bytes(b"crashed write")
        files = conn.execute("SELECT rows_path, models_path FROM label_model_fits ORDER BY created_at").fetchall()
        assert files[0][1] == files[1][1] and files[0][0] != files[1][0]
        assert prune_fits(conn, 1) == 2   # the pruned fit's rows and the crashed write
        left = sorted(p.name for p in (store.artifacts_dir / "label_model").iterdir())
        assert left == sorted(path.rsplit("/", 1)[1] for path in files[1])
        assert StoredLabelModelFits(conn).latest(first.settings).keys.size == 120
        # A damaged models file reads as no fit (the next run fits one), not as an error.
        (store.home / files[1][1]).write_bytes(b"damaged")
        assert StoredLabelModelFits(conn).latest(first.settings) is None
