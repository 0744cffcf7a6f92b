"""Exporting the cleaned split as a dataset, and opening that dataset again with the scanner."""

from __future__ import annotations

import json
import os
import sys
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from quality_assets.dataset_export import IMAGEFOLDER_DIR, RECORD_NAME, NoCleanedSplit, export_dataset
from quality_assets.scan import scan_drop
from quality_assets.store import Store


def test_imagefolder_export_reopens_as_a_dataset(small_home: dict[str, Any], tmp_path: Path) -> None:
    store: Store = small_home["store"]
    out = tmp_path / "dataset"
    record = export_dataset(store, out)
    assert record.split_version == small_home["split_version"] and record.n_samples == small_home["n_kept"]
    assert record.n_relabelled == 1 and record.link_mode == "hardlink"
    saved = json.loads((out / RECORD_NAME).read_text())
    assert saved["split_version"] == small_home["split_version"] and saved["score_version"] == "score-new-0001"

    root = out / IMAGEFOLDER_DIR
    scanned = scan_drop(root, root, "export")
    assert scanned.rejected.empty, scanned.rejected.to_dict("records")
    assert scanned.layout == "imagefolder" and len(scanned.accepted) == small_home["n_kept"]
    assert sum(n for labels in record.counts.values() for n in labels.values()) == record.n_samples

    with store.connect(read_only=True) as conn:
        paths = dict(conn.execute("SELECT sample_id, path FROM raw_manifest").fetchall())
    exported_paths = set(scanned.accepted.path)
    assert paths[small_home["dropped"]] not in exported_paths  # same split/label/name if it had stayed
    split, old_label, name = paths[small_home["relabelled"]].split("/")
    assert f"{split}/{small_home['relabelled_to']}/{name}" in exported_paths
    assert paths[small_home["relabelled"]] not in exported_paths
    relabelled = f"{split}/{small_home['relabelled_to']}/{name}"
    # Hard links: the same bytes, no copy on disk.
    original = small_home["data"] / paths[small_home["relabelled"]]
    assert os.path.samefile(original, root / relabelled)

    with pytest.raises(FileExistsError, match="not empty"):
        export_dataset(store, out)
    again = export_dataset(store, out, link_mode="copy", overwrite=True)
    assert again.n_samples == record.n_samples and not os.path.samefile(original, root / relabelled)
    foreign = tmp_path / "somebody_elses"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a dataset export"):
        export_dataset(store, foreign, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_manifest_exports_carry_corrected_labels(small_home: dict[str, Any], tmp_path: Path) -> None:
    store = small_home["store"]
    export_dataset(store, tmp_path / "csv", "csv")
    export_dataset(store, tmp_path / "pq", "parquet")
    csv = pd.read_csv(tmp_path / "csv" / "dataset.csv")
    parquet = pd.read_parquet(tmp_path / "pq" / "dataset.parquet")
    for frame in (csv, parquet):
        assert len(frame) == small_home["n_kept"] and small_home["dropped"] not in set(frame.sample_id)
        row = frame[frame.sample_id == small_home["relabelled"]].iloc[0]
        assert row.label == small_home["relabelled_to"] and row.original_label != row.label
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in frame.path)


def test_no_cleaned_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoCleanedSplit, match="no quality database"):
        export_dataset(Store(tmp_path / "none"), tmp_path / "out")
    with pytest.raises(ValueError, match="unknown dataset format"):
        export_dataset(Store(tmp_path / "none"), tmp_path / "out", "zip")


def test_cli_export_dataset(small_home: dict[str, Any], tmp_path: Path) -> None:
    qaudit = str(Path(sys.executable).with_name("qaudit"))
    home = str(small_home["store"].home)
    done = subprocess.run([qaudit, "export", "--home", home, "--out", str(tmp_path / "ds"), "--dataset", "imagefolder"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{small_home['n_kept']} samples (1 relabelled)" in done.stdout and small_home["split_version"] in done.stdout
    assert (tmp_path / "ds" / RECORD_NAME).is_file()
    again = subprocess.run([qaudit, "export", "--home", home, "--out", str(tmp_path / "ds"), "--dataset", "csv"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr


def _digits_as_train_images(small_home: dict[str, Any]) -> None:
    """Real pictures in the train files: MNIST digits (the store's rows stay as they are)."""
    from PIL import Image

    from quality_lab.demo_data import load_mnist_5k

    images, _ = load_mnist_5k()
    for i, path in enumerate(sorted((small_home["data"] / "train").rglob("*.png"))):
        Image.fromarray(images[i * 37]).save(path)


def _drop_six_train_dogs(store: Store) -> None:
    """The cleaned split drops 6 of the 10 train dogs: train is cat 10, dog 4."""
    with store.connect() as conn:
        conn.execute("UPDATE cleaned_splits SET action = 'drop' WHERE path IN "
                     "(SELECT path FROM cleaned_splits WHERE path LIKE 'train/dog/%' ORDER BY path LIMIT 6)")


def test_balanced_export_fills_train_classes_with_recorded_deterministic_copies(
        small_home: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    from quality_assets.dataset_export import AUGMENTATIONS_NAME, Balance

    store: Store = small_home["store"]
    _digits_as_train_images(small_home)
    _drop_six_train_dogs(store)
    out = tmp_path / "balanced"
    record = export_dataset(store, out, balance=Balance(policy="randaugment", seed=7))
    assert record.counts["train"] == {"cat": 10, "dog": 10} and record.n_augmented == 6
    assert record.counts["test"] == {"cat": 1, "dog": 3}          # eval splits are never balanced
    assert record.balance["target"] == {"train": 10} and record.balance["policy"] == "randaugment"
    made = pd.read_csv(out / AUGMENTATIONS_NAME)
    assert len(made) == 6 and set(made.label) == {"dog"} and (made.policy == "randaugment").all()
    assert made.source_export_path.nunique() == 4                 # round-robin over the four dogs
    root = out / IMAGEFOLDER_DIR
    for row in made.itertuples():
        with Image.open(root / row.export_path) as copy, Image.open(root / row.source_export_path) as source:
            assert copy.size == source.size and copy.mode == source.mode   # a valid picture like its source
    changed = sum(
        (root / r.export_path).read_bytes() != (root / r.source_export_path).read_bytes() for r in made.itertuples())
    assert changed >= 5
    scanned = scan_drop(root, root, "balanced")
    assert scanned.rejected.empty and (scanned.accepted.split == "train").sum() == 20

    again = export_dataset(store, tmp_path / "again", balance=Balance(policy="randaugment", seed=7))
    other = export_dataset(store, tmp_path / "other", balance=Balance(policy="randaugment", seed=8))
    same = [(root / p).read_bytes() == (tmp_path / "again" / IMAGEFOLDER_DIR / p).read_bytes() for p in made.export_path]
    differ = [(root / p).read_bytes() != (tmp_path / "other" / IMAGEFOLDER_DIR / p).read_bytes() for p in made.export_path]
    assert all(same) and any(differ) and again.n_augmented == other.n_augmented == 6

    with pytest.raises(ValueError, match="imagefolder"):
        export_dataset(store, tmp_path / "csv", "csv", balance=Balance())
    with pytest.raises(ValueError, match="policy"):
        Balance(policy="mixup")


def _qaudit_export(home: str, *args: str) -> subprocess.CompletedProcess:
    qaudit = str(Path(sys.executable).with_name("qaudit"))
    return subprocess.run([qaudit, "export", "--home", home, *args], capture_output=True, text=True, timeout=300)


def test_cli_balanced_export_says_what_it_added_and_refuses_bad_flags(
        small_home: dict[str, Any], tmp_path: Path) -> None:
    from quality_assets.dataset_export import AUGMENTATIONS_NAME, Balance

    store: Store = small_home["store"]
    home = str(store.home)
    _digits_as_train_images(small_home)
    _drop_six_train_dogs(store)
    out = tmp_path / "balanced"
    done = _qaudit_export(home, "--out", str(out), "--dataset", "imagefolder", "--balance", "trivialaugment",
                          "--balance-seed", "7", "--balance-target", "12")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "balanced train to 12 per class with trivialaugment (seed 7): 10 augmented copies added" in done.stdout
    assert "train/cat: +2" in done.stdout and "train/dog: +8" in done.stdout
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["counts"]["train"] == {"cat": 12, "dog": 12} and record["n_augmented"] == 10
    made = pd.read_csv(out / AUGMENTATIONS_NAME)
    assert (made.policy == "trivialaugment").all() and (made.seed == 7).all()
    # The flags reach the library unchanged: the same files as its own export with these settings.
    library = export_dataset(store, tmp_path / "library", balance=Balance("trivialaugment", seed=7, target=12))
    assert library.n_augmented == 10
    assert all((out / IMAGEFOLDER_DIR / p).read_bytes() == (tmp_path / "library" / IMAGEFOLDER_DIR / p).read_bytes()
               for p in made.export_path)

    refused = {
        "csv": (["--dataset", "csv", "--balance", "randaugment"], "--balance needs --dataset imagefolder"),
        "views": (["--balance", "randaugment"], "--balance needs --dataset imagefolder"),
        "negative": (["--dataset", "imagefolder", "--balance", "augmix", "--balance-target", "-3"],
                     "--balance-target must be 0"),
        "orphan": (["--dataset", "imagefolder", "--balance-seed", "3"], "need --balance POLICY"),
        "unknown": (["--dataset", "imagefolder", "--balance", "mixup"], "invalid choice: 'mixup'"),
    }
    for name, (flags, message) in refused.items():
        result = _qaudit_export(home, "--out", str(tmp_path / name), *flags)
        assert result.returncode == 2 and message in result.stderr, (name, result.stderr[-1000:])
        assert not (tmp_path / name).exists(), name
