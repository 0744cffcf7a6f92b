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


def test_a_tick_fails_a_killed_run_so_queued_drops_can_start(tmp_path, dagster_instance):
    import socket
    import subprocess
    import sys

    from dagster._core.test_utils import create_run_for_test

    from quality_assets.defs.automation.stale_runs import HOST_TAG, PID_TAG

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    killed = create_run_for_test(dagster_instance, job_name="audit_job", status=dg.DagsterRunStatus.STARTED,
                                 tags={PID_TAG: str(child.pid), HOST_TAG: socket.gethostname()})
    _tick(tmp_path / "drops", dagster_instance)
    assert dagster_instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
