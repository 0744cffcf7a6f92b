from quality_assets.ingest import drop_id_for, ingest_drop
from quality_assets.store import run_query
from quality_tests.imagefolders import make_imagefolder, make_messy_imagefolder, write_png


def _manifest(conn):
    return conn.execute("SELECT * FROM raw_manifest ORDER BY path").df()


def test_reingesting_a_drop_adds_nothing(store, tmp_path):
    data = tmp_path / "data"
    written = make_imagefolder(data)
    with store.connect() as conn:
        first = ingest_drop(conn, data, data)
        before = _manifest(conn)
        second = ingest_drop(conn, data, data)
        after = _manifest(conn)
    assert first.n_new == len(written) and second.n_new == 0
    assert second.n_already_present == len(written)
    assert before.sample_id.tolist() == after.sample_id.tolist()


def test_every_bad_file_is_a_rejected_row_and_rerun_does_not_duplicate_them(store, tmp_path):
    data = tmp_path / "data"
    expected = make_messy_imagefolder(data, tmp_path / "outside")
    with store.connect() as conn:
        summary = ingest_drop(conn, data, data)
        ingest_drop(conn, data, data)
        rejected = conn.execute("SELECT path, reason FROM rejected_samples ORDER BY path").df()
        manifest = _manifest(conn)
    assert dict(zip(rejected.path, rejected.reason)) == expected
    assert summary.n_rejected == len(expected)
    assert not set(manifest.path) & set(expected)


def test_changed_file_supersedes_its_old_row_and_restored_bytes_reinstate_it(store, tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data / "drop1", {"train": {"cat": 3}}, seed=1)
    target = data / "drop1/train/cat/cat_000.png"
    original_bytes = target.read_bytes()
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop1")
        original = _manifest(conn)
        old_id = original.set_index("path").sample_id["drop1/train/cat/cat_000.png"]
        # The same path now holds different pixels, and a new file arrives beside it.
        write_png(target, seed=777)
        write_png(data / "drop1/train/cat/cat_new.png", seed=778)
        summary = ingest_drop(conn, data, data / "drop1")
        manifest = _manifest(conn)
        active = run_query(conn, "manifest_with_roots")
        superseded = conn.execute("SELECT * FROM superseded_samples").df()
        rejected = conn.execute("SELECT path, reason FROM rejected_samples").df()
        # The old bytes come back: the old sample returns, the intermediate one leaves.
        target.write_bytes(original_bytes)
        restored = ingest_drop(conn, data, data / "drop1")
        active_after_restore = run_query(conn, "manifest_with_roots")
    assert (summary.n_new, summary.n_superseded) == (2, 1)
    assert len(manifest) == len(original) + 2  # append-only: the old row stays in the table
    assert set(original.sample_id) <= set(manifest.sample_id)
    assert superseded.sample_id.tolist() == [old_id] and superseded.reason.tolist() == ["content_changed"]
    assert old_id not in set(active.sample_id) and len(active) == len(original) + 1
    assert active.path.is_unique and rejected.empty
    assert (restored.n_new, restored.n_superseded) == (0, 1)
    assert old_id in set(active_after_restore.sample_id) and active_after_restore.path.is_unique


def test_drop_ids_are_stable_and_paths_are_relative_to_the_data_root(store, tmp_path):
    data = tmp_path / "data"
    make_imagefolder(data / "drop_a", {"train": {"cat": 2}})
    assert drop_id_for(data, data / "drop_a") == drop_id_for(data, data / "drop_a")
    assert drop_id_for(data, data / "drop_a").startswith("drop_a-")
    with store.connect() as conn:
        ingest_drop(conn, data, data / "drop_a")
        paths = run_query(conn, "manifest_with_roots")
    assert all(p.startswith("drop_a/train/cat/") for p in paths.path)
    assert set(paths.data_root) == {data.resolve().as_posix()}


def test_ingest_stores_every_inspected_property_including_hue_histograms(tmp_path):
    from quality_assets.imaging import INSPECT_KEYS
    from quality_assets.ingest import ingest_drop
    from quality_assets.store import Store
    from quality_tests.imagefolders import make_imagefolder

    data = tmp_path / "data"
    make_imagefolder(data, {"train": {"a": 3}})
    store = Store(tmp_path / "home")
    ingest_drop(store, data, data)
    with store.connect(read_only=True) as conn:
        frame = conn.execute("SELECT * FROM manifest").df()
    assert set(INSPECT_KEYS) <= set(frame.columns)
    assert all(len(h) == 13 and abs(sum(h) - 1.0) < 1e-3 for h in frame["hue_histogram"])
