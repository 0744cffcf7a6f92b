"""issue_scores and cleaned_split."""

import functools

import dagster as dg

from quality_assets.cleaning import CleaningPolicy
from quality_assets.defs.metadata import markdown_table, thumbnails_markdown
from quality_assets.defs.representation.assets import knn_graph
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.scoring.config import score_run_config_class
from quality_assets.issue_types import issue_types
from quality_assets.score_run import build_cleaned_split, run_scores
from quality_assets.scoring import ScoreConfig
from quality_assets.store import run_query

EAGER = dg.AutomationCondition.eager()


def build_issue_scores_asset(run_config_class: type[dg.Config]) -> dg.AssetsDefinition:
    """The `issue_scores` asset with run config generated from the registry (`ScoreRunConfig`); one
    definition per config class."""
    return _issue_scores_asset(run_config_class)


@functools.lru_cache(maxsize=None)
def _issue_scores_asset(run_config_class: type[dg.Config]) -> dg.AssetsDefinition:

    @dg.asset(
        name="issue_scores",
        group_name="scores",
        deps=[knn_graph],
        pool=DUCKDB_POOL,
        kinds={"duckdb"},
        automation_condition=EAGER,
        description="Per-sample scores for every registered issue type and scored duplicate pairs, all from the "
        "stored graphs of the representation stage. Types: " + ", ".join(t.name for t in issue_types()) + ".",
    )
    def issue_scores(context: dg.AssetExecutionContext, config: run_config_class,
                     store: QualityStoreResource) -> dg.MaterializeResult:
        quality_store = store.store()
        shown = [t for t in issue_types() if t.gate is not None or t.cleaning_order is not None]
        with quality_store.connect() as conn:
            run = run_scores(conn, ScoreConfig(config.model_dump()))
            summary = run_query(conn, "issue_summary")
            top = {t.name: run_query(conn, "top_issues", issue_type=t.name, limit=10) for t in shown}
            confusion = run_query(conn, "confusion_top", score_version=run.score_version)
            worst_images = run_query(conn, "worst_images_for_thumbnails", limit=8)
        s = run.summary
        metadata = {
            "score_version": run.score_version,
            # True when this score version (a hash of graphs, manifest, config, code) was already stored.
            "reused": run.reused,
            "graph_version": run.graph_version,
            "model_version": run.model_version,
            "dagster/row_count": run.n_issue_rows,
            "views": ", ".join(s.get("views", [])),
            **{t.gate.rate_key: s[t.gate.rate_key] for t in issue_types() if t.gate is not None and t.gate.rate_key in s},
            "duplicate_groups": s.get("n_duplicate_groups", 0),
            "conflicting_duplicate_groups": s.get("n_conflicting_groups", 0),
            "issues_by_type": markdown_table(summary, max_rows=30),
            "class_confusion": markdown_table(confusion, max_rows=30),
        }
        for issue_type, frame in top.items():
            metadata[f"top_{issue_type}"] = markdown_table(frame)
        metadata["worst_images"] = thumbnails_markdown(worst_images)
        return dg.MaterializeResult(data_version=dg.DataVersion(run.score_version), metadata=metadata)

    return issue_scores


ScoreRunConfig = score_run_config_class()
issue_scores = build_issue_scores_asset(ScoreRunConfig)


class CleaningConfig(dg.Config):
    drop_off_topic: bool = True
    dedupe_groups: bool = True
    drop_train_leaks: bool = True
    relabel_confidence: float = 0.8
    unconfident_label_errors: str = "drop"
    touch_eval_splits: bool = False
    # Component policies over duplicate groups (quality_assets/scores/component_policies.py), off by default.
    prune_bad_components: bool = False
    component_variance_threshold: float = 0.45
    component_variance_kind: str = "plain"
    prune_component_images: bool = False
    component_image_min_ratio: float = 0.5
    intersect_component_labels: bool = False
    prune_component_labels: bool = False
    component_label_min_ratio: float = 0.5


@dg.asset(
    group_name="scores",
    deps=[dg.AssetKey("issue_scores")],
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
            "reused": result.reused,
            "score_version": result.score_version,
            "dagster/row_count": len(result.split),
            "actions": dg.MetadataValue.json(result.counts["by_action"]),
            "reasons": dg.MetadataValue.json(result.counts["by_reason"]),
            "kept_per_split": dg.MetadataValue.json(result.counts["kept_per_split"]),
            "changes": markdown_table(changed[["path", "split", "original_label", "label", "action", "reason"]]),
        },
    )
