"""Which Dagster instance settings `qaudit` installs into the home."""

import pytest

from quality_assets.runner import DAGSTER_YAML_ENV, REPO_ROOT, prepare_environment


def test_the_repository_instance_file_is_installed_unless_another_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv(DAGSTER_YAML_ENV, raising=False)
    installed = prepare_environment(tmp_path / "home") / "dagster.yaml"
    assert installed.read_bytes() == (REPO_ROOT / "dagster.yaml").read_bytes()

    # Named relative to the repository (the Postgres variant ships there), then by absolute path.
    monkeypatch.setenv(DAGSTER_YAML_ENV, "dagster_postgres.yaml")
    prepare_environment(tmp_path / "home")
    assert installed.read_bytes() == (REPO_ROOT / "dagster_postgres.yaml").read_bytes()
    assert b"postgres_db" in installed.read_bytes()
    custom = tmp_path / "mine.yaml"
    custom.write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv(DAGSTER_YAML_ENV, str(custom))
    prepare_environment(tmp_path / "home")
    assert installed.read_text() == custom.read_text()


def test_a_missing_instance_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv(DAGSTER_YAML_ENV, str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match="no such file"):
        prepare_environment(tmp_path / "home")
