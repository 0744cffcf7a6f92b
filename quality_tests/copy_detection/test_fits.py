"""The warm-started copy descriptor kept between runs (`copy_detection.fits`) on real digits written to
PNG files and a real DINO model of them (`conftest.py`): a drop embeds only its new rows with the kept
network and reads the others back, and anything that makes the kept network stale (more growth than
the rule allows, another SSL model, another image size) fine-tunes a new one, with the reason."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from quality_assets.copy_detection import embed_copies, load_copy_descriptor
from quality_assets.copy_detection.fits import (
    MAX_GROWTH_FRACTION, backbone_digest, descriptor_settings, kept_descriptors,
)
from quality_assets.scores.pixel_classifier import key_digests

STEPS = 3   # the network's quality is not what these tests read: what is kept, embedded and retrained


class Loader:
    """The images at the asked positions, remembering what was asked."""

    def __init__(self, images: list[np.ndarray]):
        self.images, self.asked = images, []

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.asked.append(np.asarray(rows).copy())
        return np.stack([self.images[r] for r in rows])


def _keys(n: int, offset: int = 0) -> np.ndarray:
    return key_digests(np.array([f"sha-{offset + k}\x00img_{offset + k}.png" for k in range(n)], dtype=object))


@pytest.fixture(scope="module")
def first_fit(trained, ssl_checkpoint):
    images, _ = trained
    backbone, meta = ssl_checkpoint
    found = kept_descriptors(Loader(images[:150]), _keys(150), backbone, meta, device="cpu", steps=STEPS)
    return found


def test_a_first_run_fine_tunes_and_keeps_every_rows_descriptors(trained, ssl_checkpoint, first_fit):
    images, _ = trained
    backbone, _ = ssl_checkpoint
    assert first_fit.trained and first_fit.reason == "no earlier fit" and first_fit.n_embedded == 150
    fit = first_fit.fit
    assert fit.n_trained == 150 and fit.steps == STEPS and fit.side == 28
    assert fit.descriptors.dtype == np.float16 and fit.descriptors.shape == first_fit.descriptors.shape
    assert fit.settings == descriptor_settings(backbone, steps=STEPS)
    # What the run returns is what the kept network gives, at the precision it is stored at.
    again = embed_copies(load_copy_descriptor(fit.state), np.stack(images[:150]), device="cpu")
    assert np.allclose(first_fit.descriptors, again.astype(np.float16).astype(np.float32), atol=2e-3)


def test_a_drop_embeds_only_its_new_rows_with_the_kept_network(trained, ssl_checkpoint, first_fit):
    images, _ = trained
    backbone, meta = ssl_checkpoint
    # Rows in another order, 5 removed and 20 new: 25 of 150 changed (17% <= 20%).
    order = np.r_[np.arange(149, 4, -1), np.arange(150, 170)]   # old rows 149..5, then new 150..169
    keys = np.concatenate([_keys(150), _keys(20, offset=150)])[order]
    load = Loader([images[r] for r in order])
    found = kept_descriptors(load, keys, backbone, meta, previous=first_fit.fit, device="cpu", steps=STEPS)
    assert not found.trained and found.n_embedded == 20 and "20 new rows" in found.reason
    new = np.flatnonzero(order >= 150)
    assert [a.tolist() for a in load.asked] == [new.tolist()]            # only the new rows were read
    old = order < 150
    assert np.array_equal(found.descriptors[old], first_fit.descriptors[order[old]])
    direct = embed_copies(load_copy_descriptor(first_fit.fit.state), np.stack([images[r] for r in order[new]]),
                          device="cpu")
    assert np.allclose(found.descriptors[new], direct, atol=2e-3)
    # The fit grew by the new rows and keeps its network and its training base.
    assert found.fit.state is first_fit.fit.state and found.fit.n_trained == 150
    assert found.fit.keys.size == 170 and found.fit_changed
    # The same rows again: nothing to embed, nothing to store.
    same = kept_descriptors(Loader([images[r] for r in order]), keys, backbone, meta, previous=found.fit,
                            device="cpu", steps=STEPS)
    assert not same.trained and same.n_embedded == 0 and not same.fit_changed
    assert np.array_equal(same.descriptors, found.descriptors)


def test_more_growth_another_ssl_model_or_another_size_fine_tune_again(trained, ssl_checkpoint, first_fit):
    images, _ = trained
    backbone, meta = ssl_checkpoint
    grown = int(150 * MAX_GROWTH_FRACTION) + 1
    keys = np.concatenate([_keys(150), _keys(grown, offset=150)])
    found = kept_descriptors(Loader(images[:150 + grown]), keys, backbone, meta, previous=first_fit.fit,
                             device="cpu", steps=STEPS)
    assert found.trained and "changed by 21% > 20%" in found.reason and found.fit.n_trained == 150 + grown

    changed = copy.deepcopy(backbone)
    with torch.no_grad():
        changed.conv1.weight.add_(0.01)
    assert backbone_digest(changed) != backbone_digest(backbone)
    found = kept_descriptors(Loader(images[:150]), _keys(150), changed, meta, previous=first_fit.fit,
                             device="cpu", steps=STEPS)
    assert found.trained and found.reason == "the SSL model changed"

    bigger = [np.pad(im, 2) for im in images[:152]]   # 32 px images: the kept rows were embedded at 28
    found = kept_descriptors(Loader(bigger), np.concatenate([_keys(150), _keys(2, offset=150)]), backbone, meta,
                             previous=first_fit.fit, device="cpu", steps=STEPS)
    assert found.trained and found.reason == "the images' size changed" and found.fit.side == 32


def test_content_keys_must_be_unique(trained, ssl_checkpoint):
    images, _ = trained
    backbone, meta = ssl_checkpoint
    keys = _keys(4)
    keys[3] = keys[0]
    with pytest.raises(ValueError, match="content keys must be unique"):
        kept_descriptors(Loader(images[:4]), keys, backbone, meta, device="cpu", steps=STEPS)
    with pytest.raises(ValueError, match="max_growth_fraction"):
        kept_descriptors(Loader(images[:4]), _keys(4), backbone, meta, max_growth_fraction=-1, device="cpu")
