"""Confident learning on out-of-sample probabilities (Northcutt et al. 2021, via cleanlab).

Distance ratios on one embedding read one neighbour per side; a classifier trained on the whole
representation sees global class evidence, and its out-of-fold probabilities are what confident
learning needs. Two classifiers on the standardised representation, each fitted with stratified
K-fold cross-validation so every sample's probabilities come from models that never saw it, their
probabilities averaged:
- linear discriminant analysis with Ledoit-Wolf shrinkage (closed form from per-fold class
  moments, linear in N);
- an RBF-kernel support vector machine (libsvm through sklearn's `SVC`; its one-against-one
  decision values Platt-scaled on the other folds' held-out values and pairwise-coupled, as libsvm's
  `probability` option does with an inner cross-validation), for classes that no hyperplane
  separates.
On the benchmark matrix's cells (DINO trained on each cell's data, two views) the average ranked
the protocol's label errors better than LDA alone on 7 of 9 cells: label-error AP 0.921 / 0.923 ->
0.971 / 0.971 (MNIST), 0.768 / 0.844 -> 0.885 / 0.931 (Animal-MNIST), 0.266 / 0.305 -> 0.364 /
0.296 (clip art), 0.258 / 0.480 / 0.305 -> 0.383 / 0.402 / 0.371 (icons); docs/benchmarks/matrix.md.
The kernel model alone did about as well there but worse where few of many features carry the
classes (quality_tests: wide features), which LDA's shrinkage handles. Pairwise-coupled
probabilities matter: the same machine calibrated one-vs-rest (`CalibratedClassifierCV`, sigmoid
or temperature) ranked worse than LDA. Calibrating on the outer folds instead of libsvm's inner
cross-validation ranks as well (mean AP of the fused score on the matrix's 12 cells 0.655 against
0.656) in a ninth of the time (docs/benchmarks/matrix.md, "Update 2026-12-02 (3)"). Above
`KERNEL_MAX_CLASSES` classes the linear model decides alone (the kernel model's class pairs grow as
the square of the classes and it ranked worse there). A kernel
model trains on at most `MAX_TRAIN_ROWS` rows of its fold (its fit costs about the square of its
rows, its predictions the number of support vectors): beyond that, a per-class share in content
order. cleanlab turns the probabilities into per-sample label quality
(`cleanlab.rank.get_label_quality_scores`) and issue flags
(`cleanlab.filter.find_label_issues`); we do not re-implement either.

Anchors (`anchor`, the `trusted` split's samples): labels known to be clean. They sit in every
fold's training data, are never held out, and get their own label as probability and quality 1; the
noise rates cleanlab prunes by are estimated on the other samples only.

Multi-label data (`multi_label_confident_learning`): one binary model per tag ("has t / lacks t",
one-vs-rest), fitted out of fold on folds all tags share (iterative stratification), so that one
pass of moments and one kernel matrix per fold serve every tag; cleanlab's multi-label functions
(`cleanlab.multilabel_classification.rank.get_label_quality_scores_per_class` for each tag's
quality, `get_label_quality_scores` for the aggregate, `cleanlab.filter.find_label_issues(...,
multi_label=True)` for the flags) read the per-tag probabilities.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["ConfidentLearning", "FoldModels", "LabelModel", "MultiLabelConfidentLearning", "Standardiser",
           "anchored_probabilities", "confident_learning", "deal_folds", "fit_label_model", "label_quality",
           "multi_label_confident_learning", "out_of_sample_probabilities", "out_of_sample_tag_probabilities",
           "uses_kernel_model"]

# Folds by dataset size: 5 is cleanlab's recommendation; past 200k samples 3 folds lose little.
_FOLDS_SMALL, _FOLDS_LARGE, _LARGE = 5, 3, 200_000
# Training rows per kernel model. A fit costs about the square of its rows and a prediction the
# number of support vectors, a large share of the rows on overlapping classes. A fold of the
# benchmark matrix's 3,000-image cells trains on all of its ~2,500 rows; larger sets train on a
# per-class share of the cap. The matrix never reaches the cap; at 2,500 it cost label-error AP
# where it binds: 10% flips among Animal-MNIST's 10k images as 14x14 pixel averages, caps 2,500 /
# 5,000 / 8,000 (every row of a fold), AP 0.902 / 0.919 / 0.926 and 0.888 / 0.912 / 0.926 on two
# draws, 2.5-3.9 / 5.2-7.5 / 15 s; synthetic 100 classes at 10k 0.986 / 1.000 (24 / 36 s), at 50k
# 63 / 98 s (`benchmarks/bench_confident_learning.py --caps`, docs/BENCHMARKS.md, "The kernel
# model's training rows").
MAX_TRAIN_ROWS = 5000
# Folds fitted at once: libsvm fits without the GIL.
_KERNEL_THREADS = 4
# Classes up to which the kernel model joins the linear one. Its one-against-one machines have
# C (C - 1) / 2 class pairs, each with a Platt sigmoid per fold, and every row couples C x C pairwise
# probabilities, so its cost grows with the square of the classes, while its capped training rows
# leave each class fewer of them. On synthetic 320-d features, 10k rows, 5% flips
# (`benchmarks/bench_confident_learning.py --sizes 10000 --classes C`), label-quality AP of the
# linear model alone / the two averaged, and seconds: 100 classes 0.999 / 0.996, 3 / 21 s; 120
# 0.999 / 0.997, 3 / 25 s; 150 0.998 / 0.979, 3 / 34 s; 200 0.984 / 0.864, 4 / 54 s; 400 0.856 /
# 0.495, 8 / 214 s; 1,000 classes did not finish in 15 minutes. On real digits (10 classes) the
# kernel model is what finds the flips, even at 12 rows a class (`--digits`: AP 0.55 -> 0.66), so
# the rule counts classes, not rows (docs/BENCHMARKS.md, "Many classes").
KERNEL_MAX_CLASSES = 100
# Bytes per block of rows when predicting: a block holds its kernel values (rows x training rows)
# and its pairwise probabilities (rows x classes^2).
_BLOCK_BYTES = 16 * 2 ** 20
# Bytes of decision values kept between the kernel model's two passes over its held rows (the
# sigmoids' evidence, then the probabilities) instead of computing them again: 10 classes at 100k
# rows hold 36 MB and skip half of the decision values' cost (8.6 of 26 s of confident learning in a
# 100k drop's profile); 100 classes at 10k hold 400 MB.
_KEPT_DECISION_BYTES = 512 * 2 ** 20


def out_of_sample_probabilities(features: np.ndarray, codes: np.ndarray, n_classes: int, *,
                                folds: int | None = None, seed: int = 0,
                                anchor: np.ndarray | None = None, order_key: np.ndarray | None = None,
                                kernel: bool = True) -> np.ndarray:
    """[n, n_classes] probabilities, each row from a model fitted without that row.

    `codes` in 0..n_classes-1. Classes with fewer members than folds are still predicted (their
    members land in some folds' training data); a class with one member gets the probability the
    other folds' models give it, usually near zero, which is what a lone label deserves.
    `anchor` rows (clean labels) are in every fold's training data and get their own label.
    `order_key` (one sortable key per row, e.g. the file's sha256): folds are dealt, and training
    rows fed, in key order, not row order, so the same images give the same probabilities wherever
    they sit (the service's row order follows sample ids, which hash the data root: a moved dataset
    got other folds). `kernel=False`: the linear model alone (what `benchmarks/bench_confident_learning.py`
    compares against).
    """
    return fit_label_model(features, codes, n_classes, folds=folds, seed=seed, anchor=anchor, order_key=order_key,
                           kernel=kernel)[0]


def fit_label_model(features: np.ndarray, codes: np.ndarray, n_classes: int, *, folds: int | None = None,
                    seed: int = 0, anchor: np.ndarray | None = None, order_key: np.ndarray | None = None,
                    kernel: bool = True) -> tuple[np.ndarray, "LabelModel"]:
    """:func:`out_of_sample_probabilities` and the models that gave them (:class:`LabelModel`: the
    standardiser and each fold's models), which predict rows none of them saw
    (`scores.kept_label_model` keeps them between runs)."""
    # Everything runs on the rows in content order, so the same images give bit-identical inputs
    # wherever they sit: the scaler's sums (and a projection's) follow row order in their last bits,
    # and libsvm's solver can take another path on a difference that small.
    order = _content_order(len(codes), order_key)
    anchor = None if anchor is None else np.asarray(anchor)[order]
    probs = np.empty((len(codes), n_classes))
    x, standardiser = _fit_standardiser(np.asarray(features)[order], seed)
    fold_models: list[FoldModels] = []
    probs[order] = _out_of_fold(x, np.asarray(codes)[order], n_classes, folds=folds, seed=seed, anchor=anchor,
                                kernel=kernel, models=fold_models)
    return probs, LabelModel(standardiser, fold_models, n_classes)


def anchored_probabilities(codes: np.ndarray, anchor: np.ndarray | None,
                           n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(anchored rows, [n, n_classes] probabilities): an anchored row's own label has probability 1,
    every other entry is 0 until a fold model fills it."""
    anchored = np.zeros(len(codes), dtype=bool) if anchor is None else np.asarray(anchor, dtype=bool)
    probs = np.zeros((len(codes), n_classes))
    probs[np.flatnonzero(anchored), np.asarray(codes)[anchored]] = 1.0
    return anchored, probs


def deal_folds(codes: np.ndarray, anchored: np.ndarray, n_classes: int, *, folds: int | None = None,
               seed: int = 0) -> tuple[np.ndarray, int]:
    """(fold of each row, number of folds): stratified K-fold over the rows that are not anchored
    (anchored rows get -1: in every fold's training data). K by dataset size unless `folds` is given,
    at most the largest class's size and the number of free rows, at least 2. Callers deal in content
    order (`_content_order`) so the same images land in the same folds wherever they sit."""
    codes = np.asarray(codes)
    free = np.flatnonzero(~np.asarray(anchored, dtype=bool))
    k = folds or (_FOLDS_SMALL if len(codes) <= _LARGE else _FOLDS_LARGE)
    counts = np.bincount(codes[free], minlength=n_classes)
    k = int(max(2, min(k, counts[counts > 0].max(), free.size)))
    # Stratify on classes that can be split; lone members of tiny classes fall in any fold.
    strata = np.where(counts[codes[free]] >= k, codes[free], -1)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of = np.full(len(codes), -1, dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros((free.size, 1)), strata)):
        fold_of[free[held]] = fold
    return fold_of, k


def _out_of_fold(x: np.ndarray, codes: np.ndarray, n_classes: int, *, folds: int | None, seed: int,
                 anchor: np.ndarray | None, kernel: bool = True, models: list | None = None) -> np.ndarray:
    """:func:`out_of_sample_probabilities` on standardised features, the rows in content order.
    `models` (a list): each fold's :class:`FoldModels` is appended to it."""
    codes = np.asarray(codes)
    n = len(codes)
    anchored, probs = anchored_probabilities(codes, anchor, n_classes)
    if anchored.all():
        return probs
    fold_of, k = deal_folds(codes, anchored, n_classes, folds=folds, seed=seed)
    kernel = kernel and uses_kernel_model(codes)
    machines = []  # (held rows, training rows) per fold with a kernel model
    fold_models = []
    for fold, (present, linear) in enumerate(_fold_lda(x, codes, fold_of, k)):
        held = np.flatnonzero(fold_of == fold)
        fold_models.append(FoldModels(present, linear))
        if present.size == 1:
            probs[np.ix_(held, present)] = 1.0
            continue
        # Each model's share; with the kernel model, the two are averaged over the classes either
        # knows (a capped kernel training set can miss a class the linear model saw).
        probs[np.ix_(held, present)] = (0.5 if kernel else 1.0) * linear.predict_proba(x[held])
        if kernel:
            machines.append((held, _training_rows(np.flatnonzero(fold_of != fold), codes, anchored, np.arange(n))))
            fold_models[-1].kernel_share = 0.5
    if machines:
        # Only a caller that keeps the models gets them (copying the support vectors' rows costs memory).
        fitted: list | None = None if models is None else []
        for held, met, kernel_probs in _kernel_probabilities(x, codes, machines, fitted=fitted):
            probs[np.ix_(held, met)] += 0.5 * kernel_probs
        with_machine = [fold for fold in fold_models if fold.kernel_share]
        for fold, (machine, sigmoids) in zip(with_machine, fitted or []):
            fold.machine, fold.sigmoids = machine.support_only(), sigmoids
    if models is not None:
        models.extend(fold_models)
    # Rows sum to 1 (classes absent from a fold's training data got 0).
    return probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)


class _FoldLda:
    """One fold's linear discriminant (sklearn's LinearDiscriminantAnalysis(solver="lsqr",
    shrinkage="auto"), the same estimates) built from moments; predict_proba as sklearn's."""

    def __init__(self, means: np.ndarray, covariance: np.ndarray, priors: np.ndarray, *,
                 cholesky: bool = False) -> None:
        from scipy import linalg

        # `cholesky`: a shrunk covariance is positive definite, and its Cholesky solve is about 10x
        # cheaper than sklearn's least squares at 320 features (4 against 48 ms, the same solution
        # to 1e-14), which the multi-label path pays per tag and fold; a singular one falls back.
        coef = None
        if cholesky:
            try:
                coef = linalg.cho_solve(linalg.cho_factor(covariance), means.T).T
            except linalg.LinAlgError:
                pass
        self.coef = linalg.lstsq(covariance, means.T)[0].T if coef is None else coef
        self.intercept = -0.5 * np.diag(means @ self.coef.T) + np.log(priors)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import expit, softmax

        if self.coef.shape[0] == 2:  # sklearn's binary model: one direction, a logistic
            p = expit(x @ (self.coef[1] - self.coef[0]) + (self.intercept[1] - self.intercept[0]))
            return np.stack([1 - p, p], axis=1)
        return softmax(x @ self.coef.T + self.intercept, axis=1)


def _moments(y: np.ndarray) -> list:
    """[count, sum y, sum y^2, sum y y^T, sum y^2 y^T, sum y^2 (y^2)^T] of the rows of y: additive
    over disjoint row sets, and all a class's shrunk covariance needs."""
    y2 = y * y
    return [y.shape[0], y.sum(0), y2.sum(0), y.T @ y, y2.T @ y, y2.T @ y2]


def _shrunk_covariance(count: int, s1: np.ndarray, s2: np.ndarray, s11: np.ndarray, a: np.ndarray,
                       s22: np.ndarray) -> np.ndarray:
    """sklearn's `_cov(rows, shrinkage="auto")` from the rows' moments: the rows standardised
    (StandardScaler's constant-feature rule), their Ledoit-Wolf shrunk covariance, scaled back."""
    d = s1.size
    n = float(count)
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0)
    eps = np.finfo(np.float64).eps
    scale = np.sqrt(var)
    # StandardScaler's rule for a constant feature, and one for the moments: a variance within the
    # rounding of s2 / n - mean^2 (about n eps of the sum of squares) is a constant feature too, not
    # a tiny spread to divide by (a feature constant over a fold's rows of a class but not at the
    # class mean, where the moments are taken, gave 1e-19 and a covariance of eigenvalue -4e11).
    constant = (var <= n * eps * var + (n * mean * eps) ** 2) | (scale < 10 * eps) | (var <= eps * s2)
    scale[constant] = 1.0
    outer_scale = np.outer(scale, scale)
    covariance = (s11 / n - np.outer(mean, mean)) / outer_scale
    mu = np.trace(covariance) / d
    shrinkage = 0.0
    if d > 1:
        # Ledoit-Wolf's beta needs sum_ij sum_rows z_i^2 z_j^2 of the standardised rows z: the
        # fourth moments about this row set's mean, expanded into the raw moments.
        m = mean
        fourth = (s22 - 2 * a * m[None, :] - 2 * a.T * m[:, None] + np.outer(s2, m * m) + np.outer(m * m, s2)
                  + 4 * np.outer(m, m) * s11 - 2 * np.outer(s1 * m, m * m) - 2 * np.outer(m * m, s1 * m)
                  + n * np.outer(m * m, m * m))
        weight = 1.0 / (scale * scale)
        beta_ = float(weight @ fourth @ weight)
        delta_ = float(np.sum(covariance * covariance))
        beta = (beta_ / n - delta_) / (d * n)
        delta = (delta_ - 2.0 * mu * np.trace(covariance) + d * mu * mu) / d
        beta = min(beta, delta)
        shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1.0 - shrinkage) * covariance
    shrunk.flat[:: d + 1] += shrinkage * mu
    return shrunk * outer_scale


def _fold_lda(x: np.ndarray, codes: np.ndarray, fold_of: np.ndarray, folds: int):
    """Per fold: (classes in its training data, its _FoldLda or None) for the model trained on every
    row outside the fold (fold_of -1: in every fold's training data).

    The same models as fitting sklearn's LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    on each fold's training rows, but each class's moments are summed once per fold and a fold's
    training moments are the total less its own: one pass over the data instead of folds - 1
    (4-5x less arithmetic at 5 folds; the fits were most of a drop's confident learning)."""
    d = x.shape[1]
    n_train = np.array([int((fold_of != fold).sum()) for fold in range(folds)])
    covariance = np.zeros((folds, d, d))
    means: list[dict[int, np.ndarray]] = [{} for _ in range(folds)]
    counts: list[dict[int, int]] = [{} for _ in range(folds)]
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        pivot = x[rows].mean(0)  # moments about the class mean: no cancellation in the variances
        held = [_moments(x[rows[fold_of[rows] == fold]] - pivot) for fold in range(folds)]
        anchors = _moments(x[rows[fold_of[rows] < 0]] - pivot)
        total = [sum(parts) for parts in zip(anchors, *held)]  # every row once, no second pass
        for fold in range(folds):
            train = [t - h for t, h in zip(total, held[fold])]
            if train[0] == 0:
                continue
            counts[fold][int(c)] = int(train[0])
            means[fold][int(c)] = train[1] / train[0] + pivot
            covariance[fold] += train[0] / n_train[fold] * _shrunk_covariance(*train)
    for fold in range(folds):
        present = np.array(sorted(counts[fold]), dtype=np.int64)
        if present.size < 2:
            yield present, None
            continue
        priors = np.array([counts[fold][c] for c in present], dtype=np.float64) / n_train[fold]
        yield present, _FoldLda(np.stack([means[fold][c] for c in present]), covariance[fold], priors)


def uses_kernel_model(codes: np.ndarray) -> bool:
    """Whether the kernel model joins the linear one for these labels: up to `KERNEL_MAX_CLASSES`
    classes with members."""
    return int(np.unique(np.asarray(codes)).size) <= KERNEL_MAX_CLASSES


def _content_order(n: int, order_key: np.ndarray | None) -> np.ndarray:
    """The rows in content order (row order without keys)."""
    return np.arange(n) if order_key is None else np.argsort(np.asarray(order_key), kind="stable")


def _training_rows(rows: np.ndarray, codes: np.ndarray, anchored: np.ndarray, rank: np.ndarray,
                   cap: int | None = None) -> np.ndarray:
    """A fold's training rows for a capped model (the kernel model; the pixel classifier), in
    content order: all of them up to `cap` (default MAX_TRAIN_ROWS); else anchors (the label book)
    first, up to half of it, then the other rows, each part a per-class share (`_first_per_class`)."""
    cap = MAX_TRAIN_ROWS if cap is None else cap
    rows = rows[np.argsort(rank[rows], kind="stable")]
    if rows.size <= cap:
        return rows
    anchors = _first_per_class(rows[anchored[rows]], codes, cap // 2)
    others = _first_per_class(rows[~anchored[rows]], codes, cap - anchors.size)
    kept = np.concatenate([anchors, others])
    return kept[np.argsort(rank[kept], kind="stable")]


def _first_per_class(rows: np.ndarray, codes: np.ndarray, budget: int) -> np.ndarray:
    """Of `rows` (content order), per class the first ones up to the class's share of `budget`, at
    least 10 so a rare class keeps a boundary."""
    if rows.size <= budget:
        return rows
    classes, per_class = np.unique(codes[rows], return_counts=True)
    quota = np.maximum(np.floor(budget * per_class / rows.size), 10).astype(np.int64)
    of_class = np.searchsorted(classes, codes[rows])
    by_class = np.argsort(of_class, kind="stable")
    place = np.empty(rows.size, dtype=np.int64)   # each row's position among its class's rows
    place[by_class] = np.arange(rows.size) - np.repeat(np.cumsum(per_class) - per_class, per_class)
    return rows[place < quota[of_class]]


def _kernel_probabilities(x: np.ndarray, codes: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], *,
                          fitted: list | None = None):
    """Per fold (held rows, training rows): (held rows, the classes its kernel model knows, [held,
    classes] probabilities). The models are libsvm's RBF machines; their one-against-one decision
    values become probabilities as libsvm's `probability` option makes them (Platt 1999: a sigmoid
    per class pair; Wu, Lin and Weng 2004: pairwise coupling), but each pair's sigmoid is fitted on
    the other folds' held-out decision values, where libsvm cross-validates every model five times
    more (its fits cost 4-5x as much). Fitting draws no random numbers, so the folds fit in threads
    (libsvm releases the GIL) and give the same models in any order. scikit-learn deprecates the
    `probability` option (1.9) for one-vs-rest calibration, which ranked label errors worse here.
    Decision values are computed in blocks of rows; with C classes a row has C (C - 1) / 2 of them.
    Where every held row's values fit in `_KEPT_DECISION_BYTES` the blocks that gave the sigmoids'
    evidence give the probabilities too; else they are computed twice, never held for a whole fold.
    `fitted` (a list): each fold's (machine, sigmoids) is appended to it once the sigmoids are fitted."""
    # Only the fits run in threads: libsvm's solver is single-threaded, while the decision values
    # are BLAS products that use every core already (threads there oversubscribe them: 100 classes
    # at 50k took 48 s with four threads, 35 s with one).
    with ThreadPoolExecutor(min(len(folds), _KERNEL_THREADS)) as pool:
        machines = list(pool.map(lambda fold: _FoldMachine.fit(x, codes, fold[1]), folds))
    held_values = sum(held.size * len(machine.pairs) for machine, (held, _) in zip(machines, folds))
    keep = 8 * held_values <= _KEPT_DECISION_BYTES
    evidence, kept = [], []
    for machine, (held, _) in zip(machines, folds):
        blocks = [] if keep else None
        evidence.append(machine.pair_evidence(x, codes, held, keep=blocks))
        kept.append(blocks)
    sigmoids = _pair_sigmoids(machines, evidence)
    if fitted is not None:
        fitted.extend(zip(machines, sigmoids))
    for (held, _), machine, fold_sigmoids, blocks in zip(folds, machines, sigmoids, kept):
        yield held, machine.met, machine.probabilities(x[held], fold_sigmoids, blocks)


@dataclass
class _FoldMachine:
    """One fold's kernel machine: the classes it knows (`met`, its numbering), its [P, 2] class
    pairs i < j (original codes), and libsvm's model on its kernel matrix (None with one class)."""

    met: np.ndarray
    pairs: np.ndarray
    machine: SVC | None = None
    rows: np.ndarray | None = None       # its training rows (the kernel's second side)
    gamma: float = 1.0
    swapped: np.ndarray | None = None    # pairs whose libsvm order is (j, i)
    # A kept machine holds only its support vectors' rows (`support_only`): which training rows they
    # are, of how many (libsvm reads a precomputed kernel only at the support vectors' columns).
    support: np.ndarray | None = None
    n_train: int = 0

    @classmethod
    def fit(cls, x: np.ndarray, codes: np.ndarray, train: np.ndarray) -> "_FoldMachine":
        # libsvm's solution depends a little on the classes' numbering, and callers number classes
        # in row order: the machine numbers them as the content order first meets them.
        met = pd.unique(codes[train])
        if met.size == 1:
            return cls(met, np.zeros((0, 2), dtype=np.int64))
        numbering = np.zeros(int(codes.max()) + 1, dtype=np.int64)
        numbering[met] = np.arange(met.size)
        rows = x[train]
        gamma = 1.0 / (x.shape[1] * max(float(rows.var()), 1e-12))  # sklearn's gamma="scale"
        # libsvm's RBF machine on its kernel matrix, computed by matrix products (the same solution,
        # in about half the time: libsvm evaluates its kernel one pair of rows at a time, and so
        # would its predictions, 5-10x slower on wide features).
        machine = SVC(C=1.0, kernel="precomputed", decision_function_shape="ovo",
                      cache_size=500).fit(rbf_kernel(rows, gamma=gamma), numbering[codes[train]])
        first, second = np.triu_indices(met.size, 1)  # sklearn's one-against-one column order
        pairs = np.stack([met[first], met[second]], axis=1)
        swapped = pairs[:, 0] > pairs[:, 1]
        pairs[swapped] = pairs[swapped][:, ::-1]
        return cls(met, pairs, machine, rows, gamma, swapped)

    def decisions(self, x: np.ndarray):
        """([lo, hi) rows of x, [hi - lo, P] decision values positive towards the pair's first class),
        block by block."""
        m = self.met.size
        step = int(np.clip(_BLOCK_BYTES // (8 * max(len(self.rows), self.n_train, (m + 1) ** 2, 1)), 16, 4096))
        for lo in range(0, x.shape[0], step):
            values = self.machine.decision_function(self._kernel(x[lo:lo + step]))
            if m == 2:
                values = -values.reshape(-1, 1)  # sklearn's binary machine: positive towards the second class
            values[:, self.swapped] *= -1.0
            yield lo, min(lo + step, x.shape[0]), values

    def _kernel(self, x: np.ndarray) -> np.ndarray:
        if self.support is None:
            return rbf_kernel(x, self.rows, gamma=self.gamma)
        values = np.zeros((x.shape[0], self.n_train))
        values[:, self.support] = rbf_kernel(x, self.rows, gamma=self.gamma)
        return values

    def support_only(self) -> "_FoldMachine":
        """The same machine holding only its support vectors' rows, all its decisions read: what a
        kept model stores (on overlapping classes most training rows are support vectors)."""
        if self.machine is None or self.support is not None:
            return self
        support = np.asarray(self.machine.support_, dtype=np.int64)
        return replace(self, rows=self.rows[support], support=support, n_train=len(self.rows))

    def pair_evidence(self, x: np.ndarray, codes: np.ndarray, held: np.ndarray, *,
                      keep: list | None = None) -> dict:
        """{(i, j): (decision values, is class i)} of the held rows labelled i or j, per pair; `keep`
        (a list): every block of decision values is appended to it, for `probabilities`."""
        if self.machine is None:
            return {}
        at_pair, values, first = [], [], []
        for lo, hi, block in self.decisions(x[held]):
            if keep is not None:
                keep.append((lo, hi, block))
            labels = codes[held[lo:hi]]
            row, pair = np.nonzero((labels[:, None] == self.pairs[None, :, 0])
                                   | (labels[:, None] == self.pairs[None, :, 1]))
            at_pair.append(pair)
            values.append(block[row, pair])
            first.append(labels[row] == self.pairs[pair, 0])
        at_pair, values, first = np.concatenate(at_pair), np.concatenate(values), np.concatenate(first)
        by_pair = np.argsort(at_pair, kind="stable")
        bounds = np.searchsorted(at_pair[by_pair], np.arange(len(self.pairs) + 1))
        return {(int(i), int(j)): (values[by_pair[bounds[k]:bounds[k + 1]]], first[by_pair[bounds[k]:bounds[k + 1]]])
                for k, (i, j) in enumerate(self.pairs)}

    def probabilities(self, x: np.ndarray, sigmoids: np.ndarray, blocks: list | None = None) -> np.ndarray:
        """[n, met] coupled probabilities; `sigmoids`: [P, 2] Platt's (A, B) per pair; `blocks`: the
        decision values of x as `pair_evidence` kept them (None: computed here)."""
        if self.machine is None:
            return np.ones((x.shape[0], 1))
        out = np.empty((x.shape[0], self.met.size))
        for lo, hi, values in (self.decisions(x) if blocks is None else blocks):
            win = expit(-(values * sigmoids[:, 0] + sigmoids[:, 1]))  # P(first of pair | pair)
            out[lo:hi] = _couple(win, self.met, self.pairs)
        return out


def _pair_sigmoids(machines: list[_FoldMachine], evidence: list[dict]) -> list[np.ndarray]:
    """Per fold, [P, 2] Platt's (A, B) of P(i | i or j, f) = 1 / (1 + exp(A f + B)) for each of its
    machine's class pairs, fitted on the decision values the other folds' machines gave their held
    rows of class i or j (the fold's own rows when no other fold has any)."""
    out = []
    for fold, machine in enumerate(machines):
        fitted = np.empty((len(machine.pairs), 2))
        for k, (i, j) in enumerate(machine.pairs):
            key = (int(i), int(j))
            others = [found[key] for other, found in enumerate(evidence)
                      if other != fold and key in found and found[key][0].size]
            chosen = others or ([evidence[fold][key]] if key in evidence[fold] else [])
            if not chosen:
                fitted[k] = (-1.0, 0.0)
                continue
            fitted[k] = _platt(np.concatenate([c[0] for c in chosen]), np.concatenate([c[1] for c in chosen]))
        out.append(fitted)
    return out


def _platt(values: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt's (A, B) by maximum likelihood on his smoothed targets: libsvm's `sigmoid_train`
    (Newton's method with a backtracking line search, Lin, Lin and Weng 2007); (-1, 0), the plain
    logistic, without data."""
    if values.size == 0:
        return -1.0, 0.0
    n_pos = float(positive.sum())
    n_neg = float(positive.size - n_pos)
    target = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(slope: float, intercept: float) -> float:
        z = slope * values + intercept
        return float(np.sum(np.logaddexp(0.0, z) - (1.0 - target) * z))

    slope, intercept = 0.0, float(np.log((n_neg + 1.0) / (n_pos + 1.0)))
    current = loss(slope, intercept)
    for _ in range(100):
        p = expit(-(slope * values + intercept))   # P(positive); d loss / dz = target - p
        gap, weight = target - p, p * (1.0 - p)
        g1, g2 = float(gap @ values), float(gap.sum())
        if abs(g1) < 1e-5 and abs(g2) < 1e-5:
            break
        h11, h22, h21 = float(weight @ (values * values)) + 1e-12, float(weight.sum()) + 1e-12, float(weight @ values)
        det = h11 * h22 - h21 * h21
        d_slope, d_intercept = -(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det
        descent = g1 * d_slope + g2 * d_intercept
        step = 1.0
        while step >= 1e-10:
            trial = loss(slope + step * d_slope, intercept + step * d_intercept)
            if trial < current + 1e-4 * step * descent:
                slope, intercept, current = slope + step * d_slope, intercept + step * d_intercept, trial
                break
            step /= 2.0
        else:
            break  # no step lowers the loss: at the optimum up to rounding
    return slope, intercept


def _couple(win: np.ndarray, met: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """[n, classes] probabilities from [n, P] pairwise ones (P(first | pair)), by Wu, Lin and Weng's
    second method (libsvm's `multiclass_probability`): p minimising sum_i sum_{j != i} (r_ji p_i -
    r_ij p_j)^2 with sum p = 1, solved exactly per row. Classes follow `met`."""
    m = met.size
    place = np.zeros(int(met.max()) + 1, dtype=np.int64)
    place[met] = np.arange(m)
    first, second = place[pairs[:, 0]], place[pairs[:, 1]]
    r = np.zeros((win.shape[0], m, m))
    clipped = np.clip(win, 1e-7, 1 - 1e-7)
    r[:, first, second] = clipped
    r[:, second, first] = 1.0 - clipped
    system = np.zeros((win.shape[0], m + 1, m + 1))
    system[:, :m, :m] = -r.transpose(0, 2, 1) * r   # Q_tj = -r_jt r_tj off the diagonal
    diagonal = np.arange(m)
    system[:, diagonal, diagonal] = (r * r).sum(1)  # Q_tt = sum_j r_jt^2 (r_tt = 0)
    system[:, :m, m] = 1.0
    system[:, m, :m] = 1.0
    rhs = np.zeros((win.shape[0], m + 1))
    rhs[:, m] = 1.0
    p = np.clip(np.linalg.solve(system, rhs[..., None])[:, :m, 0], 0.0, None)
    return p / np.clip(p.sum(1, keepdims=True), 1e-12, None)


@dataclass
class FoldModels:
    """One fold's models as `_out_of_fold` fitted them: the classes in its training rows, its linear
    model (None with one class), and its kernel machine with its pairs' Platt sigmoids where the
    kernel model joined, at `kernel_share` of the probabilities (0: the linear model alone)."""

    present: np.ndarray
    linear: _FoldLda | None
    machine: _FoldMachine | None = None
    sigmoids: np.ndarray | None = None
    kernel_share: float = 0.0

    def predict(self, x: np.ndarray, n_classes: int) -> np.ndarray:
        """[n, n_classes] probabilities of standardised rows this fold's models never saw, as
        `_out_of_fold` gives its held rows."""
        probs = np.zeros((x.shape[0], n_classes))
        if self.linear is None:
            probs[:, self.present] = 1.0
            return probs
        probs[:, self.present] = (1.0 - self.kernel_share) * self.linear.predict_proba(x)
        if self.machine is not None:
            probs[:, self.machine.met] += self.kernel_share * self.machine.probabilities(x, self.sigmoids)
        return probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)


@dataclass
class LabelModel:
    """Everything :func:`fit_label_model` fitted: the standardiser and each fold's models. `predict`:
    the probabilities of new rows (raw features), none of whose models saw them, as the mean over
    the folds (the pixel classifier predicts new rows with its fold networks' mean too)."""

    standardiser: Standardiser
    folds: list[FoldModels] = field(default_factory=list)
    n_classes: int = 0

    @property
    def kernel_used(self) -> bool:
        return any(fold.machine is not None for fold in self.folds)

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = self.standardiser(features)
        if not self.folds:
            raise ValueError("a label model fitted on anchored rows alone has no fold models to predict with")
        return sum(fold.predict(x, self.n_classes) for fold in self.folds) / len(self.folds)


# cleanlab's label-quality scores of one label (`cleanlab.rank.get_label_quality_scores`), and the one
# the label-error issue type reads by default (its `quality_method`).
QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
QUALITY_METHOD = "self_confidence"


@dataclass
class ConfidentLearning:
    pred_probs: np.ndarray       # [n, C] out-of-sample probabilities
    quality: np.ndarray          # [n] label quality in [0, 1], lower = more likely wrong
    is_issue: np.ndarray         # [n] cleanlab's flags (prune by noise rate)
    kernel_used: bool = False    # the kernel model joined the linear one (`KERNEL_MAX_CLASSES`)


def confident_learning(features: np.ndarray, codes: np.ndarray, n_classes: int, *, seed: int = 0,
                       anchor: np.ndarray | None = None, order_key: np.ndarray | None = None,
                       kernel: bool = True, method: str = QUALITY_METHOD) -> ConfidentLearning:
    """Out-of-sample probabilities and cleanlab's label quality and issues for labelled samples;
    `anchor` rows (clean labels) anchor every fold and are never flagged; `order_key`, `kernel`: see
    :func:`out_of_sample_probabilities`; `method`: cleanlab's label-quality score (`label_quality`)."""
    codes = np.asarray(codes)
    anchored = np.zeros(len(codes), dtype=bool) if anchor is None else np.asarray(anchor, dtype=bool)
    probs = out_of_sample_probabilities(features, codes, n_classes, seed=seed, anchor=anchored, order_key=order_key,
                                        kernel=kernel)
    return label_quality(codes, probs, anchored, kernel_used=bool(kernel and uses_kernel_model(codes)), method=method)


def label_quality(codes: np.ndarray, probs: np.ndarray, anchored: np.ndarray, *, kernel_used: bool = False,
                  method: str = QUALITY_METHOD) -> ConfidentLearning:
    """cleanlab's label quality (`cleanlab.rank.get_label_quality_scores` with `method`, one of
    `QUALITY_METHODS`) and issues from out-of-sample probabilities (`probs`: [n, C]); `anchored` rows
    are never flagged."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    codes = np.asarray(codes)
    n_classes = probs.shape[1]
    anchored = np.asarray(anchored, dtype=bool)
    quality = get_label_quality_scores(codes, probs, method=method)
    issues = np.zeros(len(codes), dtype=bool)
    free = np.flatnonzero(~anchored)
    present = np.bincount(codes[free], minlength=n_classes) > 0
    if present.sum() >= 2:
        # cleanlab expects every class column to have members; reduce to the present ones.
        columns = np.flatnonzero(present)
        remap = np.full(n_classes, -1)
        remap[columns] = np.arange(columns.size)
        sub = probs[np.ix_(free, columns)]
        sub = sub / np.clip(sub.sum(1, keepdims=True), 1e-12, None)
        # n_jobs=1: cleanlab otherwise forks a process pool, which can deadlock in a process that already
        # runs torch/OpenMP threads (seen in this test suite).
        issues[free] = find_label_issues(remap[codes[free]], sub, filter_by="prune_by_noise_rate", n_jobs=1)
    return ConfidentLearning(probs, np.clip(quality, 0.0, 1.0), np.asarray(issues, dtype=bool),
                             kernel_used=kernel_used)


# Every kernel evaluation reads every feature: a raw-pixel embedder plus the pixel view (980) would
# cost the fits and predictions more than twice as much as 384. Wider features are projected first,
# the default SSL model's 256 and the pixel view's 196 too.
MAX_FEATURES = 384
# Rows per feature from which the projection reads the covariance (`_pca_solver`): sklearn's own
# rule for its "auto" solver, fixed here so that a release cannot change it under us.
_COVARIANCE_ROWS_PER_FEATURE = 10


def _standardise(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """Standardised features. Wider than MAX_FEATURES: first projected on their top principal
    components (before scaling, so the directions that carry the variance, where an embedding
    keeps its classes, are the ones kept), in a random basis of them (see `_random_rotation`).
    Fewer rows than that: standardised, then expressed in the rows' own span (`_in_row_span`)."""
    return _fit_standardiser(features, seed)[0]


@dataclass
class Standardiser:
    """`_standardise` as fitted on some rows, for others: every step is affine (the projection, the
    rotation, the scaling, the span), so together they are x @ matrix + offset. A new row is
    projected on the fitted components, as sklearn's `PCA.transform` projects it; the fitted rows
    themselves, where the randomized solver projected them (fewer than ten rows a feature), are
    its approximation of that (U S)."""

    matrix: np.ndarray
    offset: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.matrix + self.offset


def _fit_standardiser(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, Standardiser]:
    """(`_standardise(features, seed)`, the :class:`Standardiser` that maps other rows as it mapped these)."""
    x = np.asarray(features, dtype=np.float64)
    matrix, offset = np.eye(x.shape[1]), np.zeros(x.shape[1])
    if x.shape[1] > MAX_FEATURES and x.shape[0] > MAX_FEATURES:
        from sklearn.decomposition import PCA

        projection = PCA(n_components=MAX_FEATURES, svd_solver=_pca_solver(*x.shape), random_state=seed)
        rotation = _random_rotation(MAX_FEATURES, seed)
        x = projection.fit_transform(x) @ rotation
        matrix = projection.components_.T @ rotation
        offset = -projection.mean_ @ matrix
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    matrix, offset = matrix / scaler.scale_, (offset - scaler.mean_) / scaler.scale_
    if x.shape[1] > MAX_FEATURES:
        x, centre, basis = _in_row_span(x, seed)
        matrix, offset = matrix @ basis, (offset - centre) @ basis
    return x, Standardiser(matrix, offset)


def _pca_solver(rows: int, features: int) -> str:
    """sklearn's PCA solver for the projection. From ten rows a feature (the default's 452 features
    on 4,520 labelled images or more) the exact components come from the features' covariance (one
    pass over the rows, then a features^2 eigenproblem): 8.6-10.7x faster than the randomized
    solver's repeated passes at 10k-100k rows, keeping more of the variance, the same label-error AP
    (`benchmarks/bench_confident_learning.py --projections`, docs/BENCHMARKS.md "The projection of
    wide features"). Fewer rows (the benchmark matrix's cells among them) keep the randomized
    solver, as sklearn's own `auto` choice does."""
    return "covariance_eigh" if rows >= _COVARIANCE_ROWS_PER_FEATURE * features else "randomized"


def _random_rotation(size: int, seed: int) -> np.ndarray:
    """A random orthogonal [size, size] matrix (Haar). Principal axes are ordered by variance, and
    standardising each of them would blow the least ones (noise) up to the weight of the first:
    whitening. In a random basis of the same axes every coordinate carries about the same variance,
    so the scaling that follows (and the linear model's own) is nearly neutral, as on the raw
    features. 1,000 MNIST digits as 784 pixels, 5% flips: fused AP 0.649 / 0.569 whitened, 0.956 /
    0.890 rotated (two draws, `docs/BENCHMARKS.md` "Wide features")."""
    rotation, triangle = np.linalg.qr(np.random.default_rng(seed).normal(size=(size, size)))
    return rotation * np.sign(np.diag(triangle))


def _in_row_span(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the centred rows in an orthonormal basis of the directions they span (at most n - 1), their
    centre, that basis as columns of the features). Every distance and inner product between rows
    is kept, so the kernel model is unchanged, while the
    linear model's moments shrink from width^2 to n^2 (a 300-row set of 2,352 features spent 32-36 s
    and 2 GB there, 0.3-0.6 s and 0.3 GB in the span: `benchmarks/bench_confident_learning.py
    --sizes 300 --dim 2352`). The basis is a random rotation of the principal axes
    (`_random_rotation`: on the axes themselves the linear model's per-coordinate scaling took
    linear AP on synthetic flips from 0.93 to 0.18)."""
    centre = x.mean(0)
    centred = x - centre
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    kept = singular > singular[:1].max(initial=0.0) * 1e-10 * max(centred.shape)
    if not kept.any():
        return centred[:, :1] * 0.0, centre, np.zeros((x.shape[1], 1))
    rotation = _random_rotation(int(kept.sum()), seed)
    return (centred @ axes[kept].T) @ rotation, centre, axes[kept].T @ rotation


def out_of_sample_tag_probabilities(features: np.ndarray, present: np.ndarray, *, folds: int | None = None,
                                    seed: int = 0, order_key: np.ndarray | None = None) -> np.ndarray:
    """[n, T] probability that each sample carries each tag, each from a one-vs-rest model fitted
    without that sample (`present`: [n, T] bool). A tag every sample carries (or none does) gets
    that constant. `order_key`: the folds are dealt, and rows fed, in this order (see
    :func:`out_of_sample_probabilities`).

    Every tag shares one set of folds (`_tag_folds`), so that one pass of moments serves every tag's
    linear model (`_tag_linear_probabilities`) and one kernel matrix per fold every tag's kernel
    machine (`_tag_kernel_probabilities`): with folds per tag, each tag computed its own, and the
    cost grew with the tags times the rows (`benchmarks/bench_multi_label_cost.py`). Each tag's
    probability is the average of its linear model's and its kernel model's, as for single labels."""
    present = np.asarray(present, dtype=bool)
    n, n_tags = present.shape
    order = _content_order(n, order_key)  # see `out_of_sample_probabilities`
    y = present[order]
    probs = np.zeros((n, n_tags))
    varied = np.flatnonzero(y.any(0) & ~y.all(0))
    constant = np.setdiff1d(np.arange(n_tags), varied)
    if n:
        probs[:, constant] = y[0, constant].astype(np.float64)
    if varied.size:
        x = _standardise(np.asarray(features)[order], seed)
        tags = y[:, varied]
        strata = _tag_strata(tags)
        fold_of, k = _tag_folds(tags, folds=folds, seed=seed)
        linear, settled = _tag_linear_probabilities(x, tags, fold_of, k)
        kernel = _tag_kernel_probabilities(x, tags, strata, fold_of, k)
        probs[:, varied] = np.where(settled, linear, 0.5 * linear + 0.5 * kernel)
    out = np.empty_like(probs)
    out[order] = probs
    return np.clip(out, 0.0, 1.0)


def _tag_folds(tags: np.ndarray, *, folds: int | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """(fold of each row, number of folds) for all tags at once: iterative stratification (Sechidis,
    Tsoumakas and Vlahavas 2011; the `iterative-stratification` package's MultilabelStratifiedKFold),
    which deals the rarest tags' members first, so every tag, not one, is spread evenly over the
    folds. Folds stratified on each row's rarest tag alone ranked flipped tags worse at 100 tags
    (entry AP 0.424 against 0.456 with folds per tag, on one draw; these folds 0.456, and the same
    as per tag over three draws: `benchmarks/bench_multi_label_cost.py`, docs/BENCHMARKS.md "Many tags")."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    n = len(tags)
    k = int(max(2, min(folds or (_FOLDS_SMALL if n <= _LARGE else _FOLDS_LARGE), n)))
    fold_of = np.full(n, -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(splitter.split(np.zeros((n, 1)), tags.astype(np.int64))):
        fold_of[held] = fold
    return fold_of, k


def _tag_strata(tags: np.ndarray) -> np.ndarray:
    """Each row's rarest tag (its column in `tags`), or the number of tags for a row without any:
    the strata a capped kernel training set takes its per-stratum shares of (`_first_per_class`),
    so a rare tag keeps members there."""
    count = tags.sum(0)
    rarity = np.where(tags, count[None, :], np.iinfo(np.int64).max)
    return np.where(tags.any(1), rarity.argmin(1), tags.shape[1]).astype(np.int64)


def _tag_linear_probabilities(x: np.ndarray, tags: np.ndarray, fold_of: np.ndarray,
                              folds: int) -> tuple[np.ndarray, np.ndarray]:
    """([n, T] each row's linear-model probability of carrying each tag, [n, T] whether the row's
    fold's training rows carried one state of the tag, which the probability then is).

    Each tag's model is `_fold_lda`'s two-class discriminant ("lacks t", "has t"), but the moments
    are shared: each fold's rows are summed once for all tags, and a tag's "lacks" moments are the
    fold's less its "has" moments, so a tag costs its members' rows, not all rows (`_fold_lda`
    per tag summed every row for every tag: two thirds of the time at 100 tags). The moments are
    taken about zero, the standardised features' mean, where `_fold_lda` takes a class's about its
    own mean; the difference is rounding."""
    n, n_tags = tags.shape
    linear, settled = np.empty((n, n_tags)), np.zeros((n, n_tags), dtype=bool)
    in_fold = [np.flatnonzero(fold_of == fold) for fold in range(folds)]
    fold_moments = [_moments(x[rows]) for rows in in_fold]
    total = [sum(parts) for parts in zip(*fold_moments)]
    trains = [[a - b for a, b in zip(total, held)] for held in fold_moments]
    for t in range(n_tags):
        has_fold = [_moments(x[rows[tags[rows, t]]]) for rows in in_fold]
        has_total = [sum(parts) for parts in zip(*has_fold)]
        for fold, rows in enumerate(in_fold):
            has = [a - b for a, b in zip(has_total, has_fold[fold])]
            train = trains[fold]
            lacks = [a - b for a, b in zip(train, has)]
            if has[0] == 0 or lacks[0] == 0:
                linear[rows, t], settled[rows, t] = float(has[0] > 0), True
                continue
            n_train = float(train[0])
            covariance = (has[0] / n_train * _shrunk_covariance(*has)
                          + lacks[0] / n_train * _shrunk_covariance(*lacks))
            means = np.stack([lacks[1] / lacks[0], has[1] / has[0]])
            linear[rows, t] = _FoldLda(means, covariance, np.array([lacks[0], has[0]]) / n_train,
                                       cholesky=True).predict_proba(x[rows])[:, 1]
    return linear, settled


def _tag_kernel_probabilities(x: np.ndarray, tags: np.ndarray, strata: np.ndarray, fold_of: np.ndarray,
                              folds: int) -> np.ndarray:
    """[n, T] each row's kernel-model probability of carrying each tag, from its fold's models.

    One kernel matrix per fold serves every tag: the fold's training rows (capped at
    `MAX_TRAIN_ROWS`, a share of each stratum) are the same for all tags, so each tag's machine is
    libsvm's RBF machine fitted on the same precomputed kernel, and each held row's kernel values
    are computed once for all tags. Decision values become probabilities as in
    `_kernel_probabilities`: Platt's sigmoid per tag and fold, fitted on the other folds' held-out
    decision values. A fold whose training rows carry one state of a tag says that state."""
    n, n_tags = tags.shape
    trains = [_training_rows(np.flatnonzero(fold_of != fold), strata, np.zeros(n, dtype=bool), np.arange(n))
              for fold in range(folds)]
    gammas = [1.0 / (x.shape[1] * max(float(x[rows].var()), 1e-12)) for rows in trains]  # gamma="scale"
    machines = []
    # One fold's kernel matrix at a time (200 MB at 5,000 rows), its tags fitted in threads: libsvm
    # fits without the GIL, while the kernel matrix is a BLAS product, computed outside them.
    with ThreadPoolExecutor(_KERNEL_THREADS) as pool:
        for rows, gamma in zip(trains, gammas):
            gram, labels = rbf_kernel(x[rows], gamma=gamma), tags[rows]

            def fit(t: int, gram: np.ndarray = gram, labels: np.ndarray = labels):
                if labels[:, t].min() == labels[:, t].max():
                    return float(labels[0, t])
                return SVC(C=1.0, kernel="precomputed", cache_size=500).fit(gram, labels[:, t].astype(np.int64))

            machines.append(list(pool.map(fit, range(n_tags))))
            del gram
    decision = np.full((n, n_tags), np.nan)
    kernel = np.full((n, n_tags), np.nan)          # a fold's one-state machines say that state here
    for fold in range(folds):
        held = np.flatnonzero(fold_of == fold)
        step = int(np.clip(_BLOCK_BYTES // (8 * max(len(trains[fold]), 1)), 16, 4096))
        for lo in range(0, held.size, step):
            rows = held[lo:lo + step]
            values = rbf_kernel(x[rows], x[trains[fold]], gamma=gammas[fold])
            for t, machine in enumerate(machines[fold]):
                if isinstance(machine, float):
                    kernel[rows, t] = machine
                else:   # sklearn's binary machine: positive towards its second class, "carries the tag"
                    decision[rows, t] = machine.decision_function(values)
    for fold in range(folds):
        held, others = fold_of == fold, fold_of != fold
        for t in range(n_tags):
            if isinstance(machines[fold][t], float):
                continue
            evidence = others & ~np.isnan(decision[:, t])
            if not evidence.any():
                evidence = held
            slope, intercept = _platt(decision[evidence, t], tags[evidence, t])
            kernel[held, t] = expit(-(slope * decision[held, t] + intercept))
    return kernel


@dataclass
class MultiLabelConfidentLearning:
    pred_probs: np.ndarray       # [n, T] out-of-sample probability of carrying each tag
    tag_quality: np.ndarray      # [n, T] cleanlab's quality of the given state of each tag, lower = likelier wrong
    quality: np.ndarray          # [n] cleanlab's aggregate over the tags (worst tags weigh most)
    is_issue: np.ndarray         # [n] cleanlab's multi-label flags


def multi_label_confident_learning(features: np.ndarray, present: np.ndarray, *, seed: int = 0,
                                   order_key: np.ndarray | None = None) -> MultiLabelConfidentLearning:
    """Out-of-sample one-vs-rest probabilities and cleanlab's multi-label quality and issues."""
    from cleanlab.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import (
        get_label_quality_scores as multilabel_quality, get_label_quality_scores_per_class,
    )

    present = np.asarray(present, dtype=bool)
    probs = out_of_sample_tag_probabilities(features, present, seed=seed, order_key=order_key)
    labels = [list(np.flatnonzero(row)) for row in present]
    per_tag = np.asarray(get_label_quality_scores_per_class(labels, probs, method="self_confidence"), dtype=float)
    if per_tag.shape != probs.shape:  # documented as K arrays of N; 2.9 returns [N, K]
        per_tag = per_tag.T
    quality = multilabel_quality(labels, probs, method="self_confidence")
    # cleanlab flags per tag and needs both states of a tag among the samples; constant tags carry no evidence.
    varied = np.flatnonzero(present.any(0) & ~present.all(0))
    if varied.size >= 1:
        sub = [list(np.flatnonzero(row)) for row in present[:, varied]]
        # n_jobs=1: see `confident_learning`.
        issues = find_label_issues(sub, probs[:, varied], multi_label=True, filter_by="prune_by_noise_rate", n_jobs=1)
    else:
        issues = np.zeros(len(present), dtype=bool)
    return MultiLabelConfidentLearning(probs, np.clip(per_tag, 0.0, 1.0), np.clip(quality, 0.0, 1.0),
                                       np.asarray(issues, dtype=bool))
