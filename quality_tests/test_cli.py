"""`qaudit` as a person uses it: audit a folder, export the views, record a review decision."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd

from quality_tests.imagefolders import make_imagefolder

QAUDIT = str(Path(sys.executable).with_name("qaudit"))


def _qaudit(*args, home):
    env = {**os.environ, "QUALITY_HOME": str(home)}
    return subprocess.run([QAUDIT, *args], capture_output=True, text=True, env=env, timeout=600)


def test_audit_export_review_round_trip(tmp_path):
    data, home, out = tmp_path / "data", tmp_path / "home", tmp_path / "export"
    make_imagefolder(data, {"train": {"a": 12, "b": 12}, "test": {"a": 4, "b": 4}})
    audited = _qaudit("audit", str(data), "--home", str(home), home=home)
    assert audited.returncode in (0, 3), audited.stderr[-3000:]
    assert "materialized: raw_manifest, ssl_model, embeddings, knn_graph, issue_scores, cleaned_split" in audited.stdout

    exported = _qaudit("export", "--home", str(home), "--out", str(out), home=home)
    assert exported.returncode == 0, exported.stderr[-2000:]
    issues = pd.read_csv(out / "issues.csv")
    split = pd.read_csv(out / "cleaned_split.csv")
    assert (out / "issues.parquet").is_file() and (out / "duplicate_pairs.csv").is_file()
    assert len(split) == 32 and set(split.action) <= {"keep", "drop", "relabel"}
    assert set(issues.loc[issues.issue_type == "off_topic", "path"]) == set(split.path)

    target = "train/a/a_000.png"
    reviewed = _qaudit("review", target, "--issue", "label_error", "--decision", "relabel", "--label", "b",
                       "--note", "checked by hand", "--home", str(home), home=home)
    assert reviewed.returncode == 0, reviewed.stderr
    # The second audit also moves the home to Parquet row storage: same data, the review still applies.
    again = _qaudit("audit", str(data), "--home", str(home), "--row-storage", "parquet", home=home)
    assert again.returncode in (0, 3), again.stderr[-3000:]
    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        row = conn.execute("SELECT action, label, reason FROM cleaned_split WHERE path = ?", [target]).fetchone()
        versions = conn.execute("SELECT count(*) FROM split_versions").fetchone()[0]
        layout = conn.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'embeddings'"
                              ).fetchone()[0]
    finally:
        conn.close()
    assert row[0] == "relabel" and row[1] == "b" and row[2].startswith("review:")
    assert versions == 2  # the older cleaned split stays queryable
    assert layout == "VIEW" and any((home / "shards" / "embeddings").rglob("*.parquet"))


def test_usage_errors_exit_with_code_2(tmp_path):
    missing = _qaudit("audit", str(tmp_path / "nope"), "--home", str(tmp_path / "home"), home=tmp_path / "home")
    assert missing.returncode == 2 and "not a folder" in missing.stderr
    (tmp_path / "data").mkdir()
    bad_storage = _qaudit("audit", str(tmp_path / "data"), "--home", str(tmp_path / "home"), "--row-storage", "s3",
                          home=tmp_path / "home")
    assert bad_storage.returncode == 2 and "--row-storage" in bad_storage.stderr
    assert not (tmp_path / "home" / "quality.duckdb").exists()  # refused before anything ran
    bad_review = _qaudit("review", "x.png", "--decision", "relabel", "--home", str(tmp_path / "home"),
                         home=tmp_path / "home")
    assert bad_review.returncode == 2 and "--label" in bad_review.stderr


def _summary_of(data, store, quality_home, capsys) -> str:
    """What `qaudit audit` prints about the manifest after ingesting `data` as one drop."""
    from quality_assets.cli import _print_summary
    from quality_assets.ingest import ingest_drop

    ingest_drop(store, data, data)
    capsys.readouterr()
    _print_summary(quality_home)
    return capsys.readouterr().out


def test_the_summary_says_what_was_wrong_with_the_files_when_none_was_accepted(store, quality_home, tmp_path, capsys):
    """Class folders beside a split folder (a half-converted tree) are rejected file by file; the
    summary shows one file a reason with what was wrong, and the layouts a drop may have."""
    data = tmp_path / "data"
    make_imagefolder(data, {"cats": {"tabby": 2}, "dogs": {"pug": 3}})  # <label>/<breed>/<file>
    (data / "train" / "a").mkdir(parents=True)
    (data / "train" / "a" / "notes.png").write_bytes(b"not an image at all")
    shown = _summary_of(data, store, quality_home, capsys)
    assert "manifest: 0 samples, 6 rejected" in shown
    assert "rejected by reason: unknown_split=5, not_an_image=1" in shown
    assert "e.g. cats/tabby/" in shown and "split folder 'cats' is not one of train, val, test" in shown
    assert "e.g. train/a/notes.png: " in shown
    assert "nothing was accepted: a drop is an ImageFolder tree <split>/<label>/<file>" in shown
    assert "class folders <label>/<file> (read as train)" in shown


def test_the_summary_names_the_newest_class_folder_drops_and_counts_the_others(store, quality_home, tmp_path, capsys):
    from quality_assets.cli import _print_summary
    from quality_assets.ingest import ingest_drop

    data = tmp_path / "data"
    for i in (0, 1, 2, 4, 3):
        make_imagefolder(data / f"drop{i}", {"cats": {"tabby": 1}, "dogs": {"pug": 1 + i}})
        ingest_drop(store, data, data / f"drop{i}")
    ingest_drop(store, data, data / "drop4")   # again: now the newest
    capsys.readouterr()
    _print_summary(quality_home)
    shown = capsys.readouterr().out
    lines = [line for line in shown.splitlines() if "class folders without split folders" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["drop4", "drop3", "drop2"]
    assert "and 2 earlier class-folder drops (5 images, read as train too" in shown


def test_the_summary_says_class_folders_were_read_as_train(store, quality_home, tmp_path, capsys):
    """torchvision's `<label>/<file>` tree is accepted whole as train, and the summary says so (and
    what leakage would need)."""
    data = tmp_path / "data"
    make_imagefolder(data, {"cats": {"tabby": 2}, "dogs": {"pug": 3}})   # <label>/<sub>/<file>: no splits
    shown = _summary_of(data, store, quality_home, capsys)
    assert "manifest: 5 samples, 0 rejected" in shown
    assert "the data root: class folders without split folders: its 5 images are read as train" in shown
    with store.connect(read_only=True) as conn:
        assert conn.execute("SELECT DISTINCT split FROM raw_manifest").fetchall() == [("train",)]
        assert sorted(r[0] for r in conn.execute("SELECT DISTINCT label FROM raw_manifest").fetchall()) == ["cats", "dogs"]
