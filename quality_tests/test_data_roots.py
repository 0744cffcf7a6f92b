"""Data roots in an object store: the same scan, ingest, verified reads, sensor and audit as a folder.

The bucket is a real S3 endpoint (moto's server over HTTP, `quality_lab/object_store.py`), read
through s3fs as a cloud bucket would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from quality_assets.data_roots import (
    STORAGE_OPTIONS_ENV,
    RemoteRoot,
    is_remote,
    join,
    relative_key,
    root_text,
    storage_options,
)
from quality_assets.imaging import SampleChanged, read_verified
from quality_assets.ingest import ingest_drop
from quality_assets.scan import DROP_MARKER, scan_drop
from quality_tests.imagefolders import (
    make_csv_drop,
    make_imagefolder,
    make_messy_imagefolder,
    mark_complete,
    write_csv,
    write_png,
)
from quality_lab.object_store import s3, upload_tree


def test_a_root_is_stored_in_one_canonical_form(tmp_path: Path) -> None:
    assert root_text("s3://bucket/data/pets/") == "s3://bucket/data/pets"
    assert root_text("S3://bucket//data") == "s3://bucket/data"
    assert root_text(f"file://{tmp_path}/x/../y") == (tmp_path / "y").resolve().as_posix()
    assert root_text(tmp_path / "x" / "..") == tmp_path.resolve().as_posix()
    for bad in ("s3://", "s3://bucket/../other", "gs://b/./x"):
        with pytest.raises(ValueError):
            root_text(bad)
    assert is_remote("s3://b") and is_remote("gs://b/x") and not is_remote(f"file://{tmp_path}")
    assert not is_remote(str(tmp_path)) and not is_remote(tmp_path)


def test_paths_join_under_a_root_and_never_leave_it(tmp_path: Path) -> None:
    assert join("s3://b/root", "train/cat/a.png") == "s3://b/root/train/cat/a.png"
    assert join("s3://b/root", ".") == "s3://b/root"
    assert join(str(tmp_path), "a/b.png") == str(tmp_path / "a/b.png")
    assert relative_key("./a//b.png") == "a/b.png"
    for bad in ("../x.png", "a/../../x.png", "/etc/passwd"):
        assert relative_key(bad) is None
        with pytest.raises(ValueError):
            join("s3://b/root", bad)


def test_storage_options_are_read_per_protocol_and_bad_json_is_named(monkeypatch) -> None:
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"s3": {"anon": true}}')
    assert storage_options("s3") == {"anon": True} and storage_options("gs") == {}
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, "{not json")
    with pytest.raises(ValueError, match=STORAGE_OPTIONS_ENV):
        storage_options("s3")
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"s3": "anon"}')
    with pytest.raises(ValueError, match="protocol -> options"):
        storage_options("s3")


def _without_ids(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    return result.accepted.drop(columns=["sample_id"]), result.rejected


def test_an_s3_drop_scans_exactly_as_the_same_tree_on_disk(tmp_path: Path, s3_bucket: str) -> None:
    local = tmp_path / "root"
    expected = make_messy_imagefolder(local, tmp_path / "outside")
    (local / "train/cat/escape.png").unlink()  # a symlink: object stores have none
    expected.pop("train/cat/escape.png")
    write_png(local / "train/.cache/dog/x.png", 77)  # a hidden folder is reported once, not entered
    expected["train/.cache"] = "hidden_folder"
    upload_tree(local, f"{s3_bucket}/data")

    on_disk = scan_drop(local, local, "d")
    in_bucket = scan_drop(f"{s3_bucket}/data", ".", "d")
    assert dict(zip(in_bucket.rejected.path, in_bucket.rejected.reason)) == expected
    for disk_frame, bucket_frame in zip(_without_ids(on_disk), _without_ids(in_bucket)):
        pd.testing.assert_frame_equal(disk_frame, bucket_frame)
    assert DROP_MARKER not in " ".join(in_bucket.accepted.path)
    # The size limit, decided from the listing without reading the object, as on disk from stat().
    small_disk = scan_drop(local, local, "d", max_bytes=1500)
    small_bucket = scan_drop(f"{s3_bucket}/data", ".", "d", max_bytes=1500)
    assert (small_bucket.rejected.reason == "file_too_large").sum() >= 3
    for disk_frame, bucket_frame in zip(_without_ids(small_disk), _without_ids(small_bucket)):
        pd.testing.assert_frame_equal(disk_frame, bucket_frame)
    # An object that grew past the limit after the listing is cut at the limit, not downloaded whole.
    from quality_assets.imaging import ImageRejected, inspect_image

    with pytest.raises(ImageRejected, match="more than 100 bytes"):
        inspect_image(f"{s3_bucket}/data/{small_disk.accepted.path.iloc[0]}", max_bytes=100)
    with pytest.raises(ImageRejected) as gone:
        inspect_image(f"{s3_bucket}/data/train/cat/no-such.png")
    assert gone.value.reason == "missing_file"
    # The root is part of a sample's identity: same bytes and path, another root, another sample.
    assert not set(on_disk.accepted.sample_id) & set(in_bucket.accepted.sample_id)


def test_an_s3_csv_drop_rejects_each_bad_row_with_its_reason(tmp_path: Path, s3_bucket: str) -> None:
    local = tmp_path / "root"
    drop = local / "drop"
    write_png(local / "sibling.png", 11)
    for name, seed in [("ok.png", 1), ("unlisted.png", 2), ("weird.png", 3)]:
        write_png(drop / name, seed)
    write_csv(drop / "manifest.csv", ["path", "label", "split"], [
        ("ok.png", "x", "train"),
        ("weird.png", "x", "holdout"),
        ("../sibling.png", "x", "train"),
        ("/abs/x.png", "x", "train"),
        ("missing.png", "x", "train"),
    ])
    mark_complete(drop)
    upload_tree(local, s3_bucket)

    result = scan_drop(s3_bucket, f"{s3_bucket}/drop", "drop")
    assert result.layout == "csv"
    assert result.accepted.path.tolist() == ["drop/ok.png"]
    assert dict(zip(result.rejected.path, result.rejected.reason)) == {
        "drop/weird.png": "unknown_split",
        "../sibling.png": "path_escapes_root",
        "/abs/x.png": "path_escapes_root",
        "drop/missing.png": "missing_file",
        "drop/unlisted.png": "not_in_manifest",
    }
    with pytest.raises(ValueError):
        scan_drop(s3_bucket, "../elsewhere", "d")
    with pytest.raises(ValueError):
        scan_drop(f"{s3_bucket}/drop", "s3://another-bucket/drop", "d")
    with pytest.raises(FileNotFoundError):
        scan_drop(s3_bucket, "no_such_drop", "d")


def test_an_s3_ingest_is_idempotent_and_verified_reads_catch_a_rewritten_object(
        tmp_path: Path, s3_bucket: str, store) -> None:
    local = tmp_path / "root"
    paths = make_imagefolder(local, {"train": {"cat": 2, "dog": 2}}, marker=True)
    make_csv_drop(local / "extra")
    upload_tree(local, f"{s3_bucket}/ds")
    root = f"{s3_bucket}/ds/"  # a trailing slash is the same root

    first = ingest_drop(store, root, ".")
    again = ingest_drop(store, f"{s3_bucket}/ds", f"{s3_bucket}/ds")
    assert first.n_new == 4 and first.n_rejected == 7  # extra/ is not an ImageFolder tree
    assert again.drop_id == first.drop_id and again.n_new == 0 and again.n_already_present == 4
    with store.connect() as conn:
        rows = conn.execute("SELECT DISTINCT data_root FROM drops").fetchall()
        manifest = conn.execute("SELECT path, file_sha256, bytes FROM raw_manifest ORDER BY path").df()
    assert rows == [(f"{s3_bucket}/ds",)]
    assert manifest.path.tolist() == sorted(paths)

    row = manifest.iloc[0]
    data = read_verified(f"{s3_bucket}/ds", row.path, row.file_sha256, int(row.bytes))
    assert data == (local / row.path).read_bytes()
    s3().pipe_file(f"{s3_bucket}/ds/{row.path}".split("://")[1], data[:-1] + b"\0")  # same size
    with pytest.raises(SampleChanged) as changed:
        read_verified(f"{s3_bucket}/ds", row.path, row.file_sha256, int(row.bytes))
    assert changed.value.reason == "changed_on_read"
    s3().pipe_file(f"{s3_bucket}/ds/{row.path}".split("://")[1], data + b"more")
    with pytest.raises(SampleChanged, match="more than"):
        read_verified(f"{s3_bucket}/ds", row.path, row.file_sha256, int(row.bytes))
    s3().rm_file(f"{s3_bucket}/ds/{row.path}".split("://")[1])
    with pytest.raises(SampleChanged) as gone:
        read_verified(f"{s3_bucket}/ds", row.path, row.file_sha256, int(row.bytes))
    assert gone.value.reason == "missing_on_read"
    with pytest.raises(SampleChanged) as escape:
        read_verified(f"{s3_bucket}/ds", "../ds/" + row.path, row.file_sha256)
    assert escape.value.reason == "escapes_root_on_read"


def test_the_drops_sensor_watches_a_bucket(tmp_path: Path, s3_bucket: str) -> None:
    from quality_assets.defs.automation.sensors import new_drop_sensor
    from quality_assets.defs.resources import QualityStoreResource

    drops = f"{s3_bucket}/drops"
    for name in ("d1", "d2"):
        make_imagefolder(tmp_path / name, {"train": {"cat": 1}}, marker=name == "d1")
        upload_tree(tmp_path / name, f"{drops}/{name}")
    resource = QualityStoreResource(home=str(tmp_path / "home"), drops_dir=drops + "/")

    with dg.instance_for_test() as instance:
        first = new_drop_sensor(dg.build_sensor_context(instance=instance, resources={"store": resource}))
        assert [r.tags["quality/drop"] for r in first.run_requests] == ["d1"]
        config = first.run_requests[0].run_config["ops"]["raw_manifest"]["config"]
        assert config == {"data_root": drops + "/", "drops": ["d1"]}
        quiet = new_drop_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                        resources={"store": resource}))
        assert isinstance(quiet, dg.SkipReason)
        # d2 completes; d1's marker is uploaded again (a corrected drop): both are requested.
        s3().pipe_file(f"{drops}/d2/{DROP_MARKER}".split("://")[1], b"")
        s3().pipe_file(f"{drops}/d1/{DROP_MARKER}".split("://")[1], b"again")
        later = new_drop_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                        resources={"store": resource}))
        assert sorted(r.tags["quality/drop"] for r in later.run_requests) == ["d1", "d2"]


def test_listing_sees_objects_written_after_an_earlier_listing(s3_bucket: str) -> None:
    root = RemoteRoot(f"{s3_bucket}/live")
    s3().pipe_file(f"{s3_bucket}/live/a.png".split("://")[1], b"1")
    assert list(root.files_under()) == ["a.png"]
    s3().pipe_file(f"{s3_bucket}/live/b/c.png".split("://")[1], b"2")
    assert sorted(root.files_under()) == ["a.png", "b/c.png"] and root.folders() == ["b"]
    assert root.is_folder("b") and not root.is_folder("nope") and root.info("nope.png") is None


def _audit_tables(home: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(home / "quality.duckdb"), read_only=True) as conn:
        issues = conn.execute("SELECT path, issue_type, score, is_issue, suggested_label FROM issues "
                              "ORDER BY issue_type, path").df()
        vectors = conn.execute("SELECT m.path, e.vector FROM embeddings e JOIN manifest m USING (sample_id) "
                               "ORDER BY m.path").df()
        flagged = conn.execute("SELECT least(path_a, path_b) AS a, greatest(path_a, path_b) AS b, score "
                               "FROM duplicate_pairs WHERE is_issue ORDER BY a, b").df()
    return {"issues": issues, "vectors": vectors, "flagged_pairs": flagged}


@pytest.mark.slow
def test_an_audit_of_a_bucket_gives_the_issue_rows_of_the_same_folder(tmp_path: Path, s3_bucket: str,
                                                                       monkeypatch) -> None:
    """The whole audit through Dagster (ingest, DINO, embedding, every score, the gates, the cleaned
    split) from an s3:// root and from the same files on disk: the same model, the same flags."""
    from quality_assets.runner import run_audit

    data = tmp_path / "data"
    paths = make_imagefolder(data, {"train": {"a": 30, "b": 30}, "test": {"a": 6, "b": 6}}, seed=8)
    shutil.copyfile(data / paths[0], data / paths[0].replace(".png", "_copy.png"))  # an exact duplicate
    upload_tree(data, f"{s3_bucket}/data")
    model = {"epochs": 1, "batch_size": 8}
    tables = {}
    for where, root in (("disk", data), ("bucket", f"{s3_bucket}/data")):
        home = tmp_path / where
        monkeypatch.setenv("QUALITY_HOME", str(home))
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        outcome = run_audit(home, root, [], extra_op_config={"ssl_model": model}, log_level="ERROR",
                            say=lambda _: None)
        assert outcome.success, outcome.error
        tables[where] = _audit_tables(home)
    disk, bucket = tables["disk"]["issues"], tables["bucket"]["issues"]
    # One model: DINO trains in content order, so the root (part of every sample id) changes nothing.
    assert tables["disk"]["vectors"].path.equals(tables["bucket"]["vectors"].path)
    np.testing.assert_array_equal(np.stack(tables["disk"]["vectors"].vector),
                                  np.stack(tables["bucket"]["vectors"].vector))
    assert len(disk) > 0 and set(disk.issue_type) >= {"near_duplicate", "off_topic", "label_error", "leakage"}
    assert disk[["path", "issue_type"]].equals(bucket[["path", "issue_type"]])
    assert (bucket.is_issue == disk.is_issue).all()
    assert (bucket.suggested_label.fillna("") == disk.suggested_label.fillna("")).all()
    # Per-sample scores agree, but for the pair types: the rank evidence of weak pairs (an image's
    # n-th neighbour among near-equal candidates) follows index order, i.e. sample ids.
    per_sample = ~disk.issue_type.isin(["near_duplicate", "leakage"])
    np.testing.assert_allclose(bucket.score[per_sample].to_numpy(), disk.score[per_sample].to_numpy(), atol=1e-4)
    flagged_disk, flagged_bucket = tables["disk"]["flagged_pairs"], tables["bucket"]["flagged_pairs"]
    assert len(flagged_disk) >= 1  # the exact duplicate, at least
    pd.testing.assert_frame_equal(flagged_disk, flagged_bucket)

    # The cleaned split exported from the bucket: the same tree, the objects' bytes copied out.
    from quality_assets.dataset_export import export_dataset
    from quality_assets.store import Store

    exported = {}
    for where in ("disk", "bucket"):
        out = tmp_path / f"export-{where}"
        export_dataset(Store(tmp_path / where), out, "imagefolder", link_mode="hardlink")
        exported[where] = {p.relative_to(out).as_posix(): p.read_bytes()
                           for p in sorted(out.rglob("*.png"))}
    assert len(exported["disk"]) > 60 and exported["bucket"] == exported["disk"]


def test_qaudit_refuses_a_malformed_bucket_url_and_names_a_missing_drop(tmp_path: Path, s3_bucket: str) -> None:
    """The command line as a person types it: a URL without a bucket is a usage error (exit 2)
    before anything runs; a bucket prefix with nothing in it fails the run and says which."""
    import os
    import subprocess
    import sys

    qaudit = str(Path(sys.executable).with_name("qaudit"))
    env = {**os.environ, "QUALITY_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "home" / "dagster")}
    malformed = subprocess.run([qaudit, "audit", "s3://", "--home", str(tmp_path / "home")],
                               capture_output=True, text=True, env=env, timeout=300)
    assert malformed.returncode == 2 and "names no bucket" in malformed.stderr
    empty = subprocess.run([qaudit, "audit", f"{s3_bucket}/nothing-here", "--home", str(tmp_path / "home")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert empty.returncode == 1 and f"{s3_bucket}/nothing-here" in empty.stdout + empty.stderr
    assert "is not a folder" in empty.stdout + empty.stderr
