import dagster as dg

from quality_assets.defs.automation.sensors import new_drop_sensor
from quality_assets.defs.resources import QualityStoreResource
from quality_tests.imagefolders import make_imagefolder, mark_complete


def _tick(drops_dir, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"store": QualityStoreResource(home=str(drops_dir.parent / "home"), drops_dir=str(drops_dir))},
    )
    result = new_drop_sensor(context)
    return result, context


def _requests(result):
    if isinstance(result, dg.SkipReason):
        return []
    return list(result.run_requests)


def test_half_copied_drop_is_skipped_until_its_marker_exists(tmp_path, dagster_instance):
    drops = tmp_path / "drops"
    make_imagefolder(drops / "drop_001", {"train": {"cat": 2}})
    result, _ = _tick(drops, dagster_instance)
    assert isinstance(result, dg.SkipReason)

    mark_complete(drops / "drop_001")
    result, _ = _tick(drops, dagster_instance)
    [request] = _requests(result)
    assert request.run_config["ops"]["raw_manifest"]["config"] == {"data_root": str(drops), "drops": ["drop_001"]}
    assert request.run_key.startswith("drop:drop_001:")


def test_same_drop_is_requested_once_and_two_drops_give_two_requests(tmp_path, dagster_instance):
    drops = tmp_path / "drops"
    make_imagefolder(drops / "drop_001", {"train": {"cat": 2}}, marker=True)
    first, _ = _tick(drops, dagster_instance)
    assert len(_requests(first)) == 1

    again, _ = _tick(drops, dagster_instance, cursor=first.cursor)
    assert _requests(again) == []

    make_imagefolder(drops / "drop_002", {"train": {"dog": 2}}, seed=2, marker=True)
    make_imagefolder(drops / "drop_003", {"train": {"dog": 2}}, seed=3, marker=True)
    later, _ = _tick(drops, dagster_instance, cursor=first.cursor)
    names = [r.tags["quality/drop"] for r in _requests(later)]
    assert names == ["drop_002", "drop_003"]
    assert len({r.run_key for r in _requests(later)}) == 2


def test_missing_drops_folder_is_a_skip_not_an_error(tmp_path, dagster_instance):
    result, _ = _tick(tmp_path / "no_such_folder", dagster_instance)
    assert isinstance(result, dg.SkipReason)
