"""The matrix datasets load what they claim, from the packages that ship them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from quality_lab import datasets
from quality_lab.datasets import DATASETS, DatasetUnavailable, is_colour, load_dataset


def _load_or_skip(name: str, cache_dir):
    try:
        return load_dataset(name, cache_dir)
    except DatasetUnavailable as err:
        pytest.skip(f"{name} not installed: {err}")


@pytest.mark.parametrize("name", ["mnist", "animal_mnist"])
def test_grayscale_sets(name, tmp_path):
    images, labels = _load_or_skip(name, tmp_path)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    assert len(np.unique(labels)) == 10 and len(images) == len(labels) >= 5000


def test_oxygen_icons_are_colour_64px_with_context_classes(tmp_path):
    images, labels = _load_or_skip("oxygen_icons", tmp_path)
    assert images.shape[1:] == (64, 64, 3) and images.dtype == np.uint8
    names, counts = np.unique(labels, return_counts=True)
    assert {"apps", "devices", "mimetypes", "places"} <= set(names)
    assert counts.min() >= datasets.OXYGEN_MIN_CLASS
    assert np.mean([is_colour(im) for im in images[:200]]) > 0.5
    # the cache returns the same arrays
    again, labels_again = load_dataset("oxygen_icons", tmp_path)
    assert np.array_equal(again, images) and np.array_equal(labels_again, labels)


def test_openclipart_colour_subset(tmp_path):
    if not datasets.OPENCLIPART_ROOT.is_dir():
        pytest.skip("openclipart-png not installed (apt-get install openclipart-png)")
    cache = datasets.default_cache_dir()  # decoding all 8k files takes ~1.5 min: reuse the cache
    images, labels = load_dataset("openclipart", cache)
    assert images.shape[1:] == (64, 64, 3) and len(images) >= 2000
    assert all(is_colour(im) for im in images[:300])
    assert not set(labels) & datasets.OPENCLIPART_EXCLUDED
    assert len(np.unique(labels)) >= 8


def test_missing_package_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailable, match="apt-get install"):
        datasets.load_oxygen_icons(tmp_path, root=tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("fashion_mnist")
    assert "fashion" not in " ".join(DATASETS) and "emoji" not in " ".join(DATASETS)


def test_fit_on_white_and_colour_test(tmp_path):
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((220, 20, 20, 255), (5, 5, 35, 15))
    path = tmp_path / "a.png"
    rgba.save(path)
    img = datasets._fit_on_white(path, 64)
    assert img.shape == (64, 64, 3)
    assert (img[0, 0] == 255).all()                 # transparent ground becomes white
    assert is_colour(img)
    gray = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert not is_colour(gray)


def test_foreign_pool_has_no_fashion_mnist():
    pool = datasets.foreign_photos()
    assert len(pool) >= 40 and all(im.ndim == 3 for im in pool)
