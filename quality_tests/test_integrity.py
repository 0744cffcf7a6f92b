"""Data integrity on real files and a real DuckDB file: odd names, hidden files, nested drops,
colliding paths from two data roots, files that change after ingest, and CSV formula escaping."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quality_assets.ingest import ingest_drop
from quality_assets.store import Store, run_query
from quality_tests.imagefolders import make_imagefolder, write_csv, write_png

# Any byte string a POSIX file system allows as one name: no '/', no NUL, not '.' or '..'.
file_names = st.binary(min_size=1, max_size=60).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


def _decodable(name: bytes) -> bool:
    try:
        name.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _rejected(store: Store) -> dict[str, str]:
    with store.connect(read_only=True) as conn:
        frame = conn.execute("SELECT path, reason FROM rejected_samples").df()
    return dict(zip(frame.path, frame.reason))


def _active(store: Store):
    with store.connect(read_only=True) as conn:
        return run_query(conn, "manifest_with_roots")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=file_names, as_folder=st.booleans())
# Hidden and undecodable at once: the unreadable name is what is reported, for folders as for files
# (a CI run drew this folder name and got "hidden_folder").
@example(name=b".\x80", as_folder=True)
@example(name=b".\x80", as_folder=False)
def test_any_file_name_is_ingested_or_rejected_alone(name: bytes, as_folder: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_imagefolder(data, {"train": {"cat": 2}})
        odd = os.path.join(os.fsencode(data / "train"), name, b"x.png") if as_folder else \
            os.path.join(os.fsencode(data / "train/cat"), name)
        os.makedirs(os.path.dirname(odd), exist_ok=True)
        write_png(Path(os.fsdecode(odd)), seed=99)
        store = Store(Path(tmp) / "home")
        summary = ingest_drop(store, data, data)

        active, rejected = _active(store), _rejected(store)
        good = {"train/cat/cat_000.png", "train/cat/cat_001.png"}
        assert good <= set(active.path), "an odd name must never cost the other files"
        assert summary.n_accepted + summary.n_rejected == 3
        if name.startswith(b".") or not _decodable(name):
            assert len(active) == 2 and len(rejected) == 1
            [(path, reason)] = rejected.items()
            expected = ("hidden_folder" if as_folder else "hidden_file") if _decodable(name) \
                else "undecodable_name"
            assert reason == expected
            assert path.startswith("train/")
        else:
            # A valid name is an ordinary sample (its folder is its label).
            assert len(active) == 3 and not rejected


def test_undecodable_names_in_a_csv_drop_are_rejected_alone(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_png(data / "a.png", seed=1)
    write_png(data / "b.png", seed=2)
    write_png(Path(os.fsdecode(os.fsencode(data) + b"/\xff\xfe.png")), seed=3)
    write_csv(data / "manifest.csv", ["path", "label", "split"], [("a.png", "cat", "train"), ("b.png", "dog", "train")])
    summary = ingest_drop(store, data, data)
    assert sorted(_active(store).path) == ["a.png", "b.png"]
    assert _rejected(store) == {"\\xff\\xfe.png": "undecodable_name"}
    assert summary.n_rejected == 1


def test_hidden_files_and_folders_are_recorded_not_silently_skipped(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"cat": 2}})
    write_png(data / "train/cat/.hidden.png", seed=5)
    write_png(data / "train/.cache/cat/x.png", seed=6)
    (data / ".git").mkdir()
    (data / ".git/HEAD").write_text("ref: refs/heads/main\n")
    ingest_drop(store, data, data)
    assert _rejected(store) == {
        "train/cat/.hidden.png": "hidden_file", "train/.cache": "hidden_folder", ".git": "hidden_folder"}


def test_a_nested_drop_audited_again_from_its_root_keeps_its_samples(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_imagefolder(data / "d1", {"train": {"cat": 2}}, seed=1)
    make_imagefolder(data / "d2", {"train": {"dog": 2}}, seed=10)
    first = ingest_drop(store, data, data / "d1")
    before = _active(store)
    again = ingest_drop(store, data, data)  # the whole root, d1 inside it
    after = _active(store)
    rejected = _rejected(store)
    assert first.n_new == 2 and [s.drop_id for s in again.nested] == [first.drop_id]
    assert again.nested[0].n_already_present == 2 and again.nested[0].n_new == 0
    assert set(before.sample_id) <= set(after.sample_id)
    # d1's files are d1's samples, not unknown splits of the root drop; d2 is not a registered
    # drop, so the root's ImageFolder layout rejects its folder name as a split, file by file.
    assert not any(path.startswith("d1/") for path in rejected)
    assert rejected == {"d2/train/dog/dog_000.png": "unknown_split", "d2/train/dog/dog_001.png": "unknown_split"}


def test_colliding_relative_paths_from_two_roots_are_two_samples(store: Store, tmp_path: Path) -> None:
    first_root, second_root = tmp_path / "a", tmp_path / "b"
    make_imagefolder(first_root, {"train": {"cat": 2}}, seed=1)
    make_imagefolder(second_root, {"train": {"cat": 2}}, seed=50)
    # Even byte-identical content at the same relative path is a separate sample per root.
    shutil.copyfile(first_root / "train/cat/cat_001.png", second_root / "train/cat/cat_001.png")
    ingest_drop(store, first_root, first_root)
    second = ingest_drop(store, second_root, second_root)
    active = _active(store)
    assert second.n_new == 2 and second.n_superseded == 0
    assert len(active) == 4 and active.sample_id.is_unique
    assert sorted(active.groupby("path").data_root.nunique()) == [2, 2]
    assert not _rejected(store)


def test_superseded_rows_leave_the_scoring_and_embedding_inputs(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"cat": 3}}, seed=1)
    ingest_drop(store, data, data)
    write_png(data / "train/cat/cat_000.png", seed=4242)
    ingest_drop(store, data, data)
    with store.connect() as conn:
        superseded = set(conn.execute("SELECT sample_id FROM superseded_samples").df().sample_id)
        for query, params in (("manifest_for_scoring", {}), ("manifest_with_roots", {}),
                              ("cleaning_inputs", {}), ("manifest_for_expectations", {}),
                              ("samples_missing_embeddings", {"model_version": "m"}),
                              ("samples_missing_thumbnails", {"size": 24})):
            frame = run_query(conn, query, **params)
            assert len(frame) == 3 and not superseded & set(frame.sample_id), query
        version = run_query(conn, "manifest_version")
    assert len(superseded) == 1 and int(version.n_samples[0]) == 3


def test_csv_exports_escape_spreadsheet_formulas_parquet_keeps_values(store: Store, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from quality_assets.exporting import FORMULA_PREFIXES, export_views
    from quality_assets.store import insert_df

    data = tmp_path / "data"
    label = '=HYPERLINK("http:evil","x")'
    names = ["+1.png", "-2.png", "@3.png", "=4.png", "ok.png", "ok2.png"]
    for index, name in enumerate(names):
        write_png(data / name, seed=index)
    write_csv(data / "manifest.csv", ["path", "label", "split"], [(name, label, "train") for name in names])
    assert ingest_drop(store, data, data).n_new == 6
    now = pd.Timestamp.now()
    with store.connect() as conn:
        manifest = run_query(conn, "manifest_with_roots")
        insert_df(conn, "score_runs", pd.DataFrame({"score_version": ["s1"], "created_at": [now]}))
        insert_df(conn, "issue_scores", pd.DataFrame({
            "score_version": "s1", "sample_id": manifest.sample_id, "issue_type": "label_error",
            "score": 0.5, "rank": range(1, len(manifest) + 1), "is_issue": True,
            "suggested_label": "@SUM(A1)"}))
        insert_df(conn, "split_versions", pd.DataFrame({"split_version": ["v1"], "created_at": [now]}))
        insert_df(conn, "cleaned_splits", pd.DataFrame({
            "split_version": "v1", "sample_id": manifest.sample_id, "path": manifest.path,
            "split": manifest.split, "label": manifest.label, "original_label": manifest.label,
            "action": "keep", "reason": ["\tx", "\ry", "-z", "+w", "@v", "=u"]}))
    out = tmp_path / "export"
    counts = export_views(store, out)
    assert counts["issues"] == 6 and counts["cleaned_split"] == 6

    for name in ("issues", "cleaned_split"):
        with open(out / f"{name}.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 6
        cells = [value for row in rows for key, value in row.items() if key not in ("score", "rank")]
        assert not [cell for cell in cells if cell.startswith(FORMULA_PREFIXES)]
        assert {row["label"] for row in rows} == {"'" + label}
        assert sorted(row["path"] for row in rows) == sorted("'" + n if not n.startswith("ok") else n for n in names)
        raw = pq.read_table(out / f"{name}.parquet").to_pandas()
        assert set(raw.label) == {label} and sorted(raw.path) == sorted(names)
        if name == "cleaned_split":
            assert sorted(row["reason"] for row in rows) == sorted("'" + r for r in "\tx \ry -z +w @v =u".split(" "))
    assert {row["suggested_label"] for row in csv.DictReader(open(out / "issues.csv"))} == {"'@SUM(A1)"}


def test_reads_after_ingest_check_the_hash_and_the_root(store: Store, tmp_path: Path) -> None:
    """A file rewritten, deleted, or swapped for a symlink out of the root after ingest is never
    trained on, embedded or thumbnailed under its old identity: it is reported and superseded."""
    from quality_assets.representation import ModelOptions, embed_missing, ensure_model, thumbnail_missing

    data = tmp_path / "data"
    paths = make_imagefolder(data, {"train": {"a": 8, "b": 8}}, seed=3)
    ingest_drop(store, data, data)
    ids = dict(zip(_active(store).path, _active(store).sample_id))
    rewritten, deleted, swapped = paths[0], paths[1], paths[2]
    write_png(data / rewritten, seed=999)
    (data / deleted).unlink()
    outside = write_png(tmp_path / "outside/secret.png", seed=1000)
    (data / swapped).unlink()
    os.symlink(outside, data / swapped)

    model = ensure_model(store, store, ModelOptions(epochs=1, batch_size=8, time_budget_s=10.0))
    embedded = embed_missing(store, store, model)
    thumbs = thumbnail_missing(store, size=24)
    with store.connect(read_only=True) as conn:
        superseded = conn.execute("SELECT sample_id, reason FROM superseded_samples").df()
        vectors = set(conn.execute("SELECT sample_id FROM embeddings").df().sample_id)
        thumbnailed = set(conn.execute("SELECT sample_id FROM thumbnails").df().sample_id)
    assert dict(zip(superseded.sample_id, superseded.reason)) == {
        ids[rewritten]: "changed_on_read", ids[deleted]: "missing_on_read",
        ids[swapped]: "escapes_root_on_read"}
    assert model.row["n_samples_trained"] == 13
    changed = {ids[rewritten], ids[deleted], ids[swapped]}
    assert not changed & vectors and not changed & thumbnailed
    assert (embedded.n_embedded, embedded.n_total, thumbs.n_total) == (13, 13, 13)
    assert len(_active(store)) == 13
    # Re-ingesting picks up the new bytes at the rewritten path as a new sample.
    again = ingest_drop(store, data, data)
    assert again.n_new == 1 and rewritten in set(_active(store).path)
