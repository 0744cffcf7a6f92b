"""Drop checks: does the latest drop look like the data before it? (`quality_assets.scores.drop_shift`)

Severity WARN, never blocking: a drop of new classes or another domain may be intended, but a person
must hear of it. The label checks sit on `raw_manifest` (they run in the drop's own ingest run), the
domain check on `issue_scores` (it reads the stored SSL graph and the off-topic scores). Every
evaluation is recorded in `gate_results` with the drop id as its version; the domain check's adds the
score version it read, so a re-run on the same scores reuses its verdict (its permutation test is the
costliest check: 6 s at 100k samples).
"""

import hashlib

import dagster as dg

from quality_assets.code_version import code_version
from quality_assets.defs.gates import record_gate
from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.scores.drop_shift import (
    CLASS_BALANCE, FOREIGN_DOMAIN, NEW_LABELS, DropBatch, DropVerdict, judge_class_balance,
    judge_foreign_domain, judge_new_labels,
)
from quality_assets.store import run_query

CHECK_CONDITION = dg.AutomationCondition.eager()


def _result(conn, verdict: DropVerdict, version: str | None = None, **check_key) -> dg.AssetCheckResult:
    return _record(conn, verdict.check, passed=verdict.passed, value=verdict.value, line=verdict.line,
                   drop_id=verdict.drop_id, version=version or verdict.drop_id, details=verdict.details,
                   **check_key)


def _record(conn, check: str, *, passed: bool, value: float | None, line: str, drop_id: str | None,
            version: str | None, details: dict | None = None, reused: bool = False,
            **check_key) -> dg.AssetCheckResult:
    """Record one evaluation in `gate_results` (never blocking) and return it as a WARN check result
    (`check_key`: its asset_key and check_name, where the step evaluates more than one check)."""
    record_gate(conn, check, passed=passed, value=value, threshold=None, blocking=False, version=version,
                message=line)
    metadata = {"drop_id": drop_id or "", "value": value, "reused": reused}
    if details is not None:
        metadata["details"] = dg.MetadataValue.json(details)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, description=line,
                               metadata=metadata, **check_key)


def _scored_version(conn, drop_id: str | None) -> str | None:
    """`<drop id>@<hash>` of the score run the domain check reads and the check's code; None
    without a drop or a score run."""
    latest = run_query(conn, "latest_score_run")
    if drop_id is None or latest.empty:
        return None
    digest = hashlib.sha256(f"{latest.score_version[0]}|{code_version('quality_assets.scores.drop_shift')}".encode())
    return f"{drop_id}@{digest.hexdigest()[:12]}"


def _reused(conn, check: str, version: str | None, drop_id: str | None) -> dg.AssetCheckResult | None:
    """The stored verdict of this version, recorded again as the newest; None when there is none."""
    stored = run_query(conn, "stored_gate_result", gate=check, version=version) if version else None
    if stored is None or stored.empty:
        return None
    row = stored.iloc[0]
    value = None if row.value is None or row.value != row.value else float(row.value)
    return _record(conn, check, passed=bool(row.passed), value=value, line=str(row.message), drop_id=drop_id,
                   version=version, reused=True)


# One step for both label checks: they read the same drop batch, and a step costs about 0.1 s of
# Dagster's own work, a tenth of the target for a 1% drop at 10k samples.
@dg.multi_asset_check(
    name="drop_label_checks", pool=DUCKDB_POOL, can_subset=True,
    specs=[
        dg.AssetCheckSpec(NEW_LABELS, asset=raw_manifest, blocking=False, automation_condition=CHECK_CONDITION,
                          description="Warns when the latest drop brings labels no earlier sample has "
                          "(named, with counts)."),
        dg.AssetCheckSpec(CLASS_BALANCE, asset=raw_manifest, blocking=False, automation_condition=CHECK_CONDITION,
                          description="Warns when the latest drop's label distribution differs from the earlier "
                          "data's (chi-square test, Monte Carlo p-value, and a total variation distance of at "
                          "least 0.1); names the labels that moved most."),
    ])
def drop_label_checks(context: dg.AssetCheckExecutionContext, store: QualityStoreResource):
    judges = {NEW_LABELS: judge_new_labels, CLASS_BALANCE: judge_class_balance}
    selected = {key.name for key in context.selected_asset_check_keys}
    with store.store().connect() as conn:
        batch = DropBatch.from_frame(run_query(conn, "drop_latest_batch"))
        for name, judge in judges.items():
            if name in selected:
                yield _result(conn, judge(batch), asset_key=raw_manifest.key, check_name=name)


@dg.asset_check(asset=dg.AssetKey("issue_scores"), name=FOREIGN_DOMAIN, blocking=False, pool=DUCKDB_POOL,
                automation_condition=CHECK_CONDITION,
                description="Warns when the latest drop's images form their own region of the SSL kNN graph "
                "instead of mixing with the earlier images (permutation test), or score as off-topic more "
                "than the earlier images (Mann-Whitney U).")
def drop_foreign_domain(store: QualityStoreResource) -> dg.AssetCheckResult:
    from quality_assets.view_graphs import load_graph

    with store.store().connect() as conn:
        batch = DropBatch.from_frame(run_query(conn, "drop_latest_batch"))
        version = _scored_version(conn, batch.drop_id)
        if (reused := _reused(conn, FOREIGN_DOMAIN, version, batch.drop_id)) is not None:
            return reused
        off_topic = run_query(conn, "drop_off_topic_scores")
        try:
            graph_ids, graph, _, _ = load_graph(conn, "ssl")
            neighbors = graph.neighbors
        except ValueError:  # no graph yet: the off-topic evidence alone
            graph_ids, neighbors = None, None
        return _result(conn, judge_foreign_domain(batch, graph_ids=graph_ids, neighbors=neighbors,
                                                  off_topic=off_topic), version)


DROP_CHECKS = [drop_label_checks, drop_foreign_domain]
