"""Tests for the offline demo dataset: real PNG trees written to tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from quality_lab.demo_data import (
    DEMO_RATES,
    GROUND_TRUTH_CSV_COLUMNS,
    build_demo_dataset,
    load_animal_mnist,
    load_mnist_5k,
    load_offtopic_pool,
)

N = 300


def _build(root: Path, seed: int):
    return build_demo_dataset(root / "data", root / "ground_truth.csv", seed=seed, n_samples=N)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("demo"), seed=0)


@pytest.fixture(scope="module")
def gt(demo) -> pd.DataFrame:
    return pd.read_csv(demo.ground_truth_path, dtype=str, keep_default_na=False)


def _files(data_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(data_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file()
    }


def _load(data_dir: Path, rel: str) -> np.ndarray:
    with Image.open(data_dir / rel) as im:
        return np.asarray(im)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def test_sources_load() -> None:
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert sorted(set(labels)) == [str(d) for d in range(10)]
    assert (pd.Series(labels).value_counts() == 500).all()
    pool = load_offtopic_pool()
    assert len(pool) == 80
    assert sum(p.ndim == 3 for p in pool) == 60


def test_tree_structure_and_counts(demo) -> None:
    files = sorted(p for p in demo.data_dir.rglob("*") if p.is_file())
    assert len(files) == demo.n_images
    expected = DEMO_RATES.counts(N)
    assert demo.counts == expected
    assert demo.n_images == N + sum(expected[k] for k in ("XR", "AUG", "ARTE", "LEAK"))
    assert sum(demo.n_per_split.values()) == demo.n_images
    names = set()
    for p in files:
        split, label, name = p.relative_to(demo.data_dir).parts
        assert split in {"train", "test"}
        assert label in {str(d) for d in range(10)}
        assert re.fullmatch(r"img_\d{6}\.png", name)
        names.add(name)
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "L" and im.size == (28, 28)
    assert len(names) == len(files)  # names unique across the whole tree


def test_ground_truth_file(demo, gt) -> None:
    assert tuple(gt.columns) == GROUND_TRUTH_CSV_COLUMNS
    assert not demo.ground_truth_path.is_relative_to(demo.data_dir)
    assert gt["kind"].value_counts().to_dict() == {k: v for k, v in demo.counts.items() if v}
    for rel in gt["path"]:
        assert (demo.data_dir / rel).is_file()
    copies = gt["issue_type"].isin(["near_duplicate", "leakage"])
    assert (gt.loc[~copies, "partner_path"] == "").all()
    for rel in gt.loc[copies, "partner_path"]:
        assert (demo.data_dir / rel).is_file()
    # Every file's label folder is the label the dataset gives it.
    assert (gt["path"].str.split("/").str[1] == gt["given_label"]).all()


def test_no_sample_carries_two_issues(gt) -> None:
    assert gt["path"].is_unique
    partners = set(gt["partner_path"]) - {""}
    assert len(partners) == (gt["partner_path"] != "").sum()
    assert not partners & set(gt["path"])


def test_same_seed_same_bytes_other_seed_differs(demo, tmp_path) -> None:
    again = _build(tmp_path / "a", seed=0)
    assert _files(again.data_dir) == _files(demo.data_dir)
    assert again.ground_truth_path.read_bytes() == demo.ground_truth_path.read_bytes()
    other = _build(tmp_path / "b", seed=1)
    assert _files(other.data_dir) != _files(demo.data_dir)
    assert other.ground_truth_path.read_bytes() != demo.ground_truth_path.read_bytes()


def test_near_duplicates_close_in_pixels(demo, gt) -> None:
    dups = gt[gt["issue_type"] == "near_duplicate"]
    assert set(dups["kind"]) == {"AUG", "ARTE"}
    clean = sorted(set(_files(demo.data_dir)) - set(gt["path"]) - set(gt["partner_path"]))
    rng = np.random.default_rng(0)
    for row in dups.itertuples():
        copy_bytes = (demo.data_dir / row.path).read_bytes()
        assert copy_bytes != (demo.data_dir / row.partner_path).read_bytes()
        copy, src = _load(demo.data_dir, row.path), _load(demo.data_dir, row.partner_path)
        c = max(_corr(copy, src), _corr(copy, src[:, ::-1]))  # AUG may mirror
        unrelated = [_corr(copy, _load(demo.data_dir, p)) for p in rng.choice(clean, size=30, replace=False)]
        assert c > 0.45, (row.kind, c)
        assert c > np.median(unrelated) + 0.1, (row.kind, c, np.median(unrelated))
        assert row.given_label == row.true_label
        assert row.path.split("/")[:2] == row.partner_path.split("/")[:2]  # same split and label


def test_label_errors_sit_under_given_label(gt) -> None:
    errs = gt[gt["issue_type"] == "label_error"]
    assert set(errs["kind"]) == {"LBL", "LBLC"}
    assert (errs["given_label"] != errs["true_label"]).all()
    assert (errs["true_label"].isin([str(d) for d in range(10)])).all()
    assert (errs["path"].str.split("/").str[1] == errs["given_label"]).all()


def test_leakage_copies_in_test_sources_in_train(demo, gt) -> None:
    leaks = gt[gt["issue_type"] == "leakage"]
    assert len(leaks) == DEMO_RATES.counts(N)["LEAK"]
    assert leaks["path"].str.startswith("test/").all()
    assert leaks["partner_path"].str.startswith("train/").all()
    for row in leaks.itertuples():
        assert _corr(_load(demo.data_dir, row.path), _load(demo.data_dir, row.partner_path)) > 0.8


def test_off_topic_images_are_not_digits(demo, gt) -> None:
    mnist, _ = load_mnist_5k()
    flat = mnist.reshape(len(mnist), -1).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    off = gt[gt["issue_type"] == "off_topic"]
    assert set(off["kind"]) == {"XR", "BLUR"}
    assert (off["true_label"] == "").all()
    for row in off.itertuples():
        img = _load(demo.data_dir, row.path)
        assert not (mnist == img).all(axis=(1, 2)).any()
        if row.kind == "XR":
            v = img.astype(np.float64).ravel() - img.mean()
            assert float((flat @ (v / (np.linalg.norm(v) + 1e-12))).max()) < 0.9
        else:  # BLUR: strokes are gone, only a faint smudge is left
            assert img.max() < 128


def test_refuses_bad_paths(tmp_path) -> None:
    with pytest.raises(ValueError, match="outside"):
        build_demo_dataset(tmp_path / "d", tmp_path / "d" / "gt.csv", n_samples=50)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_demo_dataset(tmp_path / "full", tmp_path / "gt.csv", n_samples=50)
    info = build_demo_dataset(tmp_path / "full", tmp_path / "gt.csv", n_samples=50, overwrite=True)
    assert not (tmp_path / "full" / "keep.txt").exists()
    assert len([p for p in info.data_dir.rglob("*.png")]) == info.n_images


def _write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def test_animal_mnist_reader_on_package_layout(tmp_path) -> None:
    folder = tmp_path / "animal_mnist" / "data" / "Animal_MNIST"
    images = np.random.default_rng(0).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    _write_pickle(folder / "animal_data_version_3.gz", images)
    _write_pickle(folder / "animal_label_version_3.gz", np.arange(12, dtype=np.int64) % 10)
    got, labels = load_animal_mnist(tmp_path)  # the folder that contains the package also works
    assert np.array_equal(got, images)
    assert labels[0] == "bear" and labels[9] == "zebra" and labels[10] == "bear"
    # Only plain arrays may be unpickled: a pickle that calls a function is refused.
    _write_pickle(folder / "animal_label_version_3.gz", os.getcwd)
    with pytest.raises(pickle.UnpicklingError):
        load_animal_mnist(tmp_path / "animal_mnist")


def test_animal_mnist_missing_files_say_how_to_install(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="pip install --no-deps animal-mnist"):
        load_animal_mnist(tmp_path)


_ANIMAL_DIR = os.environ.get("ANIMAL_MNIST_DIR")


@pytest.mark.skipif(
    _ANIMAL_DIR is None and importlib.util.find_spec("animal_mnist") is None,
    reason="animal-mnist not installed (pip install --no-deps animal-mnist==0.4, or set ANIMAL_MNIST_DIR)",
)
def test_animal_mnist_real_package() -> None:
    images, labels = load_animal_mnist(Path(_ANIMAL_DIR) if _ANIMAL_DIR else None)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert (pd.Series(labels).value_counts() == 1000).all()
    assert labels.dtype.kind == "U" and set(labels) >= {"bear", "zebra"}
