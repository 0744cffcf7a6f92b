"""The benchmark matrix end to end in quick mode on a tiny MNIST subset."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from quality_lab import matrix
from quality_lab.matrix_report import summary_markdown

HAS_IMAGEHASH = importlib.util.find_spec("imagehash") is not None
# Two tiny DINO trainings and the PNG round trips: about a minute on two busy cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    messages: list[str] = []
    peers = ["phash"] if HAS_IMAGEHASH else []
    frame, clean = matrix.run_matrix(out, datasets=["mnist"], seeds=[0], peers=peers, quick=True, n_samples=150,
                                     say=messages.append)
    return out, frame, clean, messages


def test_every_issue_type_and_kind_is_measured(quick_run):
    out, frame, _, _ = quick_run
    ours = frame[(frame.method == "ours") & (frame.features == "service")]
    assert set(ours.issue_type) == {"off_topic", "near_duplicate", "label_error", "leakage"}
    kinds = set(ours.kind)
    # 150 clean images: ceil(1%) = 2 of each kind, so the leakage thirds stop at exact and JPEG
    assert {"XR", "BLUR", "AUG", "ARTE", "LBL", "LBLC", "LEAK-exact", "LEAK-jpeg"} <= kinds
    for metric in ("AP", "AUROC", "recall@n"):
        values = ours[metric].to_numpy(float)
        assert np.isfinite(values).all() and ((0 <= values) & (values <= 1)).all()
    assert (out / "results.csv").is_file() and (out / "matrix.md").is_file()
    assert {"lad", "mean_knn", "random"} <= set(frame.method)
    if HAS_IMAGEHASH:
        assert "phash" in set(frame.method)


def test_clean_data_rates_and_gate_are_recorded(quick_run):
    out, _, clean, _ = quick_run
    row = clean.iloc[0]
    assert row.dataset == "mnist" and row.n_clean == 150
    for col in ("clean_near_duplicate_rate", "clean_leakage_rate", "flagged_leakage_at_true"):
        assert 0.0 <= row[col] <= 1.0
    assert 0.02 <= row.true_leakage <= 0.04           # one copy in a test split of 30
    assert bool(row.leakage_gate_passes) == (row.flagged_leakage_at_true <= matrix.LEAKAGE_GATE)
    cell = json.loads((out / "cells" / "mnist-s0.json").read_text())
    assert cell["clean"]["dataset"] == "mnist"


def test_copy_rankings_are_also_measured_without_the_sources_own_duplicates(quick_run):
    out, frame, _, messages = quick_run
    second = frame[frame.truth == "without_source_duplicates"]
    assert set(second.issue_type) == {"near_duplicate", "leakage"}
    # every method that ranks copies is measured by both truths
    for method in set(frame[frame.issue_type == "near_duplicate"].method):
        assert (second.method == method).any()
    assert any("the source's own duplicates" in m for m in messages)
    assert "without the source's own duplicates" in (out / "matrix.md").read_text()


def test_stored_rankings_measure_the_same_as_the_run(quick_run):
    from quality_lab.bench.data import BenchData
    from quality_lab.bench.metrics import evaluate_method

    out, frame, _, _ = quick_run
    cell = out / "work" / "mnist-s0"
    stored = matrix.load_rankings(cell / "rankings", "ours", "service")
    assert set(stored.rankings) == {"off_topic", "label_error", "leakage", "near_duplicate"}
    truth = pd.read_csv(cell / "contaminated" / "ground_truth.csv", keep_default_na=False)
    ours = frame[(frame.method == "ours") & (frame.truth == "protocol")].set_index(["issue_type", "kind"])
    # Only the positions matter to the metrics: a bench frame with the run's splits and truth.
    images = sorted((cell / "contaminated" / "images").rglob("*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    splits = np.array([p.relative_to(cell / "contaminated" / "images").parts[0] for p in images])
    data = BenchData("mnist", cell, cell, np.array([str(p) for p in images], dtype=object), [], np.array([]),
                     splits, truth, pd.DataFrame())
    again = pd.DataFrame(evaluate_method(stored, data)).set_index(["issue_type", "kind"])
    assert np.allclose(again["AP"], ours.loc[again.index, "AP"])


def test_exact_leaks_are_found(quick_run):
    _, frame, _, _ = quick_run
    exact = frame[(frame.method == "ours") & (frame.kind == "LEAK-exact")]
    assert float(exact["AP"].iloc[0]) == 1.0          # a byte-identical copy is no test of the model


def test_a_finished_cell_is_kept(quick_run):
    out, _, _, _ = quick_run
    messages: list[str] = []
    matrix.run_matrix(out, datasets=["mnist"], seeds=[0], peers=[], quick=True, n_samples=150, say=messages.append)
    assert any("done earlier" in m for m in messages)


def test_missing_peer_is_skipped_with_its_install_step(quick_run, monkeypatch):
    from quality_lab.bench import fastdup_peer

    monkeypatch.setenv("QUALITY_LAB_FASTDUP_PYTHON", "/nonexistent/python")
    assert "pip install fastdup" in fastdup_peer.unavailable_reason()


def test_summary_has_mean_and_spread_over_seeds():
    rows = []
    for seed, ap in ((0, 0.5), (1, 0.7)):
        for ds in ("a", "b"):
            rows.append(dict(dataset=ds, seed=seed, method="ours", features="service", issue_type="off_topic",
                             kind="all", AP=ap, AUROC=0.9, **{"recall@n": 0.4}, n_injected=3))
    text = summary_markdown(pd.DataFrame(rows), pd.DataFrame(), full=False)
    assert "0.600 ± 0.141" in text                    # mean and sample sd of 0.5 and 0.7
    assert "| **ours (service defaults)** | 0.600 ± 0.141 | 0.600 ± 0.141 | 0.600 |" in text
