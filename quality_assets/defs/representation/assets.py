"""ssl_model, embeddings and knn_graph: the learned representation and the one shared graph."""


import dagster as dg

from quality_assets.defs.ingest.assets import raw_manifest
from quality_assets.defs.resources import DUCKDB_POOL, QualityStoreResource
from quality_assets.representation import ModelOptions, embed_missing, ensure_model, thumbnail_missing
from quality_assets.view_graphs import build_graph, build_pixel_views, build_property_view
from quality_assets.store import run_query


class SSLModelConfig(dg.Config):
    """Which embedder to use and how to train it. Zeros / empty strings mean "the default for the data"."""

    embedder: str = "dino"
    arch: str = ""
    image_size: int = 0
    epochs: int = 0
    batch_size: int = 0
    device: str = "auto"
    seed: int = 0
    time_budget_s: float = 0.0
    max_growth_fraction: float = 0.2
    force_retrain: bool = False
    checkpoint_file: str = ""
    embeddings_file: str = ""
    decode_ram_budget: str = ""  # e.g. "8GiB": decoded images held in RAM at most (ModelOptions)


@dg.asset(
    group_name="representation",
    deps=[raw_manifest],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "duckdb"},
    automation_condition=dg.AutomationCondition.eager(),
    description="DINO self-distillation trained on the dataset itself (no labels, no outside weights). "
    "Retrains by policy: first run, config or code change, or data growth beyond a fraction.",
)
def ssl_model(context: dg.AssetExecutionContext, config: SSLModelConfig,
              store: QualityStoreResource) -> dg.MaterializeResult:
    quality_store = store.store()
    options = ModelOptions(**config.model_dump())
    # The store, not an open connection: the database stays readable while the model trains.
    record = ensure_model(quality_store, quality_store, options, progress=context.log.info)
    row = record.row
    metadata: dict = {
        "model_version": record.model_version,
        "embedder": record.embedder_kind,
        "retrained": record.retrained,
        "decision": record.reason,
    }
    for key in ("arch", "epochs", "final_loss", "images_per_s", "seconds", "stopped_by_budget", "device",
                "n_samples_trained", "dim", "checkpoint_path"):
        value = row.get(key)
        if value is not None and value == value:  # skip NULL/NaN
            metadata[key] = value.item() if hasattr(value, "item") else value
    curve = row.get("loss_curve")
    if curve is not None and len(curve):
        metadata["loss_curve"] = dg.MetadataValue.md(_loss_curve_markdown([float(x) for x in curve]))
    return dg.MaterializeResult(data_version=dg.DataVersion(record.model_version), metadata=metadata)


def _loss_curve_markdown(curve: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(curve), max(curve)
    spark = "".join(bars[int((v - low) / (high - low + 1e-12) * (len(bars) - 1))] for v in curve)
    rows = "\n".join(f"| {i + 1} | {v:.4f} |" for i, v in enumerate(curve))
    return f"`{spark}`\n\n| epoch | loss |\n|---|---|\n{rows}"


@dg.asset(
    group_name="representation",
    deps=[ssl_model],
    pool=DUCKDB_POOL,
    kinds={"pytorch", "duckdb"},
    automation_condition=dg.AutomationCondition.eager(),
    description="L2-normalised vectors per (sample_id, model_version). Incremental: only samples "
    "without a vector for the current model are embedded.",
)
def embeddings(context: dg.AssetExecutionContext, store: QualityStoreResource) -> dg.MaterializeResult:
    quality_store = store.store()
    with quality_store.connect() as conn:
        latest = run_query(conn, "latest_model")
    if latest.empty:
        raise ValueError("no model registered: materialize ssl_model first")
    from quality_assets.representation import ModelRecord

    row = latest.iloc[0].to_dict()
    model = ModelRecord(row["model_version"], row["embedder_kind"], False, "latest", row)
    # The store, not an open connection: each chunk's vectors are written in a short transaction
    # and the database stays readable while images are embedded.
    stats = embed_missing(quality_store, quality_store, model,
                          progress=lambda done, total: context.log.info(f"embedded {done}/{total}"))
    # Pixel-level copy evidence needs a thumbnail per sample; only samples lacking one are read.
    thumbs = thumbnail_missing(quality_store,
                               progress=lambda done, total: context.log.info(f"thumbnails {done}/{total}"))
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{stats.model_version}:{stats.n_total}"),
        metadata={
            "model_version": stats.model_version,
            "embedded_now": stats.n_embedded,
            "dagster/row_count": stats.n_total,
            "images_per_s": round(stats.images_per_s, 1),
            "seconds": round(stats.seconds, 2),
            "thumbnails_made_now": thumbs.n_made,
            "thumbnails_unreadable": thumbs.n_unreadable,
            "thumbnail_seconds": round(thumbs.seconds, 2),
        },
    )


class KnnConfig(dg.Config):
    k: int = 16
    method: str = "auto"  # auto | flat | ivf | hnsw
    seed: int = 0
    pixel_k: int = 16        # neighbours per image in the pixel view's graph
    copy_candidate_k: int = 8  # thumbnail copy candidates per image (mirrors included)


@dg.asset(
    group_name="representation",
    deps=[embeddings],
    pool=DUCKDB_POOL,
    kinds={"faiss", "duckdb"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The kNN graph of every stored view, as edge tables: the SSL embedding (exact up to a size "
    "limit, approximate beyond, recall recorded), the pixel view (thumbnails) and its copy-candidate pairs. "
    "Every score reads these graphs; none is rebuilt while scoring.",
)
def knn_graph(context: dg.AssetExecutionContext, config: KnnConfig,
              store: QualityStoreResource) -> dg.MaterializeResult:
    quality_store = store.store()
    with quality_store.connect() as conn:
        latest = run_query(conn, "latest_model")
        if latest.empty:
            raise ValueError("no model registered: materialize ssl_model first")
        record = build_graph(conn, str(latest.model_version[0]), config.k, method=config.method, seed=config.seed)
        pixel_views = build_pixel_views(conn, k=config.pixel_k, copy_k=config.copy_candidate_k,
                                        method=config.method, seed=config.seed)
        pixel_views += build_property_view(conn, k=config.k)
    return dg.MaterializeResult(
        data_version=dg.DataVersion("+".join([record.graph_version, *(v.graph_version for v in pixel_views)])),
        metadata={
            "graph_version": record.graph_version,
            # True when every view's version (a hash of its inputs) was already stored: nothing was built.
            "reused": all(v.reused for v in [record, *pixel_views]),
            "built": dg.MetadataValue.json({v.view: v.built for v in [record, *pixel_views]}),
            "model_version": record.model_version,
            "nodes": record.n_nodes,
            "k": record.k,
            "dagster/row_count": record.n_nodes * record.k,
            "index_kind": record.index_kind,
            "recall_at_k": record.recall_at_k if record.recall_at_k is not None else 1.0,
            "seconds": round(record.seconds, 2),
            "params": dg.MetadataValue.json(record.params),
            "views": dg.MetadataValue.json({v.view: {"graph_version": v.graph_version, "edges": v.n_nodes * v.k
                                                     if v.view != "pixel_copy" else None,
                                                     "index_kind": v.index_kind, "seconds": round(v.seconds, 2)}
                                            for v in [record, *pixel_views]}),
        },
    )
