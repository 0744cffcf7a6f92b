"""Gates on the scores and on the cleaned split. Each check records its evaluation in DuckDB."""

import json

import dagster as dg

from quality_assets.defs.gates import GateThresholds, rate_check_result
from quality_assets.defs.metadata import markdown_table
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.scoring.assets import cleaned_split, issue_scores
from quality_assets.store import run_query

# Each check runs whenever its asset updates, also in runs started by declarative automation.
CHECK_CONDITION = dg.AutomationCondition.eager()


def _summary(conn) -> tuple[str, dict]:
    latest = run_query(conn, "latest_score_summary")
    if latest.empty:
        raise ValueError("no score run: materialize issue_scores first")
    return str(latest.score_version[0]), json.loads(latest.summary_json[0])


@dg.asset_check(asset=issue_scores, blocking=True, pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                description="Near-duplicate rate: samples in a duplicate group beyond its first member / samples.")
def near_duplicate_rate(store: QualityStoreResource, gates: GateThresholds) -> dg.AssetCheckResult:
    with store.store().connect() as conn:
        version, summary = _summary(conn)
        top = run_query(conn, "top_issues", issue_type="near_duplicate", limit=10)
        return rate_check_result(conn, "near_duplicate_rate", summary["near_duplicate_rate"],
                                 gates.max_near_duplicate_rate, blocking=True, version=version,
                                 what="near-duplicate rate",
                                 metadata={"groups": summary["n_duplicate_groups"], "worst": markdown_table(top)})


@dg.asset_check(asset=issue_scores, blocking=True, pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                description="Train/test leakage rate: eval samples with a near duplicate in train / eval samples.")
def leakage_rate(store: QualityStoreResource, gates: GateThresholds) -> dg.AssetCheckResult:
    with store.store().connect() as conn:
        version, summary = _summary(conn)
        worst = run_query(conn, "worst_leak_pairs", limit=10)
        return rate_check_result(conn, "leakage_rate", summary["leakage_rate"], gates.max_leakage_rate,
                                 blocking=True, version=version, what="leakage rate",
                                 metadata={"leaked_eval_samples": summary["n_leaked_eval"],
                                           "eval_samples": summary["n_eval"], "worst_pairs": markdown_table(worst)})


@dg.asset_check(asset=issue_scores, blocking=True, pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                description="Off-topic rate as flagged by the automatic cut-off (warns unless configured to block).")
def off_topic_rate(store: QualityStoreResource, gates: GateThresholds) -> dg.AssetCheckResult:
    with store.store().connect() as conn:
        version, summary = _summary(conn)
        return rate_check_result(conn, "off_topic_rate", summary["off_topic_rate"], gates.max_off_topic_rate,
                                 blocking=gates.off_topic_blocking, version=version, what="off-topic rate")


@dg.asset_check(asset=issue_scores, blocking=True, pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                description="Label-error rate as flagged by the automatic cut-off (warns unless configured to block).")
def label_error_rate(store: QualityStoreResource, gates: GateThresholds) -> dg.AssetCheckResult:
    with store.store().connect() as conn:
        version, summary = _summary(conn)
        return rate_check_result(conn, "label_error_rate", summary["label_error_rate"], gates.max_label_error_rate,
                                 blocking=gates.label_error_blocking, version=version, what="label-error rate")


@dg.asset_check(asset=cleaned_split, blocking=True, pool=DUCKDB_POOL, automation_condition=CHECK_CONDITION,
                description="Leakage left in the cleaned split: kept eval samples whose train copy is also kept.")
def cleaned_leakage_rate(store: QualityStoreResource, gates: GateThresholds) -> dg.AssetCheckResult:
    with store.store().connect() as conn:
        row = run_query(conn, "cleaned_leakage").iloc[0]
        n_eval = int(row.n_eval or 0)
        rate = float(row.n_leaked) / n_eval if n_eval else 0.0
        return rate_check_result(conn, "cleaned_leakage_rate", rate, gates.max_cleaned_leakage_rate,
                                 blocking=True, version=str(row.split_version), what="leakage after cleaning",
                                 metadata={"leaked_eval_samples": int(row.n_leaked), "eval_samples": n_eval})
