"""scan_drop on real trees: ImageFolder and CSV layouts, and every rejection reason."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from quality_assets.imaging import INSPECT_KEYS
from quality_assets.scan import (
    ACCEPTED_COLUMNS,
    DROP_MARKER,
    EVAL_SPLITS,
    REJECTED_COLUMNS,
    SPLITS,
    ScanResult,
    scan_drop,
)
from quality_tests.imagefolders import (
    make_csv_drop,
    make_imagefolder,
    make_messy_imagefolder,
    mark_complete,
    write_csv,
    write_escaping_symlink,
    write_png,
    write_png_bomb,
)


def _reasons(result: ScanResult) -> dict[str, str]:
    paths = result.rejected.path.tolist()
    assert len(paths) == len(set(paths)), "a path must be rejected at most once"
    return dict(zip(result.rejected.path, result.rejected.reason))


def _all_files(root: Path) -> set[str]:
    """Every file below root but the completion marker (links and hidden files included)."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in files:
            if name == DROP_MARKER:
                continue
            found.add((Path(directory) / name).relative_to(root).as_posix())
    return found


def test_constants() -> None:
    assert SPLITS == ("train", "val", "test", "trusted")
    assert EVAL_SPLITS == ("val", "test")
    assert DROP_MARKER == "_DROP_COMPLETE"


def test_good_imagefolder_is_fully_accepted(tmp_path: Path) -> None:
    written = make_imagefolder(tmp_path, marker=True)
    result = scan_drop(tmp_path, tmp_path, "drop-1")

    assert result.layout == "imagefolder"
    assert result.rejected.empty and list(result.rejected.columns) == list(REJECTED_COLUMNS)
    assert list(result.accepted.columns) == list(ACCEPTED_COLUMNS)
    assert list(ACCEPTED_COLUMNS[6:]) == list(INSPECT_KEYS)
    accepted = result.accepted
    assert accepted.path.tolist() == sorted(written)
    assert (accepted.drop_id == "drop-1").all()
    first = accepted.iloc[0]
    assert first.path == "test/cat/cat_000.png"
    assert (first.split, first.label, first.labels) == ("test", "cat", ["cat"])
    root = os.path.realpath(tmp_path)
    expected_id = hashlib.sha256(f"{first.file_sha256}\0{root}\0{first.path}".encode()).hexdigest()[:20]
    assert first.sample_id == expected_id
    assert accepted.sample_id.is_unique and accepted.pixel_sha256.is_unique
    assert accepted.phash.dtype == "int64" and accepted.width.dtype == "int64"
    assert set(accepted.split) == {"train", "val", "test"}


def test_sample_id_is_stable_and_tracks_content(tmp_path: Path) -> None:
    make_imagefolder(tmp_path)
    first = scan_drop(tmp_path, tmp_path, "d")
    second = scan_drop(tmp_path, tmp_path, "d")
    assert first.accepted.sample_id.tolist() == second.accepted.sample_id.tolist()

    write_png(tmp_path / "train/cat/cat_000.png", seed=4242)  # same path, new bytes
    third = scan_drop(tmp_path, tmp_path, "d")
    changed = third.accepted.path == "train/cat/cat_000.png"
    assert (third.accepted.sample_id[changed] != first.accepted.sample_id[changed]).all()
    assert (third.accepted.sample_id[~changed] == first.accepted.sample_id[~changed]).all()


def test_identical_bytes_at_two_paths_are_two_samples(tmp_path: Path) -> None:
    make_imagefolder(tmp_path)
    source = tmp_path / "train/cat/cat_000.png"
    (tmp_path / "train/dog/copy.png").write_bytes(source.read_bytes())
    accepted = scan_drop(tmp_path, tmp_path, "d").accepted
    copies = accepted[accepted.file_sha256 == accepted.file_sha256[accepted.path == "train/cat/cat_000.png"].iloc[0]]
    assert len(copies) == 2 and copies.sample_id.is_unique


def test_drop_in_subfolder_stores_paths_relative_to_data_root(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "drops" / "2024-01", {"train": {"x": 2}})
    for drop_dir in (tmp_path / "drops" / "2024-01", Path("drops/2024-01")):
        result = scan_drop(tmp_path, drop_dir, "jan")
        assert result.accepted.path.tolist() == ["drops/2024-01/train/x/x_000.png", "drops/2024-01/train/x/x_001.png"]
        assert result.accepted.label.tolist() == ["x", "x"]


def test_drop_dir_outside_root_is_an_argument_error(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    make_imagefolder(tmp_path / "elsewhere", {"train": {"x": 1}})
    with pytest.raises(ValueError):
        scan_drop(tmp_path / "root", tmp_path / "elsewhere", "d")


def test_messy_imagefolder_rejects_each_bad_file_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "root"
    expected = make_messy_imagefolder(root, tmp_path / "outside")
    good = make_imagefolder(tmp_path / "reference")  # same good files as make_messy_imagefolder writes
    result = scan_drop(root, root, "messy")

    assert _reasons(result) == expected
    assert result.accepted.path.tolist() == good
    # Nothing dropped, nothing counted twice; hidden files are recorded, the marker is not a sample.
    assert set(result.accepted.path) | set(result.rejected.path) == _all_files(root)
    assert not set(result.accepted.path) & set(result.rejected.path)
    assert result.rejected.path.tolist() == sorted(result.rejected.path)
    assert result.rejected.detail.str.len().min() > 0


def test_limits_are_passed_through(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, {"train": {"x": 2}})
    write_png(tmp_path / "train/x/big.png", 7, (80, 80))
    by_bytes = _reasons(scan_drop(tmp_path, tmp_path, "d", max_bytes=1500))
    assert by_bytes["train/x/big.png"] == "file_too_large"
    by_pixels = _reasons(scan_drop(tmp_path, tmp_path, "d", max_pixels=80 * 80 - 1))
    assert by_pixels == {"train/x/big.png": "decompression_bomb"}


def test_symlinks_inside_root_are_followed_outside_never(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_imagefolder(root, {"train": {"x": 1}})
    os.symlink(root / "train/x/x_000.png", root / "train/x/alias.png")
    os.symlink(tmp_path / "outside", root / "train/linked_dir")
    write_png(tmp_path / "outside" / "secret.png", 5)
    write_escaping_symlink(root / "train/x/escape.png", tmp_path / "outside")
    os.symlink(root / "train/x/gone.png", root / "train/x/broken.png")

    result = scan_drop(root, root, "d")
    assert result.accepted.path.tolist() == ["train/x/alias.png", "train/x/x_000.png"]
    assert _reasons(result) == {
        "train/linked_dir": "path_escapes_root",
        "train/x/broken.png": "missing_file",
        "train/x/escape.png": "path_escapes_root",
    }


def test_special_file_is_not_a_file(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, {"train": {"x": 1}})
    os.mkfifo(tmp_path / "train/x/pipe.png")  # opening it would block: it must only be stat'ed
    assert _reasons(scan_drop(tmp_path, tmp_path, "d")) == {"train/x/pipe.png": "not_a_file"}


def test_unknown_split_is_case_insensitive_for_known_ones(tmp_path: Path) -> None:
    write_png(tmp_path / "Train/x/a.png", 1)
    write_png(tmp_path / "holdout/x/b.png", 2)
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.accepted.split.tolist() == ["train"]
    assert _reasons(result) == {"holdout/x/b.png": "unknown_split"}


def test_files_below_the_label_folder_take_the_first_folder_as_label(tmp_path: Path) -> None:
    write_png(tmp_path / "train/cat/2024/jan/a.png", 1)
    accepted = scan_drop(tmp_path, tmp_path, "d").accepted
    assert accepted[["path", "label"]].values.tolist() == [["train/cat/2024/jan/a.png", "cat"]]


def test_csv_drop_is_accepted(tmp_path: Path) -> None:
    rows = make_csv_drop(tmp_path / "d1")
    mark_complete(tmp_path / "d1")
    result = scan_drop(tmp_path, tmp_path / "d1", "d1")
    assert result.layout == "csv"
    assert result.rejected.empty
    assert result.accepted.path.tolist() == sorted(f"d1/{path}" for path, _, _ in rows)
    by_path = result.accepted.set_index("path")
    assert by_path.loc["d1/images/b0.png", "split"] == "val"
    assert by_path.loc["d1/images/a1.png", "label"] == "dog"


def test_multi_label_csv_sorts_and_joins_labels(tmp_path: Path) -> None:
    make_csv_drop(tmp_path, [("a.png", "dog| cat", "train"), ("b.png", "bird", "val")], multi_label=True)
    accepted = scan_drop(tmp_path, tmp_path, "d").accepted.set_index("path")
    assert accepted.loc["a.png", "label"] == "cat|dog"
    assert accepted.loc["a.png", "labels"] == ["cat", "dog"]
    assert accepted.loc["b.png", "labels"] == ["bird"]


def test_single_csv_with_another_name_is_the_manifest(tmp_path: Path) -> None:
    make_csv_drop(tmp_path, [("a.png", "x", "train")], manifest_name="labels.csv")
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.layout == "csv" and result.accepted.path.tolist() == ["a.png"]


def test_csv_bad_rows_are_each_rejected_with_their_reason(tmp_path: Path) -> None:
    root = tmp_path / "root"
    drop = root / "drop"
    write_png(root / "sibling.png", 11)            # inside the root, but reached through '..'
    write_png(tmp_path / "outside.png", 12)         # outside the root entirely
    write_escaping_symlink(drop / "link.png", tmp_path / "outside_dir")
    (drop / "folder.png").mkdir(parents=True)
    for name, seed in [("ok.png", 1), ("dup.png", 2), ("weird.png", 3), ("nolabel.png", 4),
                       ("unlabelled_val.png", 5), ("short.png", 6), ("unlisted.png", 7)]:
        write_png(drop / name, seed)
    write_csv(drop / "manifest.csv", ["path", "label", "split"], [
        ("ok.png", "x", "train"),
        ("dup.png", "x", "train"),
        ("./dup.png", "y", "train"),
        ("weird.png", "x", "holdout"),
        ("nolabel.png", "", "train"),
        ("unlabelled_val.png", "", "val"),
        ("../sibling.png", "x", "train"),
        ("../../outside.png", "x", "train"),
        (str(tmp_path / "outside.png"), "x", "train"),
        ("link.png", "x", "train"),
        ("missing.png", "x", "train"),
        ("folder.png", "x", "train"),
        ("short.png", "x"),
    ])
    mark_complete(drop)

    result = scan_drop(root, drop, "drop")
    assert result.layout == "csv"
    assert result.accepted.path.tolist() == ["drop/dup.png", "drop/ok.png", "drop/unlabelled_val.png"]
    unlabelled = result.accepted.set_index("path").loc["drop/unlabelled_val.png"]
    assert unlabelled.label is None and unlabelled.labels == [] and unlabelled.split == "val"
    assert _reasons(result) == {
        "drop/weird.png": "unknown_split",
        "drop/nolabel.png": "missing_label",
        "../sibling.png": "path_escapes_root",
        "../../outside.png": "path_escapes_root",
        str(tmp_path / "outside.png"): "path_escapes_root",
        "drop/link.png": "path_escapes_root",
        "drop/missing.png": "missing_file",
        "drop/folder.png": "not_a_file",
        "drop/short.png": "bad_csv_row",
        "drop/unlisted.png": "not_in_manifest",
    } | {"drop/dup.png": "duplicate_path"}
    dup_rows = result.rejected[result.rejected.reason == "duplicate_path"]
    assert dup_rows.detail.str.contains("line 4").all()


def test_trusted_split_is_accepted_and_must_be_labelled(tmp_path: Path) -> None:
    for name, seed in [("book.png", 1), ("unlabelled_book.png", 2), ("other.png", 3)]:
        write_png(tmp_path / name, seed)
    write_csv(tmp_path / "manifest.csv", ["path", "label", "split"], [
        ("book.png", "x", "Trusted"), ("unlabelled_book.png", "", "trusted"), ("other.png", "x", "gold")])
    mark_complete(tmp_path)
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.accepted.path.tolist() == ["book.png"]
    assert result.accepted.split.tolist() == ["trusted"]
    assert _reasons(result) == {"unlabelled_book.png": "missing_label", "other.png": "unknown_split"}
    assert "trusted" in result.rejected.set_index("path").loc["other.png", "detail"]

    folder = tmp_path / "folder"
    make_imagefolder(folder, {"train": {"a": 2}, "trusted": {"a": 1}}, marker=True)
    tree = scan_drop(folder, folder, "f")
    assert sorted(tree.accepted.split) == ["train", "train", "trusted"] and tree.rejected.empty


def test_csv_missing_a_column_is_one_bad_csv_row(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1)
    write_png(tmp_path / "b.png", 2)
    write_csv(tmp_path / "manifest.csv", ["path", "label"], [("a.png", "x"), ("b.png", "y")])
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.layout == "csv" and result.accepted.empty
    bad = result.rejected[result.rejected.reason == "bad_csv"]
    assert bad.path.tolist() == ["manifest.csv"]
    assert "split" in bad.detail.iloc[0]
    # The images it should have listed are still accounted for.
    assert _reasons(result) == {"manifest.csv": "bad_csv", "a.png": "not_in_manifest", "b.png": "not_in_manifest"}


def test_unreadable_csv_is_bad_csv(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_bytes(b"path,label,split\n\xff\xfe\x00bad\n")
    result = scan_drop(tmp_path, tmp_path, "d")
    assert _reasons(result) == {"manifest.csv": "bad_csv"}
    assert "save it as UTF-8" in result.rejected.detail.iloc[0]


def test_class_folders_without_split_folders_are_read_as_train(tmp_path: Path) -> None:
    """torchvision's ImageFolder layout, `<label>/<file>`: no top folder names a split, so each is a
    label and every image is train; a file at the root still has no label. One split folder among
    them makes it a split tree, where the class folders are unknown splits."""
    write_png(tmp_path / "classes" / "cat" / "a.png", 1)
    write_png(tmp_path / "classes" / "dog" / "2024" / "b.png", 2)
    write_png(tmp_path / "classes" / "loose.png", 3)
    result = scan_drop(tmp_path / "classes", tmp_path / "classes", "c")
    assert result.layout == "classfolders"
    assert result.accepted[["path", "label", "split"]].values.tolist() == [
        ["cat/a.png", "cat", "train"], ["dog/2024/b.png", "dog", "train"]]
    assert _reasons(result) == {"loose.png": "unexpected_location"}
    assert "<label>/<file>" in result.rejected.detail.iloc[0]
    # A folder of drops (`<drop>/<split>/<label>/<file>`) is not a class-folder tree.
    write_png(tmp_path / "drops" / "d2" / "train" / "dog" / "d.png", 5)
    drops = scan_drop(tmp_path / "drops", tmp_path / "drops", "d")
    assert drops.layout == "imagefolder" and _reasons(drops) == {"d2/train/dog/d.png": "unknown_split"}
    write_png(tmp_path / "classes" / "valid" / "cat" / "c.png", 4)
    mixed = scan_drop(tmp_path / "classes", tmp_path / "classes", "c")
    assert mixed.layout == "imagefolder"
    assert mixed.accepted[["path", "split"]].values.tolist() == [["valid/cat/c.png", "val"]]
    assert _reasons(mixed)["cat/a.png"] == "unknown_split"


def test_the_split_names_exporters_use_are_read_as_their_splits(tmp_path: Path) -> None:
    """Roboflow exports `train/valid/test`, Hugging Face `validation`: each is the split it names,
    in folder trees and in CSVs, and the path keeps the folder's own name."""
    for folder in ("training", "valid", "validation", "dev", "Testing"):
        write_png(tmp_path / "tree" / folder / "cat" / "a.png", hash(folder) % 1000)
    write_png(tmp_path / "tree" / "holdout" / "cat" / "b.png", 7)
    tree = scan_drop(tmp_path / "tree", tmp_path / "tree", "t")
    by_path = dict(zip(tree.accepted.path, tree.accepted.split))
    assert by_path == {"training/cat/a.png": "train", "valid/cat/a.png": "val", "validation/cat/a.png": "val",
                       "dev/cat/a.png": "val", "Testing/cat/a.png": "test"}
    [detail] = tree.rejected.detail.tolist()
    assert "split folder 'holdout' is not one of train, val, test, trusted (or training, valid" in detail
    make_csv_drop(tmp_path / "csv", [("a.png", "x", "Validation"), ("b.png", "y", "training")])
    listed = scan_drop(tmp_path / "csv", tmp_path / "csv", "c").accepted
    assert dict(zip(listed.path, listed.split)) == {"a.png": "val", "b.png": "train"}


def test_spreadsheet_exports_with_semicolons_tabs_or_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    """Spreadsheets write `;` where the comma is the decimal mark, tabs for "text", and a UTF-8 BOM;
    each is read by its header. A label holding a comma or a semicolon stays whole."""
    for name, delimiter, bom in (("semicolon", ";", ""), ("tab", "\t", ""), ("bom", ",", "\ufeff")):
        root = tmp_path / name
        write_png(root / "a.png", 1)
        write_png(root / "b.png", 2)
        other = ";" if delimiter == "," else ","
        lines = [delimiter.join(["Path", "Label", "Split"]), delimiter.join(["a.png", f"x{other}y", "train"]),
                 delimiter.join(["b.png", "z", "TEST"])]
        (root / "manifest.csv").write_text(bom + "\r\n".join(lines) + "\r\n", encoding="utf-8", newline="")
        result = scan_drop(root, root, name)
        assert result.rejected.empty, (name, result.rejected)
        assert result.accepted[["path", "label", "split"]].values.tolist() == [
            ["a.png", f"x{other}y", "train"], ["b.png", "z", "test"]], name


def test_csv_listing_bad_image_files_rejects_them(tmp_path: Path) -> None:
    write_png_bomb(tmp_path / "bomb.png")
    (tmp_path / "empty.png").write_bytes(b"")
    make_csv_drop(tmp_path, [("bomb.png", "x", "train"), ("empty.png", "x", "test"), ("ok.png", "x", "test")])
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.accepted.path.tolist() == ["ok.png"]
    assert _reasons(result) == {"bomb.png": "decompression_bomb", "empty.png": "empty_file"}


def test_two_csvs_without_manifest_name_mean_imagefolder(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, {"train": {"x": 1}})
    write_csv(tmp_path / "a.csv", ["path"], [])
    write_csv(tmp_path / "b.csv", ["path"], [])
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.layout == "imagefolder"
    assert _reasons(result) == {"a.csv": "unexpected_location", "b.csv": "unexpected_location"}


def test_empty_drop_gives_empty_frames_with_columns(tmp_path: Path) -> None:
    mark_complete(tmp_path)
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.accepted.empty and result.rejected.empty
    assert list(result.accepted.columns) == list(ACCEPTED_COLUMNS)


def test_process_pool_gives_the_same_result_and_reports_progress(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_messy_imagefolder(root, tmp_path / "outside")
    calls: list[tuple[int, int]] = []
    serial = scan_drop(root, root, "d")
    pooled = scan_drop(root, root, "d", workers=2, progress=lambda done, total: calls.append((done, total)))
    assert pooled.accepted.drop(columns="labels").equals(serial.accepted.drop(columns="labels"))
    assert pooled.accepted.labels.tolist() == serial.accepted.labels.tolist()
    assert pooled.rejected.equals(serial.rejected)
    total = calls[-1][1]
    assert calls[-1] == (total, total) and total > 0
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_large_local_files_are_inspected_on_threads_with_the_same_result(tmp_path: Path, monkeypatch) -> None:
    import quality_assets.scan as scan

    large, small = tmp_path / "large", tmp_path / "small"
    make_imagefolder(large, {"train": {"a": 8, "b": 8}, "test": {"a": 4}}, size=(320, 240))  # ~43 KB each
    make_imagefolder(small, {"train": {"a": 8, "b": 8}, "test": {"a": 4}})                   # 28 px
    (large / "train" / "a" / "cut.png").write_bytes((large / "train" / "b" / "b_000.png").read_bytes()[:9000])
    (large / "train" / "b" / "text.png").write_bytes(b"not an image" * 2000)
    for root in (large, small):
        mark_complete(root)

    def jobs(root: Path) -> list[tuple[str, int, int]]:
        return [(str(f), 1, 1) for f in sorted(root.rglob("*.png"))]

    monkeypatch.setattr(scan, "INSPECT_THREADS", 2)
    assert scan._inspect_threads(jobs(large)) == 2 and scan._inspect_threads(jobs(small)) == 1
    calls: list[tuple[int, int]] = []
    threaded = scan_drop(large, large, "d", progress=lambda done, total: calls.append((done, total)))
    monkeypatch.setattr(scan, "INSPECT_THREADS", 1)
    serial = scan_drop(large, large, "d")
    assert len(threaded.accepted) == 20
    assert _reasons(threaded) == {"train/a/cut.png": "truncated", "train/b/text.png": "not_an_image"}
    assert threaded.accepted.drop(columns="labels").equals(serial.accepted.drop(columns="labels"))
    assert threaded.rejected.equals(serial.rejected)
    assert calls[-1] == (22, 22) and [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_directory_symlink_loop_terminates_and_alias_dir_is_scanned(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, {"train": {"cat": 1}})
    os.symlink(tmp_path / "train", tmp_path / "train/cat/loop")  # points back at an ancestor
    os.symlink(tmp_path / "train/cat", tmp_path / "train/a_alias")  # sorts before the real folder
    result = scan_drop(tmp_path, tmp_path, "d")
    assert result.rejected.empty
    assert result.accepted.path.tolist() == ["train/a_alias/cat_000.png", "train/cat/cat_000.png"]
    assert result.accepted.file_sha256.nunique() == 1
