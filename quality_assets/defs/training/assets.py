"""The example training consumer the gates protect."""

import dagster as dg

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.representation.assets import embeddings
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.scoring.assets import cleaned_split
from quality_assets.issue_types import iter_gated
from quality_assets.store import arrow_to_vectors, run_query, run_query_arrow
from quality_assets.training_probe import train_probes

def required_gates() -> tuple[str, ...]:
    """The gates this consumer refuses to train past, also in a later manual run: the manifest's,
    every issue type's gate that blocks by default, and the cleaned split's."""
    blocking = tuple(t.gate.rate_key for t in iter_gated() if t.gate.blocking)
    return ("manifest_expectations", *blocking, "cleaned_leakage_rate")


def verify_gates(conn) -> None:
    """Fail with the gate's name and figure when a required gate's latest evaluation failed or is
    missing, or when any gate configured to block failed in its latest evaluation."""
    gates = run_query(conn, "latest_gates").set_index("gate")
    problems = []
    configured = [g for g in gates.index if bool(gates.loc[g, "blocking"]) and g not in required_gates()]
    for gate in (*required_gates(), *configured):
        if gate not in gates.index:
            problems.append(f"gate {gate} has never been evaluated")
            continue
        row = gates.loc[gate]
        if not bool(row.passed):
            problems.append(f"gate {gate} failed: {row.message}")
    if problems:
        raise dg.Failure(
            description="refusing to train on data whose quality gates failed: " + "; ".join(problems),
            metadata={"failed_gates": "; ".join(problems)},
        )


@dg.asset(
    group_name="training",
    # Direct dependencies on every gated asset, so all_deps_blocking_checks_passed covers every gate.
    deps=[raw_manifest, dg.AssetKey("issue_scores"), cleaned_split, embeddings],
    pool=DUCKDB_POOL,
    kinds={"scikitlearn"},
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description="Example downstream training: a linear probe on the embeddings, trained on the cleaned split "
    "and on the raw split, both evaluated on the cleaned eval split. Never runs past a failed gate.",
)
def training_probe(context: dg.AssetExecutionContext, store: QualityStoreResource) -> dg.MaterializeResult:
    with store.store().connect() as conn:
        verify_gates(conn)
        table = run_query_arrow(conn, "probe_inputs")
    frame = table.drop_columns(["vector"]).to_pandas()
    vectors = arrow_to_vectors(table)
    result = train_probes(frame, vectors)
    context.log.info(f"probe accuracy raw {result.accuracy_raw:.4f} -> cleaned {result.accuracy_cleaned:.4f}")
    return dg.MaterializeResult(metadata={
        "accuracy_raw_split": result.accuracy_raw,
        "accuracy_cleaned_split": result.accuracy_cleaned,
        "accuracy_change": result.improvement,
        "train_samples_raw": result.n_train_raw,
        "train_samples_cleaned": result.n_train_cleaned,
        "eval_samples": result.n_eval,
    })
