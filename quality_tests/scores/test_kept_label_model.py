"""The representation's label-error classifiers kept between runs (`scores.kept_label_model`): a fit
gives the probabilities of `out_of_sample_probabilities`, its stored models give each held row the
probabilities it got, a drop's new rows are predicted (a flipped one among them found), and the
fit is made again where the rows, classes, label book or features changed."""

import numpy as np
import pytest

from quality_assets.scores import confident_learning as cl
from quality_assets.scores.confident_learning import label_quality, out_of_sample_probabilities
from quality_assets.scores.kept_label_model import (
    label_model_probabilities, label_model_settings,
)

CLASSES = ("a", "b", "c", "d")


def _blobs(rng, n_per, *, dim=12, classes=4, spread=1.6):
    centres = np.random.default_rng(99).normal(0, 3, size=(classes, dim))   # the same classes in every draw
    x = np.concatenate([c + rng.normal(0, spread, size=(n_per, dim)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(classes), n_per)


def _keys(n, start=0):
    return np.array([f"{i:06d}\x00img_{i}.png" for i in range(start, start + n)], dtype=object)


def test_a_fit_gives_the_out_of_sample_probabilities_and_its_models_give_them_again():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 80)
    given = y.copy()
    given[:8] = (y[:8] + 1) % 4
    keys = _keys(len(y))[rng.permutation(len(y))]   # content order is not row order
    found = label_model_probabilities(x, given, CLASSES, keys)
    fit = found.fit
    np.testing.assert_array_equal(found.probabilities, out_of_sample_probabilities(x, given, 4, order_key=keys))
    # The fit keeps them in float32.
    assert fit.probabilities.dtype == np.float32
    np.testing.assert_array_equal(fit.probabilities, found.probabilities.astype(np.float32))
    assert fit.model.kernel_used and len(fit.model.folds) == 5 and fit.n_trained == len(y)
    # Each fold's kept models, on the standardiser's map of the raw rows, give its held rows theirs.
    order = np.argsort(keys, kind="stable")
    fold_of, _ = cl.deal_folds(given[order], np.zeros(len(y), bool), 4)
    x_std = fit.model.standardiser(x[order])
    np.testing.assert_allclose(x_std, cl._standardise(x[order]), atol=1e-9)
    for fold, models in enumerate(fit.model.folds):
        held = order[fold_of == fold]
        assert models.machine is not None and models.machine.rows.shape[0] < models.machine.n_train
        np.testing.assert_allclose(models.predict(fit.model.standardiser(x[held]), 4), found.probabilities[held],
                                   atol=1e-9)


def test_wide_features_are_projected_for_new_rows_as_for_the_fitted_ones():
    # More features than MAX_FEATURES: the projection, rotation and scaling fold into one map (from
    # ten rows a feature the projection is exact; below, the randomized solver's rows are its
    # approximation of what the map gives, as sklearn's `transform` gives new rows).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10 * (cl.MAX_FEATURES + 40), cl.MAX_FEATURES + 40))
    x[:, :4] *= 6
    standardised, standardiser = cl._fit_standardiser(x, seed=3)
    np.testing.assert_allclose(standardiser(x), standardised, atol=1e-9)
    standardised, standardiser = cl._fit_standardiser(x[:800], seed=3)
    assert np.abs(standardiser(x[:800]) - standardised).mean() < 0.05
    # Fewer rows than features: the rows' own span, kept as a map as well.
    few = rng.normal(size=(60, cl.MAX_FEATURES + 40))
    standardised, standardiser = cl._fit_standardiser(few, seed=3)
    assert standardised.shape[1] <= 59
    np.testing.assert_allclose(standardiser(few), standardised, atol=1e-9)


def test_a_drop_is_predicted_by_the_kept_models_and_its_flipped_row_found():
    rng = np.random.default_rng(2)
    x, y = _blobs(rng, 100)
    keys = _keys(len(y))
    first = label_model_probabilities(x, y, CLASSES, keys)
    assert first.trained and first.reason == "no earlier fit"
    drop_x, drop_y = _blobs(np.random.default_rng(3), 5)
    drop_given = drop_y.copy()
    drop_given[0] = 2   # a class-0 row filed as class 2
    # The drop's rows come first and the classes in another order: both are found by name and key.
    grown_x, grown_codes = np.concatenate([drop_x, x]), np.concatenate([drop_given, y])
    order = ("d", "c", "b", "a")
    codes = 3 - grown_codes
    grown_keys = np.concatenate([_keys(20, start=len(y)), keys])
    drop = label_model_probabilities(grown_x, codes, order, grown_keys, previous=first.fit)
    assert not drop.trained, drop.reason
    assert drop.n_new == drop.n_predicted == 20 and drop.fit_changed
    assert drop.reason == "kept the earlier fit: 20 new rows predicted by its 5 folds' models"
    # The earlier rows keep their probabilities, their columns in this call's class order.
    np.testing.assert_array_equal(drop.probabilities[20:], first.fit.probabilities[:, ::-1])
    # The new rows: the mean of every fold's models, and the flipped one has the lowest quality.
    np.testing.assert_allclose(drop.probabilities[:20], first.fit.model.predict(drop_x)[:, ::-1])
    quality = label_quality(codes, drop.probabilities, np.zeros(len(codes), bool)).quality
    assert quality.argmin() == 0 and drop.probabilities[0].argmax() == order.index("a")
    # The grown fit holds the new rows as predicted ones and the same models; read again, nothing changes.
    assert drop.fit.model is first.fit.model and drop.fit.n_trained == len(y) and len(drop.fit.keys) == len(y) + 20
    again = label_model_probabilities(grown_x, codes, order, grown_keys, previous=drop.fit)
    assert not again.trained and not again.fit_changed and again.reason == "kept the earlier fit: no new rows"
    np.testing.assert_array_equal(again.probabilities, drop.probabilities.astype(np.float32))   # as kept


def test_the_fit_is_made_again_when_what_it_was_made_on_changed():
    rng = np.random.default_rng(4)
    x, y = _blobs(rng, 60)
    keys = _keys(len(y))
    fit = label_model_probabilities(x, y, CLASSES, keys).fit

    def reason(features=x, codes=y, classes=CLASSES, row_keys=keys, anchor=None, **options):
        found = label_model_probabilities(features, codes, classes, row_keys, previous=fit, anchor=anchor, **options)
        assert found.trained == (not found.reason.startswith("kept"))
        return found.reason

    assert reason() == "kept the earlier fit: no new rows"
    relabelled = y.copy()
    relabelled[:60] = 1   # a quarter of the rows
    assert reason(codes=relabelled) == "the labelled rows changed by 25% > 20%"
    assert reason(codes=relabelled, max_growth_fraction=0.3).startswith("kept")
    more_x, more_y = _blobs(np.random.default_rng(5), 15)
    assert reason(features=np.concatenate([x, more_x]), codes=np.concatenate([y, more_y]),
                  row_keys=np.concatenate([keys, _keys(60, start=1000)])) == "the labelled rows changed by 25% > 20%"
    anchor = np.zeros(len(y), bool)
    anchor[3] = True
    assert reason(anchor=anchor) == "the label book changed"
    assert reason(classes=("a", "b", "c", "e")) == "the classes changed"
    assert reason(seed=1) == "the classifier's settings changed"
    assert reason(features=np.hstack([x, x[:, :1]])) == "the classifier's settings changed"
    # Another SSL model: the same rows, other vectors.
    assert reason(features=x * 1.5 + 0.1) == "the features changed (another SSL model or view)"
    # The same vectors to float32 rounding are the same features.
    assert reason(features=(x.astype(np.float64) * (1 + 1e-7))).startswith("kept")


def test_a_fit_of_label_book_rows_alone_has_no_models_and_is_made_again():
    x, y = _blobs(np.random.default_rng(7), 10)
    keys = _keys(len(y))
    first = label_model_probabilities(x, y, CLASSES, keys, anchor=np.ones(len(y), bool))
    assert first.fit.model.folds == [] and (first.probabilities.argmax(1) == y).all()
    # The rows leave the label book: nothing to predict them with, so the classifiers are fitted.
    again = label_model_probabilities(x, y, CLASSES, keys, previous=first.fit, max_growth_fraction=1.0)
    assert again.trained and again.reason == "the label book changed"
    # New rows beside the same label book: fitted too, not predicted by models that do not exist.
    more_x, more_y = _blobs(np.random.default_rng(8), 1)
    grown = label_model_probabilities(np.concatenate([x, more_x]), np.concatenate([y, more_y]), CLASSES,
                                      np.concatenate([keys, _keys(4, start=100)]), previous=first.fit,
                                      anchor=np.r_[np.ones(len(y), bool), np.zeros(4, bool)], max_growth_fraction=1.0)
    assert grown.trained and grown.reason == "the earlier fit has no models (every row it saw was in the label book)"
    assert len(grown.fit.model.folds) >= 2


def test_settings_name_the_features_and_the_library():
    import sklearn

    settings = label_model_settings(seed=2, features=452)
    assert settings["features"] == 452 and settings["seed"] == 2 and settings["scikit_learn"] == sklearn.__version__


def test_keys_must_be_unique():
    x, y = _blobs(np.random.default_rng(6), 10)
    keys = _keys(len(y))
    keys[1] = keys[0]
    with pytest.raises(ValueError, match="content keys must be unique"):
        label_model_probabilities(x, y, CLASSES, keys)
