"""The label-error pixel classifier's fit kept between score runs (`pixel_classifier_fits`), through
real Dagster runs on real image files and a real DuckDB store: a small drop is scored with the fit
the first run trained (its new rows predicted by the stored fold networks, no network trained), the
earlier rows keep their probabilities, and a mislabelled image in the drop still leads the label
errors. A fit whose files are gone is trained again."""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from quality_assets.pixel_classifier_fits import StoredPixelClassifierFits, prune_fits
from quality_assets.scores.pixel_classifier import key_digests, pixel_settings
from quality_assets.store import Store
from quality_tests.drop_scenarios import COLOURS, check_the_mislabelled_image_leads, make_colour_drops, scored_drop
from quality_tests.imagefolders import coloured_images

PIXELS_ON = {"label_error": {"pixel_classifier": "on"}}


def _audit(store, data, vectors, drop, instance):
    return scored_drop(store, data, vectors, drop, instance, PIXELS_ON)


def _latest_fit(store):
    with store.connect() as conn:
        fits = StoredPixelClassifierFits(conn)
        fit = fits.latest(pixel_settings())
        paths = conn.execute("SELECT rows_path, folds_path FROM pixel_classifier_fits ORDER BY created_at").fetchall()
    return fit, paths


@pytest.fixture(scope="module")
def drops(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pixel_fits")
    data = tmp / "data"
    vectors = make_colour_drops(data)
    store = Store(tmp / "home")
    with dg.instance_for_test() as instance:
        first, _ = _audit(store, data, vectors, "base", instance)
        first_fit, _ = _latest_fit(store)
        drop, top = _audit(store, data, vectors, "more", instance)
        drop_fit, paths = _latest_fit(store)
        # The fits' files gone (a home copied without its artifacts): the next run trains again.
        shutil.rmtree(store.home / "artifacts" / "pixel_classifier")
        with store.connect() as conn:
            conn.execute("DELETE FROM score_runs")   # so the run is not reused from the store
        lost, _ = _audit(store, data, vectors, "more", instance)
    return {"data": data, "first": first, "first_fit": first_fit, "drop": drop, "drop_fit": drop_fit, "top": top,
            "paths": paths, "lost": lost}


def test_a_small_drop_is_predicted_by_the_kept_fit_without_training(drops):
    assert drops["first"]["pixel_classifier_trained"] is True
    assert drops["first"]["pixel_classifier_reason"] == "no earlier fit"
    assert drops["drop"]["pixel_classifier_trained"] is False, drops["drop"]["pixel_classifier_reason"]
    assert drops["drop"]["pixel_classifier_rows_predicted"] == 9
    (first_rows, first_folds), (drop_rows, drop_folds) = drops["paths"]
    assert drop_folds == first_folds and drop_rows != first_rows   # the same networks, more rows
    first, grown = drops["first_fit"], drops["drop_fit"]
    assert first.n_trained == grown.n_trained == 120 and grown.keys.size == 129
    np.testing.assert_array_equal(grown.keys[:120], first.keys)
    np.testing.assert_array_equal(grown.probabilities[:120], first.probabilities)


def test_the_mislabelled_image_of_the_drop_leads_the_label_errors(drops):
    check_the_mislabelled_image_leads(drops)


def test_a_fit_whose_files_are_gone_is_trained_again(drops):
    assert drops["lost"]["pixel_classifier_trained"] is True
    assert drops["lost"]["pixel_classifier_reason"] == "no earlier fit"


def test_content_key_digests_are_stable_and_distinct():
    keys = np.array(["a" * 64 + "\x00train/x.png", "a" * 64 + "\x00train/y.png"], dtype=object)
    digests = key_digests(keys)
    assert digests.dtype == np.uint64 and digests[0] != digests[1]
    np.testing.assert_array_equal(digests, key_digests(keys.copy()))


def test_a_stored_fit_reads_back_whole_and_pruning_keeps_the_newest(tmp_path):
    from quality_assets.consumer_cnn import CnnConfig
    from quality_assets.scores.pixel_classifier import fit_pixel_classifier, pixel_probabilities

    tiny = CnnConfig(epochs=1, batch_size=32)
    images, codes = coloured_images(10, seed=1)
    keys = np.array([f"k{i:03d}" for i in range(30)], dtype=object)
    store = Store(tmp_path / "home")
    with store.connect() as conn:
        fits = StoredPixelClassifierFits(conn)
        first = fit_pixel_classifier(images[:27], codes[:27], COLOURS, keys[:27], config=tiny)
        fits.keep(first)
        fits.save()
        back = StoredPixelClassifierFits(conn).latest(first.settings)
        np.testing.assert_array_equal(back.probabilities, first.probabilities)
        np.testing.assert_array_equal(back.keys, first.keys)
        np.testing.assert_array_equal(back.margins, first.margins)
        assert back.classes == COLOURS and back.side == 32 and back.n_trained == 27
        for kept, read in zip(first.folds, back.folds):
            assert kept.state.keys() == read.state.keys()
            assert all(np.array_equal(kept.state[name].numpy(), read.state[name].numpy()) for name in kept.state)
        # A drop of three rows: a new fit that shares the networks' file.
        fits = StoredPixelClassifierFits(conn)
        grown = pixel_probabilities(images, codes, COLOURS, keys, previous=fits.latest(first.settings), config=tiny)
        assert not grown.trained and grown.n_predicted == 3
        fits.keep(grown.fit)
        fits.save()
        (store.artifacts_dir / "pixel_classifier" / "stray.rows.npz.partial.npz").write_bytes(b"crashed write")
        files = conn.execute("SELECT rows_path, folds_path FROM pixel_classifier_fits ORDER BY created_at").fetchall()
        assert files[0][1] == files[1][1] and files[0][0] != files[1][0]
        prune_fits(conn, 1)
        left = sorted(p.name for p in (store.artifacts_dir / "pixel_classifier").iterdir())
        assert left == sorted(Path(p).name for p in files[1])
        latest = StoredPixelClassifierFits(conn).latest(first.settings)
        assert latest.keys.size == 30 and np.isnan(latest.margins[27:]).all() and np.isfinite(latest.margins[:27]).all()
        # A fit stored before margins were kept reads back without them (its rows score on probabilities alone).
        rows_file = store.home / files[1][0]
        with np.load(rows_file) as rows:
            older = {name: rows[name] for name in rows.files if name != "margins"}
        np.savez(rows_file.with_name("older.npz"), **older)
        rows_file.with_name("older.npz").replace(rows_file)
        older_fit = StoredPixelClassifierFits(conn).latest(first.settings)
        assert older_fit.margins is None and older_fit.keys.size == 30
        kept = pixel_probabilities(images, codes, COLOURS, keys, previous=older_fit, config=tiny)
        assert not kept.trained and np.isnan(kept.margins).all()
        # A damaged file reads as no fit (the next run trains one), not as an error.
        (store.home / files[1][0]).write_bytes(b"damaged")
        assert StoredPixelClassifierFits(conn).latest(first.settings) is None
