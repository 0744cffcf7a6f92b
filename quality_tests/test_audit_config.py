"""`qaudit audit --config FILE.yaml`: the launchpad's run config from a file, common settings as flags
(flags win), and a clear usage error (exit code 2, no traceback) for a file Dagster would refuse."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets import cli
from quality_tests.imagefolders import make_imagefolder

QAUDIT = str(Path(sys.executable).with_name("qaudit"))

CONFIG = """\
# As the Dagster UI's launchpad takes it.
ops:
  ssl_model:
    config:
      epochs: 1
      batch_size: 16
resources:
  gates:
    config:
      max_leakage_rate: 0.42
      max_near_duplicate_rate: 0.5   # the flag below overrides this one
"""


@pytest.fixture(autouse=True)
def _cli_in_process_leaves_no_trace(monkeypatch):
    """`cli.main` installs its signal handlers and lock notice; put the test process's back."""
    import quality_assets.store as store_module

    monkeypatch.setattr(store_module, "lock_wait_notice", store_module.lock_wait_notice)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _qaudit(*args, home):
    env = {**os.environ, "QUALITY_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)  # the home's own Dagster instance: HOME/dagster
    return subprocess.run([QAUDIT, *args], capture_output=True, text=True, env=env, timeout=900)


def test_a_config_file_and_flags_reach_the_run(tmp_path):
    data, home, config = tmp_path / "data", tmp_path / "home", tmp_path / "run.yaml"
    make_imagefolder(data, {"train": {"a": 12, "b": 12}, "test": {"a": 4, "b": 4}})
    config.write_text(CONFIG)
    audited = _qaudit("audit", str(data), "--home", str(home), "--config", str(config),
                      "--max-near-duplicate-rate", "0.9", "--no-leakage-blocking", home=home)
    assert audited.returncode in (0, 3), audited.stderr[-3000:]
    run_id = re.search(r"^run (\S+): ", audited.stdout, re.MULTILINE).group(1)

    conn = duckdb.connect(str(home / "quality.duckdb"), read_only=True)
    try:
        gates = {gate: (threshold, blocking) for gate, threshold, blocking in conn.execute(
            "SELECT gate, threshold, blocking FROM latest_gate_results").fetchall()}
        [(epochs,)] = conn.execute("SELECT epochs FROM ssl_models").fetchall()
    finally:
        conn.close()
    assert gates["leakage_rate"] == (pytest.approx(0.42), False)        # file, and the blocking flag
    assert gates["near_duplicate_rate"] == (pytest.approx(0.9), True)   # the flag over the file
    assert gates["off_topic_rate"][0] == pytest.approx(0.10)            # untouched: the default
    assert epochs == 1

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run_config = instance.get_run_by_id(run_id).run_config
    assert run_config["ops"]["ssl_model"]["config"] == {"epochs": 1, "batch_size": 16}
    assert run_config["ops"]["raw_manifest"]["config"]["data_root"] == str(data.resolve())
    assert run_config["resources"]["gates"]["config"] == {
        "max_leakage_rate": 0.42, "max_near_duplicate_rate": 0.9, "leakage_blocking": False}


def test_a_config_file_dagster_refuses_is_a_usage_error(tmp_path):
    data, home, config = tmp_path / "data", tmp_path / "home", tmp_path / "run.yaml"
    make_imagefolder(data, {"train": {"a": 2}})
    config.write_text("ops:\n  ssl_model:\n    config:\n      epochz: 1\n")
    result = _qaudit("audit", str(data), "--home", str(home), "--config", str(config), home=home)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'unexpected config entry "epochz" at path root:ops:ssl_model:config' in result.stderr
    assert "known keys there: " in result.stderr and "epochs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "quality.duckdb").exists()  # refused before anything ran


@pytest.mark.parametrize("content, expected", [
    ("ops: [1, 2\n", "is not valid YAML (line 2, column 1)"),
    ("- ops\n", "expected a mapping with ops: / resources: sections"),
    ("opz: {}\n", 'unexpected config entry "opz" at the root; known keys there: execution, loggers, ops, resources'),
    ("resources:\n  gates:\n    config:\n      max_leakage_rate: lots\n",
     'root:resources:gates:config:max_leakage_rate. Value "lots"'),
    ("resources:\n  gates:\n    config:\n      max_leak_rate: 0.1\n", 'unexpected config entry "max_leak_rate"'),
    (None, "cannot read the config file"),
])
def test_bad_config_files_are_named_with_the_reason(tmp_path, capsys, content, expected):
    data, config = tmp_path / "data", tmp_path / "run.yaml"
    make_imagefolder(data, {"train": {"a": 2}})
    if content is not None:
        config.write_text(content)
    code = cli.main(["audit", str(data), "--home", str(tmp_path / "home"), "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "home" / "quality.duckdb").exists()


def test_an_unknown_flag_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["audit", str(tmp_path), "--max-leakage-rat", "0.1", "--max-nonsense-rate", "0.2"])
    assert exit_info.value.code == 2
    assert "--max-nonsense-rate" in capsys.readouterr().err
