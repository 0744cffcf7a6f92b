"""Gates on the scores (one per issue type that declares a rate) and on the cleaned split. Each check
records its evaluation in DuckDB.

Which gate stops what:
- The raw data's gates (one per gated issue type, on `issue_scores`) judge the data as it came in.
  They are not blocking checks in Dagster's sense, so they never stop `cleaned_split`, the step
  that removes what they measure (the leaked train copies, the extra members of a duplicate
  group). A gate configured to block (`<type>_blocking`) fails with severity ERROR, is recorded
  with `blocking` in `gate_results`, fails `qaudit audit` with exit code 3, and stops training on
  the raw data (`verify_gates(conn, "raw")`).
- The cleaned split's gates (`CLEANED_SPLIT_GATES`, on `cleaned_split`) are blocking checks: the
  training consumer, which trains on the cleaned split, never runs past them.
"""

import json

import dagster as dg

from quality_assets.defs.gates import rate_check_result
from quality_assets.defs.metadata import markdown_table
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.issue_types import IssueType, iter_gated
from quality_assets.store import run_query

# Each check runs whenever its asset updates, also in runs started by declarative automation.
CHECK_CONDITION = dg.AutomationCondition.eager()
ISSUE_SCORES = dg.AssetKey("issue_scores")


def _summary(conn) -> tuple[str, dict]:
    latest = run_query(conn, "latest_score_summary")
    if latest.empty:
        raise ValueError("no score run: materialize issue_scores first")
    return str(latest.score_version[0]), json.loads(latest.summary_json[0])


def build_rate_check(issue_type: IssueType, thresholds_class: type[dg.ConfigurableResource]) -> dg.AssetChecksDefinition:
    """The raw data's gate of one issue type: its summary rate against `max_<rate>`; severity ERROR
    (it blocks training on the raw data) or WARN per `<type>_blocking`."""
    spec = issue_type.gate

    # blocking=False on the definition: the raw data's gate must not stop cleaned_split in the same
    # run (see the module docstring). The cleaned split's own gates block the training consumer.
    @dg.asset_check(asset=ISSUE_SCORES, name=spec.rate_key, blocking=False, pool=DUCKDB_POOL,
                    automation_condition=CHECK_CONDITION, description=spec.description)
    def rate_check(store: QualityStoreResource, gates: thresholds_class) -> dg.AssetCheckResult:
        with store.store().connect() as conn:
            version, summary = _summary(conn)
            worst = run_query(conn, spec.worst_query, issue_type=issue_type.name, limit=10) \
                if spec.worst_query == "top_issues" else run_query(conn, spec.worst_query, limit=10)
            metadata = {key: summary.get(key) for key in spec.metadata_keys}
            metadata["worst"] = markdown_table(worst)
            return rate_check_result(conn, spec.rate_key, float(summary.get(spec.rate_key, 0.0)),
                                     getattr(gates, f"max_{spec.rate_key}"),
                                     blocking=getattr(gates, f"{issue_type.name}_blocking"), version=version,
                                     what=spec.what, metadata=metadata)

    return rate_check


def build_rate_checks(thresholds_class: type[dg.ConfigurableResource]) -> list[dg.AssetChecksDefinition]:
    return [build_rate_check(t, thresholds_class) for t in iter_gated()]


# The gates on the cleaned split: blocking checks the training consumer must pass.
CLEANED_SPLIT_GATES = ("cleaned_leakage_rate",)


def build_cleaned_leakage_check(thresholds_class: type[dg.ConfigurableResource]) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey("cleaned_split"), name="cleaned_leakage_rate", blocking=True,
                    pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                    description="Leakage left in the cleaned split: kept eval samples whose train copy is also kept.")
    def cleaned_leakage_rate(store: QualityStoreResource, gates: thresholds_class) -> dg.AssetCheckResult:
        with store.store().connect() as conn:
            row = run_query(conn, "cleaned_leakage").iloc[0]
            n_eval = int(row.n_eval or 0)
            rate = float(row.n_leaked) / n_eval if n_eval else 0.0
            return rate_check_result(conn, "cleaned_leakage_rate", rate, gates.max_cleaned_leakage_rate,
                                     blocking=True, version=str(row.split_version), what="leakage after cleaning",
                                     metadata={"leaked_eval_samples": int(row.n_leaked), "eval_samples": n_eval})

    return cleaned_leakage_rate
