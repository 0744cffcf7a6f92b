"""The detection benchmark on a tiny contaminated MNIST subset, the peers, the scaling harness."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

from quality_lab.bench import data as bench_data
from quality_lab.bench import detection, metrics, methods, peers
from quality_lab.evaluation import evaluate_pair_ranking, evaluate_sample_ranking

# A DINO small enough to train in a couple of seconds: the test checks the plumbing and the
# metrics, not the representation.
TINY_SSL = {
    "epochs": 1.0, "arch": "vit_micro_p4", "out_dim": 256, "head_hidden_dim": 128,
    "head_bottleneck_dim": 64, "batch_size": 64, "n_local_crops": 2,
}
HAS_CLEANLAB = all(importlib.util.find_spec(m) is not None for m in ("cleanlab", "datasets"))
HAS_IMAGEHASH = importlib.util.find_spec("imagehash") is not None


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    messages: list[str] = []
    frame = detection.run_detection_benchmark(
        out, datasets=("mnist",), n_samples=300, seed=0, ssl_overrides=TINY_SSL, progress=messages.append,
    )
    return out, frame, messages


def test_table_has_a_row_per_method_and_issue_type(bench_run):
    out, frame, _ = bench_run
    whole = frame[frame.kind == "all"]
    for feats in ("dino_ssl+pixels", "dino_ssl", "raw_pixels", "random_init"):
        got = set(whole[(whole.method == "ours") & (whole.features == feats)].issue_type)
        assert got == set(detection.ISSUE_TYPES), feats
    assert set(whole[whole.method == "random"].issue_type) == set(detection.ISSUE_TYPES)
    assert set(whole[whole.method == "ours_fused"].issue_type) == set(detection.ISSUE_TYPES)
    assert not whole.duplicated(["dataset", "method", "features", "issue_type"]).any()
    for col in ("AP", "AUROC", "recall@n", "P@10", "R@10"):
        vals = frame[col].dropna()
        assert ((vals >= 0) & (vals <= 1)).all(), col
    assert (frame["effort90"] >= 0).all()
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()
    assert (out / "mnist" / "ground_truth.csv").is_file()
    assert "Average precision" in (out / "results.md").read_text()


def test_exact_copies_are_found_first(bench_run):
    _, frame, _ = bench_run
    exact = frame[(frame.method == "ours") & (frame.kind == "LEAK-exact")]
    assert len(exact) == 4 and np.allclose(exact["AP"], 1.0)


def test_every_kind_is_injected_and_evaluated(bench_run):
    out, frame, _ = bench_run
    truth = pd.read_csv(out / "mnist" / "ground_truth.csv")
    assert set(truth.kind) == {"XR", "BLUR", "AUG", "ARTE", "LBL", "LBLC", "LEAK"}
    ours = frame[(frame.method == "ours") & (frame.features == "dino_ssl")]
    assert set(ours.kind) >= {"all", "XR", "BLUR", "AUG", "ARTE", "LBL", "LBLC", "LEAK-exact", "LEAK-light"}


@pytest.mark.skipif(not HAS_CLEANLAB, reason="cleanlab[datalab] not installed")
def test_cleanlab_rows_present(bench_run):
    _, frame, _ = bench_run
    cl = frame[(frame.method == "cleanlab") & (frame.kind == "all")]
    assert set(cl.features) == {"dino_ssl", "raw_pca64"}
    assert set(cl.issue_type) == set(detection.ISSUE_TYPES)


@pytest.mark.skipif(not HAS_IMAGEHASH, reason="imagehash not installed")
def test_phash_rows_present(bench_run):
    _, frame, _ = bench_run
    ph = frame[(frame.method == "phash") & (frame.kind == "all")]
    assert set(ph.issue_type) == {"near_duplicate", "leakage"}


def test_hits_agree_with_the_evaluation_module(tmp_path):
    data = bench_data.prepare_dataset("mnist", tmp_path, n_samples=200, seed=1, progress=lambda m: None)
    rng = np.random.default_rng(0)
    truth = data.truth
    order = rng.permutation(data.n)
    for issue_type in ("off_topic", "label_error"):
        hits, n_pos, _ = metrics._hits(order, data, issue_type, "issue_type", issue_type)
        ref = evaluate_sample_ranking(pd.DataFrame({"path": data.paths[order]}), truth, issue_type)
        mine = metrics._metrics(hits, n_pos, data.n)
        assert math.isclose(mine["AP"], ref["AP"]) and mine["P@10"] == ref["P@10"]
    # Pairs: the true pairs hidden among random ones.
    nd = truth[truth.issue_type == "near_duplicate"]
    a = np.concatenate([rng.integers(0, data.n, 300), nd["index"].to_numpy()])
    b = np.concatenate([rng.integers(0, data.n, 300), nd["partner_index"].to_numpy()])
    keep = a != b
    perm = rng.permutation(int(keep.sum()))
    a, b = a[keep][perm], b[keep][perm]
    hits, n_pos, n_universe = metrics._hits((a, b), data, "near_duplicate", "issue_type", "near_duplicate")
    ref = evaluate_pair_ranking(pd.DataFrame({"path_a": data.paths[a], "path_b": data.paths[b]}), truth)
    assert math.isclose(metrics._metrics(hits, n_pos, n_universe)["AP"], ref["AP"])
    assert n_pos == len(nd)


def test_random_baseline_matches_simulation():
    rng = np.random.default_rng(0)
    n, p = 60, 6
    base = metrics.random_baseline(p, n)
    aps, efforts = [], []
    for _ in range(20000):
        hits = np.zeros(n, dtype=bool)
        hits[rng.choice(n, p, replace=False)] = True
        m = metrics._metrics(hits, p, n)
        aps.append(m["AP"])
        efforts.append(m["effort90"])
    assert abs(np.mean(aps) - base["AP"]) < 0.005
    assert abs(np.mean(efforts) - base["effort90"]) < 0.5


def test_truncated_pair_list_metrics():
    # 2 positives in a universe of 100; the list holds 3 items and finds one positive first.
    hits = np.array([True, False, False])
    m = metrics._metrics(hits, 2, 100)
    assert m["AP"] == pytest.approx(0.5)
    # The missing positive is somewhere in the 97 unlisted items: expected position 3 + 98/2.
    assert m["effort90"] == pytest.approx(3 + 98 / 2)
    # Positive 1 beats all 98 negatives; positive 2 ties with the 96 unlisted negatives.
    assert m["AUROC"] == pytest.approx((98 + 0.5 * 96) / (2 * 98))


def test_parse_rates_and_peers():
    rates = detection._parse_rates(["xr=0.02", "LEAK=0.03"])
    assert rates.xr == 0.02 and rates.leak == 0.03 and rates.aug == detection.BENCH_RATES.aug
    with pytest.raises(Exception):
        detection._parse_rates(["foo=0.1"])
    assert detection._resolve_peers(["none"]) == []
    assert detection._resolve_peers(["all"]) == list(peers.PEERS)
    with pytest.raises(ValueError):
        detection._resolve_peers(["fastdup"])


def test_outlier_baselines_find_a_far_point():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x[17] += 25.0
    assert peers.isolation_forest_ranking(x)[0] == 17
    from quality_assets.knn import build_knn_graph

    center = np.ones(8, dtype=np.float32)
    v = center + 0.1 * rng.normal(size=(200, 8)).astype(np.float32)
    v[17] = -center
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert peers.mean_knn_ranking(build_knn_graph(v, k=5))[0] == 17


@pytest.mark.skipif(not HAS_IMAGEHASH, reason="imagehash not installed")
def test_phash_ranks_an_exact_copy_first():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(28, 28), dtype=np.uint8) for _ in range(40)]
    images.append(images[5].copy())
    splits = np.array(["train"] * 30 + ["test"] * 11)
    r = peers.phash_rankings(peers.phash_hashes(images), splits)
    a, b = r["near_duplicate"]
    assert {int(a[0]), int(b[0])} == {5, 40}
    assert r["leakage"][0] == 40 and set(r["leakage"]) == set(range(30, 41))


@pytest.mark.skipif(not HAS_CLEANLAB, reason="cleanlab[datalab] not installed")
def test_cleanlab_peer_finds_a_flipped_label():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 4
    y = np.repeat(np.arange(3), 60)
    x = (centers[y] + rng.normal(size=(180, 16))).astype(np.float32)
    labels = y.astype(str)
    labels[7] = "2"
    x[100] = x[101] + 1e-4
    splits = np.array(["train"] * 150 + ["test"] * 30)
    r, info = peers.cleanlab_rankings(x, labels, splits, seed=0)
    assert 7 in r["label_error"][:3]
    a, b = r["near_duplicate"]
    assert {int(a[0]), int(b[0])} == {100, 101}
    assert info["cv_accuracy"] > 0.9


def test_fuse_rankings():
    first = {"off_topic": np.array([2, 0, 1, 3]), "near_duplicate": (np.array([0, 1]), np.array([1, 2]))}
    second = {"off_topic": np.array([2, 3, 0, 1]), "near_duplicate": (np.array([3, 0]), np.array([2, 1]))}
    fused = methods.fuse_rankings(first, second, 4)
    assert list(fused["off_topic"]) == [2, 0, 3, 1]
    a, b = fused["near_duplicate"]
    # (0,1): positions 0 and 1 -> 1; (2,3): 2 (unlisted) + 0 -> 2; (1,2): 1 + 2 -> 3.
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1), (2, 3), (1, 2)]


def test_scaling_case_reports_time_memory_and_timeouts():
    from quality_lab.bench import scaling

    inputs = scaling.synthetic_inputs(500, 16, with_pred_probs=True)
    assert inputs["vectors"].shape == (500, 16) and len(inputs["manifest"]) == 500
    assert np.allclose(np.linalg.norm(inputs["vectors"], axis=1), 1.0, atol=1e-5)
    assert np.allclose(inputs["pred_probs"].sum(axis=1), 1.0)
    row = scaling.run_case("ours", 2000, d=16, timeout_s=120)
    assert row["status"] == "ok" and row["method_s"] > 0 and row["peak_rss_mb"] >= row["data_rss_mb"] > 0
    assert row["index_kind"] == "flat" and row["n_issue_rows"] > 2000
    slow = scaling.run_case("ours", 2000, d=16, timeout_s=0.5)
    assert slow["status"].startswith("did not finish")
