"""Confident learning on out-of-fold probabilities finds flipped labels in separable classes."""

import numpy as np
import pytest

from quality_assets.scores import confident_learning as cl_module
from quality_assets.scores.confident_learning import (
    confident_learning, out_of_sample_probabilities, out_of_sample_tag_probabilities,
)


def _blobs(rng, n_per=120, classes=4, dim=16):
    centres = rng.normal(0, 4, size=(classes, dim))
    x = np.concatenate([c + rng.normal(0, 1, size=(n_per, dim)) for c in centres])
    y = np.repeat(np.arange(classes), n_per)
    return x, y


def test_flipped_labels_get_the_lowest_quality_and_cleanlab_flags_them():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng)
    flipped = rng.choice(len(y), 20, replace=False)
    given = y.copy()
    given[flipped] = (y[flipped] + 1 + rng.integers(0, 3, flipped.size)) % 4
    result = confident_learning(x, given, 4)
    worst = set(np.argsort(result.quality)[:20])
    assert len(worst & set(flipped)) >= 18
    assert result.is_issue[flipped].mean() >= 0.9 and result.is_issue.sum() <= 30
    # The out-of-fold probabilities point at the true class for the flipped samples.
    assert (result.pred_probs[flipped].argmax(1) == y[flipped]).mean() >= 0.9


def test_probabilities_are_out_of_fold_and_cover_rare_classes():
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, n_per=30, classes=3)
    # A class with two members: stratification cannot split it five ways, probabilities still come back.
    x = np.vstack([x, rng.normal(20, 1, size=(2, x.shape[1]))])
    y = np.concatenate([y, [3, 3]])
    probs = out_of_sample_probabilities(x, y, 4)
    assert probs.shape == (92, 4) and np.allclose(probs.sum(1), 1.0)
    assert probs[:90].argmax(1).tolist() == y[:90].tolist()


def test_a_model_never_predicts_a_sample_it_was_fitted_on():
    # Two classes of pure noise: a model that saw its own rows would fit them (in-sample accuracy
    # well above chance); out of fold it cannot beat chance.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 60))
    y = rng.integers(0, 2, 200)
    probs = out_of_sample_probabilities(x, y, 2)
    assert (probs.argmax(1) == y).mean() < 0.65


def test_wide_features_are_projected_and_still_find_the_flips():
    from quality_assets.scores.confident_learning import MAX_FEATURES, _standardise, confident_learning

    rng = np.random.default_rng(5)
    n, width = 900, MAX_FEATURES + 200
    codes = np.repeat(np.arange(3), n // 3)
    features = rng.normal(0, 1, (n, width))
    features[:, :3] += 4.0 * np.eye(3)[codes]
    assert _standardise(features).shape == (n, MAX_FEATURES)
    assert _standardise(features[:, :50]).shape == (n, 50)
    noisy = codes.copy()
    flipped = rng.choice(n, 15, replace=False)
    noisy[flipped] = (noisy[flipped] + 1) % 3
    learned = confident_learning(features, noisy, 3)
    worst = np.argsort(learned.quality)[:15]
    assert len(set(worst) & set(flipped)) >= 12


def test_many_rows_of_wide_features_keep_exactly_their_top_principal_components():
    """With ten rows a feature or more the projection reads the covariance: the projected features
    span exactly the top MAX_FEATURES principal components, even where the components beyond them
    carry almost as much variance (a randomized solver's subspace is 5% off here)."""
    from quality_assets.scores.confident_learning import MAX_FEATURES, _pca_solver, _standardise

    rng = np.random.default_rng(0)
    n, width = 4000, MAX_FEATURES + 16
    x = rng.normal(size=(n, width)) * np.linspace(2.0, 1.0, width)
    assert _pca_solver(n, width) == "covariance_eigh"
    assert _pca_solver(9 * width, width) == "randomized"
    centred = x - x.mean(0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:MAX_FEATURES]
    basis = np.linalg.qr(centred @ axes.T)[0]
    projected = _standardise(x)
    projected -= projected.mean(0)
    outside = projected - basis @ (basis.T @ projected)
    assert np.linalg.norm(outside) < 1e-9 * np.linalg.norm(projected)


def test_wide_real_pixels_are_projected_without_whitening_and_their_flips_found():
    # 1,000 real MNIST digits as 784 pixels, 5% flips. Projected on the top 384 principal axes and
    # standardised axis by axis (whitened), the least axes weighed as much as the first and the
    # flips ranked at AP 0.65 / 0.57; in a random basis of the same axes 0.96 / 0.89.
    from sklearn.metrics import average_precision_score

    from quality_assets.scores.confident_learning import confident_learning
    from quality_lab.demo_data import load_mnist_5k

    images, labels = load_mnist_5k()
    pixels = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    for draw in (0, 1):
        rng = np.random.default_rng(draw)
        rows = rng.choice(len(pixels), 1000, replace=False)
        given = np.asarray(labels)[rows].astype(int)
        flipped = np.zeros(1000, dtype=bool)
        flipped[rng.choice(1000, 50, replace=False)] = True
        given[flipped] = (given[flipped] + 1 + rng.integers(0, 9, 50)) % 10
        learned = confident_learning(pixels[rows], given, 10)
        assert average_precision_score(flipped, -learned.quality) >= 0.8, draw


def test_fewer_rows_than_features_are_scored_in_their_own_span_and_still_find_the_flips():
    # 300 rows of 2,352 features (a small set of 28 px RGB pixels), 10 classes of 4 sub-clusters, 5%
    # flips: at full width the linear model's moments are 2,352^2 per class and fold (about 35 s).
    # In the rows' span they are at most 299 wide, and every distance between rows is kept.
    # Standardised at full width, this set's flips rank at AP 0.93 (linear) / 0.94 (both models);
    # in the span 0.96 / 0.94.
    # The linear model alone is checked: on the span's principal axes its per-feature scaling blew
    # the least directions up to the weight of the first, and it ranked these flips at AP 0.18.
    from scipy.spatial.distance import pdist
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    from quality_assets.scores.confident_learning import _standardise, confident_learning

    rng = np.random.default_rng(0)
    n, width, classes = 300, 2352, 10
    centres = rng.normal(0, 1.0, (classes * 4, width))
    component = rng.integers(0, classes * 4, n)
    features = centres[component] + rng.normal(0, 1.2, (n, width))
    given = component % classes
    flipped = rng.random(n) < 0.05
    given[flipped] = (given[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    spanned = _standardise(features)
    assert spanned.shape[0] == n and spanned.shape[1] <= n - 1
    np.testing.assert_allclose(pdist(spanned), pdist(StandardScaler().fit_transform(features)), rtol=1e-9)
    for kernel in (False, True):
        learned = confident_learning(features, given, classes, kernel=kernel)
        assert average_precision_score(flipped, -learned.quality) >= 0.85, kernel


def test_anchored_labels_back_every_fold_and_are_never_flagged():
    # Class 3 has one sample of its own and eight in the label book (the anchors). Without the book the
    # lone sample's label looks wrong (no fold's model knows class 3); anchored, every fold knows it.
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, n_per=60, classes=4)
    rows = np.concatenate([np.flatnonzero(y < 3), np.flatnonzero(y == 3)[:9]])
    x, y = x[rows], y[rows]
    lone = len(y) - 9
    anchor = np.zeros(len(y), dtype=bool)
    anchor[lone + 1:] = True
    alone = confident_learning(x[~anchor], y[~anchor], 4)
    assert alone.quality[lone] < 0.1
    backed = confident_learning(x, y, 4, anchor=anchor)
    assert backed.quality[lone] > 0.5 and not backed.is_issue[lone]
    assert (backed.quality[anchor] == 1.0).all() and not backed.is_issue[anchor].any()
    # A flip among the other samples is still found.
    flipped = y.copy()
    flipped[0] = 2
    again = confident_learning(x, flipped, 4, anchor=anchor)
    # It ranks first and its probabilities name its class. (cleanlab's own flag, a per-class mean
    # threshold, can miss it here: the kernel model's Platt-scaled probabilities are not extreme.)
    assert int(np.argmin(again.quality)) == 0 and int(again.pred_probs[0].argmax()) == y[0]


def test_folds_follow_the_content_keys_not_the_row_order():
    # The same samples in another row order (the service orders rows by sample id, which hashes
    # the data root) get the same out-of-fold probabilities when the folds are dealt by content.
    rng = np.random.default_rng(4)
    x, y = _blobs(rng, n_per=40, classes=3, dim=8)
    given = y.copy()
    given[rng.choice(len(y), 12, replace=False)] = (y[:12] + 1) % 3
    keys = np.asarray([f"{k:064x}" for k in rng.permutation(len(y))])
    perm = rng.permutation(len(y))
    keyed = out_of_sample_probabilities(x, given, 3, order_key=keys)
    moved = out_of_sample_probabilities(x[perm], given[perm], 3, order_key=keys[perm])
    np.testing.assert_array_equal(moved, keyed[perm])  # bit for bit: the same inputs in content order
    # Without the keys the folds follow the rows, and some probabilities change.
    assert not np.allclose(out_of_sample_probabilities(x[perm], given[perm], 3),
                           out_of_sample_probabilities(x, given, 3)[perm], atol=1e-6)
    cl = confident_learning(x[perm], given[perm], 3, order_key=keys[perm])
    np.testing.assert_allclose(cl.pred_probs, keyed[perm], atol=1e-8)
    # Callers number the classes as their rows meet them (pd.factorize), so a moved dataset also gets
    # another numbering: the probabilities follow the classes, not their numbers.
    renumber = np.array([2, 0, 1])
    renumbered = out_of_sample_probabilities(x[perm], renumber[given[perm]], 3, order_key=keys[perm])
    np.testing.assert_allclose(renumbered[:, renumber], keyed[perm], atol=1e-8)

    # Multi-label: each tag's folds too.
    present = np.stack([given == 0, given != 2], axis=1)
    tags = out_of_sample_tag_probabilities(x, present, order_key=keys)
    np.testing.assert_allclose(out_of_sample_tag_probabilities(x[perm], present[perm], order_key=keys[perm]),
                               tags[perm], atol=1e-8)


@pytest.mark.parametrize("classes", [2, 5])
def test_the_fold_models_from_moments_are_sklearns_lda_on_each_folds_training_rows(classes):
    import warnings

    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from quality_assets.scores.confident_learning import _fold_lda

    rng = np.random.default_rng(classes)
    x, y = _blobs(rng, n_per=60, classes=classes, dim=12)
    x[:, 3] = 1.5                                   # constant everywhere
    x[y == 1, 4] = -0.5                             # constant within one class
    x[y == 0] = np.where(np.arange(12) < 6, x[y == 0], x[np.flatnonzero(y == 0)[0]])  # half the features repeat
    folds = 4
    fold_of = rng.integers(0, folds, y.size)
    fold_of[rng.random(y.size) < 0.1] = -1          # anchors: in every fold's training rows
    # Constant within one class but for one member held out in fold 1: in fold 1's training rows the
    # feature is constant, at a distance from the moments' pivot (the whole class's mean), so its
    # variance from the moments is rounding noise, not zero (DINO features have such dead
    # dimensions; this noise once blew a fold's covariance up to eigenvalues of -4e11).
    ones = np.flatnonzero(y == 1)
    x[ones, 5] = 0.3
    x[ones[fold_of[ones] == 1][0], 5] = 2.0
    y[np.flatnonzero(fold_of == 2)[0]] = classes    # a class with one member, held out in fold 2
    for fold, (present, model) in enumerate(_fold_lda(x, y, fold_of, folds)):
        train, held = fold_of != fold, fold_of == fold
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x[train], y[train])
        assert list(present) == list(reference.classes_)
        np.testing.assert_allclose(model.predict_proba(x[held]), reference.predict_proba(x[held]), atol=1e-9)


def test_the_kernel_model_finds_flips_in_classes_no_line_separates():
    # Two classes on concentric rings: no linear model tells them apart, so its out-of-fold
    # probabilities are near the priors everywhere and the flips hide among the clean labels; the
    # kernel model's make them the lowest quality.
    rng = np.random.default_rng(7)
    n = 400
    y = np.repeat([0, 1], n // 2)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 0, 1.0, 3.0) + rng.normal(0, 0.2, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x = np.hstack([x, rng.normal(0, 0.05, (n, 4))])
    given = y.copy()
    flipped = rng.choice(n, 12, replace=False)
    given[flipped] = 1 - given[flipped]
    linear = out_of_sample_probabilities(x, given, 2, kernel=False)
    both = out_of_sample_probabilities(x, given, 2)
    assert (linear.argmax(1) == y).mean() < 0.7
    assert (both.argmax(1) == y).mean() > 0.95
    worst = set(np.argsort(both[np.arange(n), given])[:12])
    assert len(worst & set(flipped)) >= 11


def test_above_the_class_limit_the_linear_model_decides_alone_and_still_finds_the_flips(monkeypatch):
    """The kernel model's class pairs grow as the square of the classes: above KERNEL_MAX_CLASSES
    (lowered here so the test stays small) the probabilities are the linear model's alone, flips
    are still found, and the result says the kernel model did not run."""
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, n_per=40, classes=12, dim=24)
    given = y.copy()
    flipped = rng.choice(len(y), 10, replace=False)
    given[flipped] = (given[flipped] + 1) % 12
    both = confident_learning(x, given, 12)
    assert both.kernel_used
    monkeypatch.setattr(cl_module, "KERNEL_MAX_CLASSES", 11)
    alone = confident_learning(x, given, 12)
    assert not alone.kernel_used
    np.testing.assert_array_equal(alone.pred_probs, out_of_sample_probabilities(x, given, 12, kernel=False))
    assert not np.allclose(alone.pred_probs, both.pred_probs)
    assert set(np.argsort(alone.quality)[:10]) == set(flipped)
    # Classes without members do not count: 11 classes present, 12 columns.
    present = given != 11
    assert confident_learning(x[present], given[present], 12).kernel_used


def test_a_capped_kernel_training_set_keeps_every_class_the_label_book_and_the_content_order(monkeypatch):
    from quality_assets.scores import confident_learning as cl

    monkeypatch.setattr(cl, "MAX_TRAIN_ROWS", 100)
    rng = np.random.default_rng(8)
    n = 1000
    codes = rng.choice(4, n, p=[0.6, 0.3, 0.09, 0.01])
    anchored = rng.random(n) < 0.02
    keys = rng.permutation(n)
    rows = np.flatnonzero(rng.random(n) < 0.8)
    kept = cl._training_rows(rows, codes, anchored, keys)
    assert set(kept) <= set(rows) and kept.size <= 100 + 4 * 10
    assert (np.diff(keys[kept]) > 0).all()                          # content order
    assert anchored[kept].sum() == anchored[rows].sum()             # the label book first
    assert set(codes[kept]) == set(codes[rows])                     # the rare class keeps members
    # The same rows in another order give the same choice: it follows the content keys.
    again = cl._training_rows(rows[rng.permutation(rows.size)], codes, anchored, keys)
    np.testing.assert_array_equal(np.sort(again), np.sort(kept))
    # With the cap binding, flips still get the lowest quality.
    x, y = _blobs(rng, n_per=120, classes=4)
    given = y.copy()
    flipped = rng.choice(len(y), 12, replace=False)
    given[flipped] = (y[flipped] + 1) % 4
    learned = confident_learning(x, given, 4)
    assert len(set(np.argsort(learned.quality)[:12]) & set(flipped)) >= 11


def test_pairwise_coupling_recovers_the_probabilities_its_pairs_came_from():
    from quality_assets.scores.confident_learning import _couple

    rng = np.random.default_rng(9)
    truth = rng.dirichlet(np.ones(4), size=50)
    met = np.array([7, 2, 5, 0])                      # the fold's classes, in its own order
    pairs = np.array([(i, j) for a, i in enumerate(met) for j in met[a + 1:]])
    pairs = np.sort(pairs, axis=1)
    column = {c: k for k, c in enumerate(met)}
    first = truth[:, [column[i] for i in pairs[:, 0]]]
    second = truth[:, [column[j] for j in pairs[:, 1]]]
    # Consistent pairwise probabilities r_ij = p_i / (p_i + p_j): the coupling gives p back.
    np.testing.assert_allclose(_couple(first / (first + second), met, pairs), truth, atol=1e-6)
    # Inconsistent ones still give a distribution.
    noisy = _couple(rng.uniform(0, 1, first.shape), met, pairs)
    assert (noisy >= 0).all() and np.allclose(noisy.sum(1), 1.0)


def test_platt_recovers_a_known_sigmoid():
    from scipy.special import expit

    from quality_assets.scores.confident_learning import _platt

    rng = np.random.default_rng(10)
    values = rng.normal(0, 2, 20_000)
    positive = rng.random(values.size) < expit(-(-1.5 * values + 0.4))
    slope, intercept = _platt(values, positive)
    assert abs(slope + 1.5) < 0.1 and abs(intercept - 0.4) < 0.1
    assert _platt(values[:0], positive[:0]) == (-1.0, 0.0)


def test_the_kernel_probabilities_are_the_same_in_threads_and_close_to_libsvms_own():
    # The folds' machines fit in threads; nothing they do draws random numbers, so repeated runs
    # give identical probabilities. libsvm's `probability` option (inner cross-validation) gives
    # nearly the same ones.
    from sklearn.svm import SVC

    from quality_assets.scores import confident_learning as cl

    rng = np.random.default_rng(11)
    x, y = _blobs(rng, n_per=80, classes=4, dim=6)
    x += rng.normal(0, 2.5, x.shape)                 # overlapping classes: probabilities away from 0 and 1
    xs = cl._standardise(x)
    train, held = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    runs = [list(cl._kernel_probabilities(xs, y, [(held, train), (train, held)])) for _ in range(3)]
    for again in runs[1:]:
        for (h1, m1, p1), (h2, m2, p2) in zip(runs[0], again):
            np.testing.assert_array_equal(p1, p2)
    held_rows, met, ours = runs[0][0]
    reference = SVC(probability=True, random_state=0).fit(xs[train], y[train]).predict_proba(xs[held_rows])
    ours = ours[:, np.argsort(met)]
    assert (ours.argmax(1) == reference.argmax(1)).mean() > 0.9
    assert np.abs(ours - reference).mean() < 0.08


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_the_machine_on_its_kernel_matrix_is_libsvms_rbf_machine(classes):
    # The fold's machine is fitted on a kernel matrix from matrix products and predicts from kernel
    # blocks: the same support vectors and decision values as libsvm's own RBF machine, with the sign
    # the pair order asks for (positive towards the pair's first class).
    from sklearn.svm import SVC

    from quality_assets.scores import confident_learning as cl

    rng = np.random.default_rng(classes)
    x = rng.normal(size=(900, 40))
    y = rng.integers(0, classes, 900)
    y[:classes] = np.arange(classes)                 # met in code order: the machine's numbering is libsvm's
    x[:, 0] += y
    fold = cl._FoldMachine.fit(x, y, np.arange(600))
    reference = SVC(gamma=fold.gamma, decision_function_shape="ovo").fit(x[:600], y[:600])
    np.testing.assert_array_equal(fold.machine.support_, reference.support_)
    expected = reference.decision_function(x[600:])
    if classes == 2:                                 # sklearn's sign: positive towards the second class
        expected = -expected.reshape(-1, 1)
    column = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(*np.triu_indices(classes, 1)))}
    values = np.concatenate([v for _, _, v in fold.decisions(x[600:])])
    assert values.shape == (300, len(column))
    for k, (i, j) in enumerate(fold.pairs):
        np.testing.assert_allclose(values[:, k], expected[:, column[(int(i), int(j))]], atol=1e-6)


def _overlapping_blobs(rng, *, n_per: int, classes: int, flips: int):
    """(x, y, given): 6-d blobs blurred into each other, and `flips` labels moved to the next class."""
    x, y = _blobs(rng, n_per=n_per, classes=classes, dim=6)
    x += rng.normal(0, 2.0, x.shape)
    given = y.copy()
    given[rng.choice(len(y), flips, replace=False)] = (y[:flips] + 1) % classes
    return x, y, given


def test_the_probabilities_do_not_depend_on_the_block_size(monkeypatch):
    # Decision values are computed block by block, never for a whole fold at once (with C classes a
    # row has C (C - 1) / 2 of them): blocks of 16 rows give the same probabilities as one block.
    from quality_assets.scores import confident_learning as cl

    x, _, given = _overlapping_blobs(np.random.default_rng(12), n_per=50, classes=5, flips=10)
    whole = out_of_sample_probabilities(x, given, 5)
    monkeypatch.setattr(cl, "_BLOCK_BYTES", 1)       # the smallest block: 16 rows
    np.testing.assert_allclose(out_of_sample_probabilities(x, given, 5), whole, atol=1e-12)


def test_kept_decision_values_serve_both_passes_and_give_the_same_probabilities(monkeypatch):
    # The sigmoids' evidence and the probabilities read the same held rows' decision values: within
    # the budget each block is computed once, and the probabilities are those of computing it twice.
    from quality_assets.scores import confident_learning as cl

    x, y, given = _overlapping_blobs(np.random.default_rng(13), n_per=60, classes=4, flips=12)
    monkeypatch.setattr(cl, "_BLOCK_BYTES", 1)       # many blocks a fold
    computed = []
    decisions = cl._FoldMachine.decisions

    def counted(machine, rows):
        for lo, hi, values in decisions(machine, rows):
            computed.append(hi - lo)
            yield lo, hi, values

    monkeypatch.setattr(cl._FoldMachine, "decisions", counted)
    kept = out_of_sample_probabilities(x, given, 4)
    assert sum(computed) == len(y)                   # every held row once
    computed.clear()
    monkeypatch.setattr(cl, "_KEPT_DECISION_BYTES", 0)
    again = out_of_sample_probabilities(x, given, 4)
    assert sum(computed) == 2 * len(y)               # over the budget: both passes compute them
    np.testing.assert_array_equal(kept, again)


def test_the_normalized_margin_ranks_a_label_another_class_claims_below_one_nothing_claims():
    # Two doubtful labels: row 0's given class has 0.45 against one rival at 0.55 (the evidence names
    # another label), row 1's has 0.40 with the rest spread thin (no other label is named). The
    # given label's probability (self-confidence) doubts row 1 more; its margin over the likeliest
    # other label doubts row 0 more, and that is the one a relabel would fix.
    from quality_assets.scores.confident_learning import QUALITY_METHODS, label_quality

    probs = np.array([[0.45, 0.55, 0.0, 0.0], [0.40, 0.20, 0.20, 0.20]] + [[0.97, 0.01, 0.01, 0.01]] * 8)
    codes = np.zeros(len(probs), dtype=np.int64)
    anchored = np.zeros(len(probs), bool)
    confidence = label_quality(codes, probs, anchored, method="self_confidence").quality
    margin = label_quality(codes, probs, anchored, method="normalized_margin").quality
    assert confidence[1] < confidence[0] and margin[0] < margin[1]
    assert margin[:2].max() < margin[2:].min()
    assert set(QUALITY_METHODS) >= {"self_confidence", "normalized_margin"}
