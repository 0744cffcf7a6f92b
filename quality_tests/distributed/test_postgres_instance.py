"""A full audit on a Dagster instance whose storage is PostgreSQL (dagster_postgres.yaml).

A throwaway server is started for the module; the audit's run, its event log and its asset check
results must land in Postgres and be visible to a second instance opened from the same settings, as
the webserver, daemon and run workers on other machines would open it.
"""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from PIL import Image

from quality_tests.distributed.postgres_server import postgres_server, unavailable_reason

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def test_postgres_variant_keeps_every_other_instance_setting():
    base = yaml.safe_load((REPO / "dagster.yaml").read_text())
    variant = yaml.safe_load((REPO / "dagster_postgres.yaml").read_text())
    assert set(variant.pop("storage")) == {"postgres"}
    assert variant == base


def _small_labelled_folder(data: Path, vectors: Path) -> Path:
    """Two noisy prototypes per split, one exact copy; vectors are the pixels (precomputed embedder)."""
    rng = np.random.default_rng(0)
    prototypes = {"a": rng.uniform(0, 255, (24, 24)), "b": rng.uniform(0, 255, (24, 24))}
    for split, count in (("train", 12), ("test", 4)):
        for label, proto in prototypes.items():
            for i in range(count):
                path = data / f"{split}/{label}/{label}_{i:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = np.clip(proto + rng.normal(0, 40, proto.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(path)
    shutil.copyfile(data / "train/a/a_00.png", data / "train/a/copy_of_a_00.png")
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    matrix = np.stack([np.asarray(Image.open(data / p), np.float32).ravel() for p in paths])
    np.save(vectors, matrix - matrix.mean(axis=1, keepdims=True))
    Path(str(vectors) + ".paths.txt").write_text("\n".join(paths))
    return vectors


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as server:
        yield server


def test_audit_runs_events_and_checks_land_in_postgres(pg_server, tmp_path, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    from quality_assets.defs.definitions import ALL_ASSETS, ALL_CHECKS
    from quality_assets.defs.gates import GateThresholds
    from quality_assets.defs.resources import QualityStoreResource

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(REPO / "dagster_postgres.yaml", dagster_home / "dagster.yaml")
    for name, value in {"DAGSTER_PG_HOST": pg_server.host, "DAGSTER_PG_PORT": str(pg_server.port),
                        "DAGSTER_PG_USERNAME": pg_server.user, "DAGSTER_PG_PASSWORD": "",
                        "DAGSTER_PG_DB": pg_server.dbname, "DAGSTER_HOME": str(dagster_home)}.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    vectors = _small_labelled_folder(data, tmp_path / "vectors.npy")

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        result = dg.materialize(
            ALL_ASSETS + ALL_CHECKS,
            resources={"store": QualityStoreResource(home=str(tmp_path / "home")),
                       "gates": GateThresholds(max_leakage_rate=1.0, max_near_duplicate_rate=1.0)},
            run_config={"ops": {"raw_manifest": {"config": {"data_root": str(data)}},
                                "ssl_model": {"config": {"embedder": "precomputed",
                                                         "embeddings_file": str(vectors)}}}},
            instance=instance, raise_on_error=False,
        )
        assert result.success, result.get_step_failure_events()
        run_id = result.run_id

    # A second instance from the same settings (another process, another machine) sees it all.
    with dg.DagsterInstance.from_config(str(dagster_home)) as reader:
        runs = reader.get_runs()
        assert [r.run_id for r in runs] == [run_id]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        asset_keys = [key for asset in ALL_ASSETS for key in asset.keys]
        for key in asset_keys:
            event = reader.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run_id, key
        manifest = reader.get_latest_materialization_event(dg.AssetKey("raw_manifest"))
        assert manifest.asset_materialization.metadata["dagster/row_count"].value == 33
        check_keys = [key for check in ALL_CHECKS for key in check.check_keys]
        assert check_keys
        for check_key in check_keys:
            history = reader.event_log_storage.get_asset_check_execution_history(check_key, limit=5)
            assert [record.run_id for record in history] == [run_id], check_key
            assert history[0].status.value in {"SUCCEEDED", "FAILED"}

    # The rows are in Postgres itself, and nothing fell back to sqlite files in DAGSTER_HOME.
    with pg_server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone()[0] == 1
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                       (run_id, "ASSET_MATERIALIZATION"))
        assert cursor.fetchone()[0] == len(asset_keys)
        cursor.execute("SELECT count(DISTINCT check_name) FROM asset_check_executions WHERE run_id = %s",
                       (run_id,))
        assert cursor.fetchone()[0] == len({key.name for key in check_keys})
    conn.close()
    assert not list(dagster_home.rglob("*.db"))
