"""issue_scores and cleaned_split."""

import json

import dagster as dg

from quality_assets.cleaning import CleaningPolicy
from quality_assets.defs.metadata import markdown_table, thumbnails_markdown
from quality_assets.defs.representation.assets import knn_graph
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.score_run import build_cleaned_split, run_scores
from quality_assets.scoring import ScoreConfig
from quality_assets.store import run_query

EAGER = dg.AutomationCondition.eager()


class ScoreRunConfig(dg.Config):
    alpha: float = 0.1
    q: float = 0.05
    duplicate_alpha: float = 0.1
    duplicate_q: float = 0.05
    near_duplicate_score_kind: str = "combined"
    max_duplicate_distance: float = 0.5
    max_pairs_stored: int = 1_000_000
    pixel_evidence: bool = True
    mirror_copies: bool = True
    pixel_k: int = 8
    max_verified_pairs: int = 2_000_000


@dg.asset(
    group_name="scores",
    deps=[knn_graph],
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    automation_condition=EAGER,
    description="Per-sample scores for every issue type (near_duplicate, off_topic, label_error, leakage, "
    "image properties, low_value) and scored duplicate pairs, all from the one kNN graph.",
)
def issue_scores(context: dg.AssetExecutionContext, config: ScoreRunConfig,
                 store: QualityStoreResource) -> dg.MaterializeResult:
    quality_store = store.store()
    with quality_store.connect() as conn:
        run = run_scores(conn, ScoreConfig(**config.model_dump()))
        summary = run_query(conn, "issue_summary")
        top = {t: run_query(conn, "top_issues", issue_type=t, limit=10)
               for t in ("off_topic", "near_duplicate", "label_error", "leakage")}
        confusion = run_query(conn, "confusion_top", score_version=run.score_version)
        worst_images = run_query(conn, "worst_images_for_thumbnails", limit=8)
    s = run.outputs.summary
    metadata = {
        "score_version": run.score_version,
        "graph_version": run.graph_version,
        "model_version": run.model_version,
        "dagster/row_count": len(run.outputs.issue_rows),
        "near_duplicate_rate": s["near_duplicate_rate"],
        "leakage_rate": s["leakage_rate"],
        "off_topic_rate": s["off_topic_rate"],
        "label_error_rate": s["label_error_rate"],
        "duplicate_groups": s["n_duplicate_groups"],
        "conflicting_duplicate_groups": s["n_conflicting_groups"],
        "issues_by_type": markdown_table(summary, max_rows=30),
        "class_confusion": markdown_table(confusion, max_rows=30),
    }
    for issue_type, frame in top.items():
        metadata[f"top_{issue_type}"] = markdown_table(frame)
    metadata["worst_images"] = thumbnails_markdown(worst_images)
    return dg.MaterializeResult(data_version=dg.DataVersion(run.score_version), metadata=metadata)


class CleaningConfig(dg.Config):
    drop_off_topic: bool = True
    dedupe_groups: bool = True
    drop_train_leaks: bool = True
    relabel_confidence: float = 0.8
    unconfident_label_errors: str = "drop"
    touch_eval_splits: bool = False


@dg.asset(
    group_name="scores",
    deps=[issue_scores],
    pool=DUCKDB_POOL,
    kinds={"duckdb"},
    automation_condition=EAGER,
    description="The manifest after the declared cleaning policy and human review decisions: every row "
    "has an action (keep/drop/relabel) and a reason. Versioned; older versions stay queryable.",
)
def cleaned_split(context: dg.AssetExecutionContext, config: CleaningConfig,
                  store: QualityStoreResource) -> dg.MaterializeResult:
    quality_store = store.store()
    with quality_store.connect() as conn:
        result = build_cleaned_split(conn, CleaningPolicy(**config.model_dump()))
    changed = result.split[result.split.action != "keep"]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(result.split_version),
        metadata={
            "split_version": result.split_version,
            "score_version": result.score_version,
            "dagster/row_count": len(result.split),
            "actions": dg.MetadataValue.json(result.counts["by_action"]),
            "reasons": dg.MetadataValue.json(result.counts["by_reason"]),
            "kept_per_split": dg.MetadataValue.json(result.counts["kept_per_split"]),
            "changes": markdown_table(changed[["path", "split", "original_label", "label", "action", "reason"]]),
        },
    )
