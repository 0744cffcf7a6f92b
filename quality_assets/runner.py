"""Running the audit graph through Dagster from the command line (same assets and checks as the UI).

The CLI uses a persistent Dagster instance under `$QUALITY_HOME/dagster`, so every run it starts
shows up in `qaudit ui` with its logs, metadata and check results.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quality_assets.data_roots import root_text

REPO_ROOT = Path(__file__).resolve().parent.parent

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE_FAILED = 3


class RunConfigError(ValueError):
    """A run config (file or flags) that Dagster would refuse; the message says what and where."""


def load_run_config_file(path: Path) -> dict:
    """A run config as the Dagster UI's launchpad takes it (YAML with `ops:`, `resources:`, ...)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RunConfigError(f"cannot read the config file {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(error, "problem", None) or " ".join(str(error).split())
        raise RunConfigError(f"{path} is not valid YAML{where}: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunConfigError(f"{path}: expected a mapping with ops: / resources: sections (the run config of "
                             f"the Dagster UI's launchpad), not a {type(data).__name__}")
    return data


def merge_run_config(*layers: dict | None) -> dict:
    """Deep-merge run configs; a later layer wins key by key (a non-mapping value replaces)."""
    merged: dict = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge_run_config(merged[key], value)
            else:
                merged[key] = value
    return merged


def validate_run_config(job, run_config: dict) -> None:
    """Raise RunConfigError with Dagster's reasons (and the keys known where a key is unknown)."""
    import dagster as dg

    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as error:
        try:
            known = dg.validate_run_config(job, {})
        except dg.DagsterInvalidConfigError:
            known = {}
        reasons = [_config_error_reason(e, known) for e in error.errors] or [str(error)]
        raise RunConfigError("invalid run config:\n" + "\n".join(f"  - {r}" for r in reasons)) from None


def _config_error_reason(error, known: dict) -> str:
    # Dagster appends the whole expected schema to some messages; name the known keys instead.
    message = error.message.split(" Expected:")[0].rstrip(".")
    if "unexpected config entr" in message:
        node = known
        for level in getattr(error.stack, "levels", []):
            node = node.get(level, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and node:
            message += "; known keys there: " + ", ".join(sorted(node))
    return message


DAGSTER_YAML_ENV = "QUALITY_DAGSTER_YAML"


def prepare_environment(home: Path) -> Path:
    """Point QUALITY_HOME and DAGSTER_HOME at the home; install the instance's dagster.yaml.

    `QUALITY_DAGSTER_YAML` names another instance file to install instead of the repository's
    `dagster.yaml` (e.g. `dagster_postgres.yaml`: runs and events in PostgreSQL)."""
    home = home.resolve()
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    chosen = os.environ.get(DAGSTER_YAML_ENV, "").strip()
    template = REPO_ROOT / "dagster.yaml"
    if chosen:
        template = next((p for p in (Path(chosen), REPO_ROOT / chosen) if p.is_file()), None)
        if template is None:
            raise ValueError(f"{DAGSTER_YAML_ENV}={chosen!r}: no such file (relative paths are tried from the "
                             f"working directory and from {REPO_ROOT})")
    target = dagster_home / "dagster.yaml"
    if template.is_file() and (not target.exists() or target.read_bytes() != template.read_bytes()):
        shutil.copyfile(template, target)
    os.environ["QUALITY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    return dagster_home


@dataclass
class CheckOutcome:
    name: str
    asset: str
    passed: bool
    blocking: bool          # a failure is an error (severity ERROR), not a warning
    description: str
    stops_run: bool = False  # a blocking check in Dagster's sense: it stops downstream assets in the run


@dataclass
class AuditOutcome:
    success: bool
    run_id: str
    materialized: list[str]
    checks: list[CheckOutcome] = field(default_factory=list)
    error: str | None = None
    # Assets that materialized without doing their work, and why (their `skipped` metadata).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def failed_blocking_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.blocking and not c.passed]

    @property
    def exit_code(self) -> int:
        if self.failed_blocking_checks:
            return EXIT_GATE_FAILED
        return EXIT_OK if self.success else EXIT_RUN_FAILED


def run_audit(
    home: Path,
    data_root: Path | str | None,
    drops: list[str] | None = None,
    *,
    extra_op_config: dict | None = None,
    run_config: dict | None = None,
    selection: list[str] | None = None,
    log_level: str = "INFO",
    say: Callable[[str], None] | None = None,
) -> AuditOutcome:
    """Ingest the given drops (if any) and materialize every asset and check of the audit graph.

    `run_config` is a run config as the UI's launchpad takes it (`qaudit audit --config` and its
    flags); the data root, drops and home given here and `extra_op_config` override it. A run config
    Dagster would refuse raises RunConfigError before anything runs.

    First fails any earlier run whose process is gone (releasing its pool slots), then waits for
    runs still alive, telling `say` (default: stderr) what it waits for. Ctrl-C ends the wait.
    """
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    prepare_environment(home)
    import dagster as dg

    from quality_assets.view_graphs import clear_graph_cache

    clear_graph_cache()  # graphs kept in memory serve one run only

    from quality_assets.defs.definitions import ALL_CHECKS, defs

    ops_config: dict = {}
    if data_root is not None:
        ops_config["raw_manifest"] = {"config": {"data_root": root_text(data_root)}}
        if drops:
            ops_config["raw_manifest"]["config"]["drops"] = list(drops)
    for op_name, op_config in (extra_op_config or {}).items():
        ops_config.setdefault(op_name, {"config": {}})["config"].update(op_config)
    run_config = merge_run_config(
        # Progress and summaries at INFO; Dagster's per-event DEBUG lines stay in the run's event log.
        {"loggers": {"console": {"config": {"log_level": log_level}}}},
        run_config,
        {"ops": ops_config, "resources": {"store": {"config": {"home": str(home.resolve())}}}},
    )

    job = defs.resolve_job_def("audit_job")
    if selection:
        job = job.get_subset(asset_selection={dg.AssetKey(key) for key in selection})
    validate_run_config(job, run_config)
    from quality_assets.defs.automation.stale_runs import process_tags, wait_for_active_runs

    with dg.DagsterInstance.get() as instance:
        wait_for_active_runs(instance, say)
        # The tags name this process, so a later audit can tell a killed run from a live one.
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                        tags=process_tags())
        checks_by_key = {
            spec.key: spec for checks_def in ALL_CHECKS for spec in checks_def.check_specs
        }
        outcomes = []
        for evaluation in result.get_asset_check_evaluations():
            spec = checks_by_key.get(evaluation.asset_check_key)
            stops_run = bool(spec.blocking) if spec is not None else False
            outcomes.append(CheckOutcome(
                name=evaluation.check_name,
                asset=evaluation.asset_key.to_user_string(),
                passed=evaluation.passed,
                # The raw data's gates do not stop the run (cleaned_split must still remove what
                # they measure) but a failure with severity ERROR still fails the audit.
                blocking=stops_run or evaluation.severity == dg.AssetCheckSeverity.ERROR,
                description=evaluation.description or "",
                stops_run=stops_run,
            ))
        materialized, skipped = [], {}
        for event in result.get_asset_materialization_events():
            if event.asset_key is None:
                continue
            materialized.append(event.asset_key.to_user_string())
            reason = event.materialization.metadata.get("skipped")
            if reason is not None:
                skipped[materialized[-1]] = str(reason.value)
        error = None
        if not result.success:
            failures = result.get_step_failure_events()
            if failures:
                error = "; ".join(f"{e.step_key}: {_failure_message(e)}" for e in failures)
        return AuditOutcome(success=result.success, run_id=result.run_id, materialized=materialized,
                            checks=outcomes, error=error, skipped=skipped)


def _failure_message(event) -> str:
    error = event.step_failure_data.error if event.step_failure_data else None
    if error is None:
        return "failed"
    # The user-code error is the cause; Dagster wraps it in its own "Error occurred while..." shell.
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
