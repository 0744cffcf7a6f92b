"""The example training consumer the gates protect."""

import hashlib
import json
import time
from typing import TYPE_CHECKING

import dagster as dg

from quality_assets.code_version import code_version
from quality_assets.consumer_results import (
    probe_accuracies, record_consumer_result, reuse_consumer_result, seeds_won_by_cleaning,
)

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.representation.assets import embeddings
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.defs.scoring.assets import cleaned_split
from quality_assets.defs.scoring.checks import CLEANED_SPLIT_GATES
from quality_assets.issue_types import iter_gated
from quality_assets.store import arrow_to_vectors, run_query, run_query_arrow
from quality_assets.training_probe import consumer_skip_reason, train_probes

if TYPE_CHECKING:  # imported where the CNN consumer runs, as _cnn_consumer does
    from quality_assets.consumer_cnn import ConsumerResult

CONSUMERS = ("linear", "cnn")


class TrainingConsumerConfig(dg.Config):
    """`linear` (default, seconds): a logistic regression on the embeddings. `cnn`: a small CNN
    trained from scratch on the pixels, raw and cleaned train split, `cnn_seeds` seeds (minutes)."""

    consumer: str = "linear"
    cnn_arch: str = "test_resnet"
    cnn_epochs: int = 15
    cnn_seeds: list[int] = [0, 1, 2]

MANIFEST_GATE = "manifest_expectations"


def raw_data_gates() -> tuple[str, ...]:
    """The raw data's gates: one per issue type that declares a rate."""
    return tuple(t.gate.rate_key for t in iter_gated())


def required_gates(data: str = "cleaned") -> tuple[str, ...]:
    """The gates a consumer refuses to train past, also in a later manual run.

    `cleaned` (training on the cleaned split, like `training_probe`): the manifest's gate and the
    cleaned split's gates. `raw` (training on the raw manifest): the manifest's gate and every raw
    data gate that blocks by default."""
    if data == "cleaned":
        return (MANIFEST_GATE, *CLEANED_SPLIT_GATES)
    if data == "raw":
        return (MANIFEST_GATE, *(t.gate.rate_key for t in iter_gated() if t.gate.blocking))
    raise ValueError(f"data must be 'cleaned' or 'raw', not {data!r}")


def verify_gates(conn, data: str = "cleaned") -> None:
    """Fail with the gate's name and figure when a required gate's latest evaluation failed or is
    missing, or when another gate of the same data that is configured to block failed in its latest
    evaluation. The raw data's gates never stop training on the cleaned split, which removes what
    they measure; the cleaned split's gates never stop training on the raw data."""
    gates = run_query(conn, "latest_gates").set_index("gate")
    scope = {MANIFEST_GATE, *(CLEANED_SPLIT_GATES if data == "cleaned" else raw_data_gates())}
    required = required_gates(data)
    problems = []
    configured = [g for g in gates.index if bool(gates.loc[g, "blocking"]) and g in scope and g not in required]
    for gate in (*required, *configured):
        if gate not in gates.index:
            problems.append(f"gate {gate} has never been evaluated")
            continue
        row = gates.loc[gate]
        if not bool(row.passed):
            problems.append(f"gate {gate} failed: {row.message}")
    if problems:
        raise dg.Failure(
            description=f"refusing to train on the {data} data: its quality gates failed: " + "; ".join(problems),
            metadata={"failed_gates": "; ".join(problems)},
        )


@dg.asset(
    group_name="training",
    # Direct dependencies on the gated assets, so all_deps_blocking_checks_passed covers the blocking
    # gates: the manifest's and the cleaned split's. The raw data's gates on issue_scores are not
    # blocking checks: this consumer trains on the cleaned split, which removed what they measure.
    deps=[raw_manifest, dg.AssetKey("issue_scores"), cleaned_split, embeddings],
    pool=DUCKDB_POOL,
    kinds={"scikitlearn"},
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description="Example downstream training: a linear probe on the embeddings, trained on the cleaned split "
    "(and, as the baseline it is compared with, on the raw split), both evaluated on the cleaned eval split. "
    "With `consumer: cnn`, a small CNN trained from scratch on the pixels instead (PETA's four raw/cleaned "
    "experiments, the trusted split as clean eval, mean and spread over seeds). "
    "Never runs past a failed gate of the manifest or the cleaned split. Each run's accuracies (per seed and "
    "experiment) are stored in `consumer_runs` / `consumer_accuracies` and shown in the report.",
)
def training_probe(context: dg.AssetExecutionContext, store: QualityStoreResource,
                   config: TrainingConsumerConfig) -> dg.MaterializeResult:
    if config.consumer not in CONSUMERS:
        raise dg.Failure(description=f"consumer must be one of {', '.join(CONSUMERS)}, not {config.consumer!r}")
    with store.store().connect() as conn:
        verify_gates(conn)
        split_version, version = _consumer_version(conn, config)
        # The same split, config and code as the last materialization: its figures stand, as long
        # as the store still has them (a store from before the consumer tables trains once more).
        previous = context.instance.get_latest_materialization_event(context.asset_key)
        metadata = previous.asset_materialization.metadata if previous and previous.asset_materialization else {}
        if (version and getattr(metadata.get("consumer_version"), "value", None) == version
                and reuse_consumer_result(conn, version)):
            return dg.MaterializeResult(metadata={**metadata, "reused": True})
        if config.consumer == "cnn":
            frame = run_query(conn, "consumer_inputs")
        else:
            table = run_query_arrow(conn, "probe_inputs")
            frame = table.drop_columns(["vector"]).to_pandas()
    skipped = consumer_skip_reason(frame, config.consumer)
    if skipped:
        # Not a failure: the audit stands, and the data has no train or no eval split to compare on.
        context.log.warning(f"{config.consumer} consumer skipped: {skipped}")
        return dg.MaterializeResult(metadata={"consumer": config.consumer, "skipped": skipped,
                                              "consumer_version": version, "reused": False})
    # Training runs without the store's lock; the results are written in one short transaction after.
    if config.consumer == "cnn":
        cnn, metadata = _cnn_consumer(context, frame, config)
        accuracies, seconds = cnn.per_seed, cnn.seconds
    else:
        started = time.perf_counter()
        result = train_probes(frame, arrow_to_vectors(table))
        context.log.info(f"probe accuracy raw {result.accuracy_raw:.4f} -> cleaned {result.accuracy_cleaned:.4f}")
        accuracies, seconds = probe_accuracies(result), time.perf_counter() - started
        metadata = {
            "accuracy_raw_split": result.accuracy_raw,
            "accuracy_cleaned_split": result.accuracy_cleaned,
            "accuracy_change": result.improvement,
            "train_samples_raw": result.n_train_raw,
            "train_samples_cleaned": result.n_train_cleaned,
            "eval_samples": result.n_eval,
            "eval_set": result.eval_set,
            "consumer": "linear",
        }
    if version:
        with store.store().connect() as conn:
            record_consumer_result(conn, consumer_version=version, split_version=split_version,
                                   consumer=config.consumer, accuracies=accuracies, config=config.model_dump(),
                                   seconds=seconds)
    return dg.MaterializeResult(metadata={**metadata, "consumer_version": version, "reused": False})


def _consumer_version(conn, config: TrainingConsumerConfig) -> tuple[str, str]:
    """(split version, consumer version): the latest cleaned split's version (it fixes the model,
    the scores and the policy), and a hash of it with the consumer's config and its code; ("", "")
    when there is no split yet."""
    split = run_query(conn, "app_split_version")
    if split.empty:
        return "", ""
    split_version = str(split.split_version[0])
    return split_version, hashlib.sha256("|".join([
        split_version, json.dumps(config.model_dump(), sort_keys=True),
        code_version("quality_assets.training_probe", "quality_assets.consumer_cnn",
                     sql=("probe_inputs", "consumer_inputs", "app_split_version"))]).encode()).hexdigest()[:16]


def _cnn_consumer(context: dg.AssetExecutionContext, frame,
                  config: TrainingConsumerConfig) -> "tuple[ConsumerResult, dict]":
    from quality_assets.consumer_cnn import CnnConfig, consumer_experiments_from_frame, load_images

    cnn = CnnConfig(arch=config.cnn_arch, epochs=config.cnn_epochs)
    try:
        images = load_images(frame["file"].tolist(), cnn.image_size, max_size=cnn.max_image_size)
        result = consumer_experiments_from_frame(frame, images, seeds=config.cnn_seeds, config=cnn)
    except (ValueError, OSError) as err:
        raise dg.Failure(description=f"the CNN consumer cannot train on this split: {err}") from err
    # The headline pair is scored on the trusted split when there is one (labels nobody doubts).
    eval_set = "clean" if "clean" in set(result.summary["eval"]) else "cleaned"
    raw, _ = result.figure("raw", eval_set)
    cleaned, _ = result.figure("cleaned", eval_set)
    per_seed = result.per_seed[result.per_seed["eval"] == eval_set]
    won, paired = seeds_won_by_cleaning(per_seed[per_seed["train"] == "raw"], per_seed[per_seed["train"] == "cleaned"])
    context.log.info(f"CNN accuracy raw {raw:.4f} -> cleaned {cleaned:.4f} ({result.seconds:.0f}s)")
    return result, {
        "consumer": "cnn",
        "eval_set": "trusted" if eval_set == "clean" else "cleaned eval",
        "accuracy_raw_split": raw,
        "accuracy_cleaned_split": cleaned,
        "accuracy_change": cleaned - raw,
        # Paired by seed (one seed trains both models): a gain in most seeds says more than the means.
        "seeds_won": dg.MetadataValue.int(won) if won is not None else dg.MetadataValue.null(),
        "seeds_paired": paired,
        **result.metadata(),
        "cnn_experiments": dg.MetadataValue.md(result.summary.to_markdown(index=False, floatfmt=".4f")),
        "cnn_config": dg.MetadataValue.json(result.config),
        "cnn_seconds": result.seconds,
    }
