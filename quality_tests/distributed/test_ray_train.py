"""DINO on Ray Train (`distributed.ssl_train`) on a real local Ray cluster: one worker trains exactly
the in-process model; two workers train one model between them (the same teacher on both, half the
steps per epoch), and the service registers and embeds with it like any other."""

import numpy as np
import pytest
import torch

pytest.importorskip("ray")

from quality_assets.distributed.engine import RAY_ADDRESS_ENV, RAY_TRAIN_WORKERS_ENV
from quality_assets.distributed.ssl_train import train_dino_on_ray
from quality_assets.ingest import ingest_drop
from quality_assets.representation import ModelOptions, embed_missing, ensure_model
from quality_assets.ssl.train import train_dino
from quality_assets.store import Store
from quality_tests.imagefolders import make_imagefolder
from quality_tests.ssl.test_dino import shape_files, shape_images, tiny_config  # noqa: F401

pytestmark = pytest.mark.slow  # a Ray cluster takes 15-30 s to start, a Ray Train run 15-20 s more


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_ray_train_worker_trains_the_in_process_model_bit_for_bit(ray_cluster, shape_images, tmp_path):
    config = tiny_config()
    here = train_dino(shape_images, config)
    on_ray = train_dino_on_ray(ray_cluster.address, shape_images, config, workers=1, use_gpu=False,
                               storage=tmp_path / "ray_train")
    assert on_ray.steps == here.steps == 8
    assert _same_weights(on_ray.backbone, here.backbone)
    assert on_ray.loss_curve == here.loss_curve


def test_two_ray_train_workers_share_each_step_and_keep_one_teacher(ray_cluster, shape_images, tmp_path):
    config = tiny_config()
    one = train_dino(shape_images, config)
    # 64 images, 16 per worker: 2 steps per epoch instead of 4, each over 32 images (both workers').
    # train_dino_on_ray raises when the workers' teachers differ at the end.
    two = train_dino_on_ray(ray_cluster.address, shape_images, config, workers=2, use_gpu=False,
                            storage=tmp_path / "ray_train")
    assert two.steps == 4 and two.epochs_completed == pytest.approx(2.0)
    assert len(two.loss_curve) == 2 and all(np.isfinite(two.loss_curve))
    assert not _same_weights(two.backbone, one.backbone)  # another run: the global batch is twice as large
    assert two.images_per_s > 0 and two.n_samples_trained == 64


def test_the_service_trains_on_ray_train_when_asked_and_embeds_with_that_model(ray_cluster, tmp_path, monkeypatch):
    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"a": 20, "b": 20}}, seed=7)
    store = Store(tmp_path / "home")
    monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)
    monkeypatch.setenv(RAY_TRAIN_WORKERS_ENV, "2")
    said: list[str] = []
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        model = ensure_model(conn, store, ModelOptions(epochs=1, batch_size=8), progress=said.append)
    assert model.retrained and (store.home / model.row["checkpoint_path"]).is_file()
    assert any("Ray Train: 2 worker(s)" in line for line in said)
    # 40 images, 8 per worker: 2 steps of 16.
    assert model.row["epochs"] == pytest.approx(1.0)
    stats = embed_missing(store, store, model)
    assert (stats.n_embedded, stats.n_total) == (40, 40)
