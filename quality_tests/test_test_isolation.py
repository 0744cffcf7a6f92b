"""Tests never touch a real home: not through `make test` (which used to point DAGSTER_HOME at the
demo's instance, so test runs showed up in the demo's UI), not through a plain `pytest` in a shell
that exported the demo's homes."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def isolation_probe() -> int:
    return 1


def test_runs_land_in_the_test_process_own_instance():
    # Also run by the next test in a child pytest whose shell exported a "demo" home.
    homes = Path(tempfile.gettempdir()).resolve()
    dagster_home = Path(os.environ["DAGSTER_HOME"]).resolve()
    assert dagster_home.is_relative_to(homes) and dagster_home.parent.parent.name.startswith("quality_tests_")
    assert Path(os.environ["QUALITY_HOME"]).resolve().is_relative_to(homes)
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([isolation_probe], instance=instance)
        assert result.success and instance.get_run_by_id(result.run_id) is not None
        assert Path(instance.root_directory).resolve() == dagster_home


def _demo_home(tmp_path: Path) -> Path:
    demo = tmp_path / "demo"
    (demo / "dagster").mkdir(parents=True)
    (demo / "dagster" / "dagster.yaml").write_bytes((REPO / "dagster.yaml").read_bytes())
    return demo


def test_plain_pytest_keeps_runs_out_of_the_homes_the_shell_exported(tmp_path):
    demo = _demo_home(tmp_path)
    env = {**os.environ, "QUALITY_HOME": str(demo), "DAGSTER_HOME": str(demo / "dagster")}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{Path(__file__).relative_to(REPO)}::test_runs_land_in_the_test_process_own_instance"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    # Nothing was written there: no run storage, no event log, no quality.duckdb.
    assert sorted(p.name for p in demo.rglob("*")) == ["dagster", "dagster.yaml"]


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A BIN folder whose `python` records the environment `make` gives it instead of running pytest."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record.txt"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$QUALITY_HOME\" \"$DAGSTER_HOME\" \"$*\" > '{record}'\n"
        "[ -d \"$DAGSTER_HOME\" ] || exit 9\n"
        "exit \"${FAKE_PYTEST_EXIT:-0}\"\n"
    )
    python.chmod(0o755)
    (bin_dir / ".installed").touch()  # newer than pyproject.toml: `make` skips the install
    return bin_dir, record


def _make(target: str, bin_dir: Path, demo: Path, exit_code: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "QUALITY_HOME": str(demo), "DAGSTER_HOME": str(demo / "dagster"),
           "FAKE_PYTEST_EXIT": str(exit_code)}
    env.pop("MAKEFLAGS", None)
    return subprocess.run(["make", "-s", "-C", str(REPO), target, f"BIN={bin_dir}"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_make_test_runs_pytest_against_temporary_homes_it_removes(tmp_path):
    bin_dir, record = _fake_venv(tmp_path)
    demo = _demo_home(tmp_path)
    # `make test` runs its suite in two pytest-xdist workers; the others in one process.
    for target, marker in (("test", "-m not slow -n 2"), ("test-slow", "-m slow"), ("test-all", "-q")):
        made = _make(target, bin_dir, demo)
        assert made.returncode == 0, made.stderr
        quality_home, dagster_home, args = record.read_text().splitlines()
        assert args.startswith("-m pytest") and args.endswith(marker), args
        assert Path(dagster_home) == Path(quality_home) / "dagster"
        assert not Path(quality_home).is_relative_to(demo) and not Path(quality_home).is_relative_to(REPO)
        assert not Path(quality_home).parent.exists(), "the temporary homes are left behind"
    assert sorted(p.name for p in demo.rglob("*")) == ["dagster", "dagster.yaml"]

    # A failing suite still fails the target; `test-slow` with no slow test (pytest's 5) does not.
    assert _make("test", bin_dir, demo, exit_code=1).returncode != 0
    assert _make("test-slow", bin_dir, demo, exit_code=5).returncode == 0
