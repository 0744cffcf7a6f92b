"""Multi-label label errors one tag at a time: flipped tags rank first and the suggestion names
them; cleanlab's multi-label confident learning on out-of-fold one-vs-rest probabilities; the
per-tag confusion table; KNN-Shapley per tag."""

from __future__ import annotations

import numpy as np
import pytest

from quality_assets.knn import build_knn_graph
from quality_assets.scores.confident_learning import (
    multi_label_confident_learning, out_of_sample_tag_probabilities,
)
from quality_assets.scores.data_value import knn_shapley_values
from quality_assets.scores.multi_label import (
    is_multi_label, multi_label_errors, tag_confusion, tag_matrix, tag_ratio_scores, tag_sets,
)

TAGS = np.array(["cat", "dog", "grass", "sky"], dtype=object)


def _tagged_vectors(seed: int, n: int = 400, n_flipped: int = 6, noise: float = 0.3):
    """Each tag adds its own direction to the vector (so every tag is linearly learnable); `n_flipped`
    samples get one tag added or removed (never the only one). Returns x, labels, flipped rows,
    flipped tags, true presence."""
    rng = np.random.default_rng(seed)
    d = 32
    truth = rng.random((n, TAGS.size)) < rng.uniform(0.25, 0.5, TAGS.size)
    empty = ~truth.any(1)
    truth[empty, rng.integers(0, TAGS.size, empty.sum())] = True
    directions = rng.normal(size=(TAGS.size, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    x = truth @ (2.5 * directions) + rng.normal(0, noise, (n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    given = truth.copy()
    rows = rng.choice(n, n_flipped, replace=False)
    tags = rng.integers(0, TAGS.size, n_flipped)
    for j, i in enumerate(rows):
        if given[i].sum() == 1 and given[i, tags[j]]:
            tags[j] = (tags[j] + 1) % TAGS.size
        given[i, tags[j]] ^= True
    labels = np.asarray(["|".join(TAGS[g]) for g in given], dtype=object)
    return x, labels, rows, TAGS[tags], truth


def _ranks(score: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(score, kind="stable"), kind="stable") + 1


def test_tag_matrix_reads_unordered_sets_and_skips_unlabelled() -> None:
    tags = tag_matrix(["dog| cat", "cat", None, "sky|cat|dog", float("nan")])
    assert tags.tags.tolist() == ["cat", "dog", "sky"]
    assert tags.labelled.tolist() == [True, True, False, True, False]
    assert tags.present.astype(int).tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert tag_sets(tags.present, tags.tags).tolist() == ["cat|dog", "cat", None, "cat|dog|sky", None]
    assert is_multi_label(["a", "b|a"]) and not is_multi_label(["a", "b", None])


def test_tag_confusion_counts_extra_and_missed_tags() -> None:
    present = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=bool)
    flip = np.array([[1, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    flagged = np.array([True, True, True, False])
    out = tag_confusion(present, np.array(["cat", "dog"], dtype=object), flip, flagged)
    assert out.to_dict("records") == [
        {"given_label": "(no cat)", "suggested_label": "cat", "count": 1},
        {"given_label": "cat", "suggested_label": "(no cat)", "count": 1},
        {"given_label": "dog", "suggested_label": "(no dog)", "count": 1},
    ]
    assert tag_confusion(present, np.array(["cat", "dog"], dtype=object), flip, np.zeros(4, bool)).empty


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_tags_rank_first_and_the_suggestion_flips_exactly_that_tag(seed: int) -> None:
    x, labels, rows, tags, truth = _tagged_vectors(seed)
    # As a set-as-class problem this data has up to 15 classes; one tag at a time it has 4 easy ones.
    found = multi_label_errors(build_knn_graph(x, 10), labels, vectors=x)
    assert sorted(_ranks(found.score)[rows].tolist()) == [1, 2, 3, 4, 5, 6]
    for i, tag in zip(rows, tags):
        changed = found.added[i] if found.added[i] is not None else found.removed[i]
        assert changed == tag, (i, labels[i], found.suggested[i])
        assert found.suggested[i] == "|".join(TAGS[truth[i]])
        assert found.confidence[i] > 0.8
        assert found.tags[found.worst_tag[i]] == tag
    # cleanlab's own multi-label flags catch them too, all but at most one: its per-tag thresholds
    # are each tag's mean self-confidence, and the kernel model's Platt-scaled probabilities of a
    # flipped tag can sit just under them (the service flags by its own rule, not by these).
    assert found.cleanlab_issues[rows].sum() >= len(rows) - 1
    # Clean samples keep their set.
    clean = np.setdiff1d(np.arange(len(labels)), rows)
    assert (found.suggested[clean] == labels[clean]).mean() >= 0.97


def test_neighbours_alone_find_the_flipped_tags() -> None:
    x, labels, rows, tags, _ = _tagged_vectors(0)
    found = multi_label_errors(build_knn_graph(x, 10), labels, confident_learning=False)
    assert found.cleanlab_issues is None
    assert _ranks(found.score)[rows].max() <= 8
    assert all(tag in (found.added[i], found.removed[i]) for i, tag in zip(rows, tags))


def test_tag_ratio_is_the_single_label_ratio_of_each_binary_problem() -> None:
    from quality_assets.scores.label_error import label_error_scores

    x, labels, _, _, _ = _tagged_vectors(3, n=200)
    labels[::17] = None
    graph = build_knn_graph(x, 8)
    tags = tag_matrix(labels)
    ratio = tag_ratio_scores(graph, tags)
    for t in range(tags.tags.size):
        binary = np.where(tags.labelled, np.where(tags.present[:, t], "yes", "no"), None)
        expected = label_error_scores(graph, binary)["score"].to_numpy()
        np.testing.assert_allclose(ratio[:, t], expected, equal_nan=True)


def test_tag_probabilities_are_out_of_fold_and_handle_constant_and_rare_tags() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(150, 6))
    present = np.column_stack([x[:, 0] > 0, np.ones(150, bool), np.zeros(150, bool), np.arange(150) < 3])
    probs = out_of_sample_tag_probabilities(x, present)
    assert probs.shape == (150, 4)
    assert ((probs[:, 0] > 0.5) == present[:, 0]).mean() >= 0.85
    assert (probs[:, 1] == 1.0).all() and (probs[:, 2] == 0.0).all()
    # Tags of pure noise: a model that saw its own rows would fit them; out of fold it cannot beat chance.
    noise = rng.normal(size=(200, 60))
    random_tags = rng.random((200, 2)) < 0.5
    held_out = out_of_sample_tag_probabilities(noise, random_tags)
    assert ((held_out > 0.5) == random_tags).mean() < 0.65
    learned = multi_label_confident_learning(x, present[:, [0, 3]])
    assert learned.tag_quality.shape == (150, 2) and learned.quality.shape == (150,)
    assert np.all((learned.tag_quality >= 0) & (learned.tag_quality <= 1))


@pytest.mark.parametrize("cap", [None, 150])
def test_tags_share_one_set_of_folds_and_each_tags_models_are_its_own_two_class_models(cap, monkeypatch) -> None:
    """The shared folds, moments and kernel matrices are an economy, not another model: on those folds
    each tag's linear and kernel probabilities are what the single-label models give that tag's
    two classes on the same folds and training rows (the first rows carry no tag, so the kernel
    machines number the classes alike), with every training row and with a capped share of them."""
    from quality_assets.scores import confident_learning as cl

    if cap:
        monkeypatch.setattr(cl, "MAX_TRAIN_ROWS", cap)

    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 12))
    tags = np.column_stack([x[:, 0] + 0.5 * rng.normal(size=n) > 0, x[:, 1] * x[:, 2] > 0.3,
                            np.arange(n) % 37 == 5])
    tags[:10] = False
    strata = cl._tag_strata(tags)
    assert strata[42] == 2 and strata[0] == 3   # a row's rarest tag; a row without tags apart
    fold_of, k = cl._tag_folds(tags, seed=0)
    # Iterative stratification: every tag's members spread evenly over the folds, the rare one too.
    per_fold = np.stack([tags[fold_of == fold].sum(0) for fold in range(k)])
    assert k == 5 and (fold_of >= 0).all() and (per_fold.max(0) - per_fold.min(0) <= 1).all()
    linear, settled = cl._tag_linear_probabilities(x, tags, fold_of, k)
    kernel = cl._tag_kernel_probabilities(x, tags, strata, fold_of, k)
    assert not settled.any()
    trains = [cl._training_rows(np.flatnonzero(fold_of != f), strata, np.zeros(n, dtype=bool), np.arange(n))
              for f in range(k)]
    # 320 training rows a fold: all of them, or under the cap a share of each row's rarest tag, the rare one's too.
    assert all((len(rows) <= cap + 10 if cap else len(rows) == 320) and tags[rows, 2].any() for rows in trains)
    for t in range(tags.shape[1]):
        codes = tags[:, t].astype(np.int64)
        own_linear, own_kernel = np.full(n, np.nan), np.full(n, np.nan)
        for fold, (_, model) in enumerate(cl._fold_lda(x, codes, fold_of, k)):
            own_linear[fold_of == fold] = model.predict_proba(x[fold_of == fold])[:, 1]
        folds = [(np.flatnonzero(fold_of == f), trains[f]) for f in range(k)]
        for held, met, probs in cl._kernel_probabilities(x, codes, folds):
            own_kernel[held] = probs[:, list(met).index(1)]
        np.testing.assert_allclose(linear[:, t], own_linear, atol=1e-9)
        np.testing.assert_allclose(kernel[:, t], own_kernel, atol=1e-9)


def test_valuation_is_the_mean_of_per_tag_values() -> None:
    x, labels, _, _, truth = _tagged_vectors(1, n=300, n_flipped=0)
    splits = np.where(np.arange(300) % 4 == 0, "test", "train").astype(object)
    train = np.flatnonzero(splits == "train")
    victim = int(train[truth[train].sum(1) == 3][0])          # one of its three tags removed
    labels[victim] = "|".join(TAGS[truth[victim] ^ (TAGS == TAGS[truth[victim]][0])])
    graph = build_knn_graph(x, 10)
    value = knn_shapley_values(graph, labels, splits)
    # Shapley values are linear in the utility: the mean per-tag accuracy's values are the mean of
    # each binary problem's values.
    tags = tag_matrix(labels)
    per_tag = [knn_shapley_values(graph, np.where(tags.present[:, t], "yes", "no").astype(object), splits)
               for t in range(tags.tags.size)]
    np.testing.assert_allclose(value, np.mean(per_tag, axis=0), equal_nan=True)
    clean = np.setdiff1d(train, [victim])
    assert value[victim] < np.median(value[clean])
    # One class per set calls clean samples with an unusual set harmful (measured 2.2% of them
    # here); per tag none is.
    as_sets = knn_shapley_values(graph, labels, splits, multi_label=False)
    assert (as_sets[clean] < 0).mean() > 0.01
    assert (value[clean] < 0).sum() == 0
