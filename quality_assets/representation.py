"""The representation stage: decide and train the model, embed incrementally, build the kNN graph.

Everything here works on a DuckDB connection and the quality home's artifacts folder; the Dagster
assets in `defs/representation/` only call these functions and turn the results into metadata.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from quality_assets.data_roots import is_remote, join
from quality_assets.pixel_view import THUMBNAIL_SIZE
from quality_assets.scores.near_exact import COLOUR_GRID_SIZE
from quality_assets.row_shards import adopt_shard, is_sharded, shard_folder, write_rows
from quality_assets.ssl.config import device_setting
from quality_assets.store import (
    Store, arrow_to_vectors, fault_point, record_superseded, run_query, run_query_arrow, session,
    vectors_to_arrow,
)

EMBED_CHUNK = 4096
EMBED_DEVICE_ENV = "QUALITY_EMBED_DEVICE"
Progress = Callable[[str], None]


@dataclass
class ModelOptions:
    """What the ssl_model asset's config selects (see defs/representation/assets.py)."""

    embedder: str = "dino"                 # dino | timm_checkpoint | precomputed
    arch: str = ""                         # empty: the default for the data's image size
    image_size: int = 0                    # 0: from the manifest (median long side)
    epochs: int = 0                        # 0: the default for the data size
    batch_size: int = 0
    device: str = "auto"
    seed: int = 0
    time_budget_s: float = 0.0             # 0: no budget
    max_growth_fraction: float = 0.2       # retrain when the data grew by more than this
    force_retrain: bool = False
    checkpoint_file: str = ""              # timm_checkpoint: a local weights file
    embeddings_file: str = ""              # precomputed: Parquet or .npy keyed by path
    # Decoded training images held in RAM at most ("8GiB", bytes; "" = $QUALITY_DECODE_RAM_BYTES or a
    # quarter of the RAM); above it they go to a memory-mapped file under artifacts/decode_cache/.
    # Not part of DinoConfig: where the pixels live does not change the model or its hash.
    decode_ram_budget: str = ""


@dataclass
class ModelRecord:
    model_version: str
    embedder_kind: str
    retrained: bool
    reason: str
    row: dict[str, Any] = field(default_factory=dict)


def _sha256_file(path: Path) -> str:
    from quality_assets.ssl.dino import file_sha256

    return file_sha256(path)


def manifest_paths(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    frame = run_query(conn, "manifest_with_roots")
    frame["abs_path"] = [join(root, path) for root, path in zip(frame.data_root, frame.path)]
    return frame


def ensure_model(target: Store | duckdb.DuckDBPyConnection, store: Store, options: ModelOptions,
                 progress: Progress | None = None) -> ModelRecord:
    """Return the model to embed with, training or registering a new one when the policy says so.

    `target` is the Store (connections only around the reads and the final insert, never during
    training, so other processes can read the database meanwhile) or an open connection.
    """
    say = progress or (lambda message: None)
    with session(target) as conn:
        version = run_query(conn, "manifest_version")
    manifest_version, n_samples = str(version.manifest_version[0]), int(version.n_samples[0])
    if n_samples == 0:
        raise ValueError("the manifest is empty: ingest a drop with at least one readable image first")
    if options.embedder == "dino":
        return _ensure_dino(target, store, options, manifest_version, n_samples, say)
    if options.embedder == "timm_checkpoint":
        with session(target) as conn:
            return _register_file_model(conn, options, "timm_checkpoint", options.checkpoint_file, manifest_version)
    if options.embedder == "precomputed":
        with session(target) as conn:
            return _register_file_model(conn, options, "precomputed", options.embeddings_file, manifest_version)
    raise ValueError(f"unknown embedder {options.embedder!r}; use dino, timm_checkpoint or precomputed")


def _dino_config(options: ModelOptions, manifest: pd.DataFrame):
    from quality_assets.ssl.dino import DinoConfig, default_config

    image_size = options.image_size or _data_image_size(manifest)
    config = default_config(image_size, len(manifest), options.device)
    overrides = {"seed": options.seed}
    if options.arch:
        overrides["arch"] = options.arch
    if options.epochs:
        # Epochs asked for are epochs trained (within any budget): the stability stop belongs to
        # the default schedule only.
        overrides["epochs"] = options.epochs
        overrides["stop_when_stable"] = False
    if options.batch_size:
        overrides["batch_size"] = options.batch_size
    if options.time_budget_s:
        overrides["time_budget_s"] = options.time_budget_s
    merged = {**config.to_dict(), **overrides}
    return DinoConfig.from_dict(merged)


def _data_image_size(manifest: pd.DataFrame) -> int:
    long_side = np.maximum(manifest.width.to_numpy(), manifest.height.to_numpy())
    return int(np.median(long_side))


def _train_dino_here_or_on_ray(images, config, store: Store, say: Progress):
    """DINO trained on Ray Train when a cluster is configured and training there is asked for or
    has GPUs (quality_assets.distributed.ssl_train), else in this process."""
    from quality_assets.distributed.engine import connect, ray_address, train_plan
    from quality_assets.ssl.dino import train_dino

    address = ray_address()
    plan = train_plan(connect(address)) if address else None
    if plan is None:
        return train_dino(images, config, progress=lambda info: say(_format_train_progress(info)))
    from quality_assets.distributed.ssl_train import train_dino_on_ray

    workers, use_gpu, cpus = plan
    return train_dino_on_ray(address, images, config, workers=workers, use_gpu=use_gpu, cpus_per_worker=cpus,
                             storage=store.artifacts_dir / "ray_train", say=say)


def _ensure_dino(target, store: Store, options: ModelOptions, manifest_version: str, n_samples: int,
                 say: Progress) -> ModelRecord:
    from quality_assets.imaging import VerifiedFiles
    from quality_assets.ssl.data import decode_images, decode_ram_budget
    from quality_assets.ssl.dino import save_checkpoint
    from quality_assets.ssl.policy import SSL_CODE_VERSION, retrain_decision

    with session(target) as conn:
        manifest = manifest_paths(conn)
        previous = run_query(conn, "latest_model_of_kind", kind="dino")
    # Trained in an order set by content and path, not by sample id (which hashes the data root in):
    # the same files trained from a folder, a bucket or a moved copy give the same model.
    manifest = manifest.sort_values(["file_sha256", "path", "sample_id"], kind="stable").reset_index(drop=True)
    config = _dino_config(options, manifest)
    # Read before anything is decided, so a malformed budget fails the same way whether or not
    # this run retrains.
    ram_budget = decode_ram_budget(options.decode_ram_budget or None)
    previous_state = None
    if len(previous):
        row = previous.iloc[0]
        previous_state = {"config_hash": row.config_hash, "code_version": row.code_version,
                          "n_samples_trained": int(row.n_samples_trained)}
    retrain, reason = retrain_decision(previous_state, config_hash=config.config_hash(),
                                       code_version=SSL_CODE_VERSION, n_samples=n_samples,
                                       max_growth_fraction=options.max_growth_fraction)
    if options.force_retrain:
        retrain, reason = True, "forced by config"
    if not retrain:
        row = previous.iloc[0].to_dict()
        return ModelRecord(row["model_version"], "dino", False, reason, row)

    say(f"training DINO ({reason}): {config.arch} at {config.image_size}px on {n_samples} images")
    # Every image is read through its recorded hash; one that changed since ingest is left out of
    # training and taken out of the active manifest rather than trained on under its old identity.
    files = VerifiedFiles.from_frame(manifest)
    images = decode_images(files, config.image_size, ram_budget=ram_budget,
                           cache_dir=store.artifacts_dir / "decode_cache")
    if files.changed:
        keep = ~manifest.sample_id.isin(list(files.changed)).to_numpy()
        images = images.select(np.flatnonzero(keep))
        with session(target) as conn:
            record_superseded(conn, files.changed)
            version = run_query(conn, "manifest_version")
        manifest_version, n_samples = str(version.manifest_version[0]), int(version.n_samples[0])
        say(f"{len(files.changed)} samples changed since ingest: left out of training and superseded")
        if n_samples == 0:
            raise ValueError("every sample changed since ingest: re-ingest the data")
    fault_point("train:start")
    result = _train_dino_here_or_on_ray(images, config, store, say)
    checkpoint_dir = store.artifacts_dir / "ssl"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    staging = checkpoint_dir / f"staging-{time.time_ns()}.pt"
    sha = save_checkpoint(result, staging)
    final = checkpoint_dir / f"{sha}.pt"
    staging.replace(final)
    fault_point("train:saved")
    model_version = f"dino-{sha[:12]}"
    row = dict(
        model_version=model_version, embedder_kind="dino", arch=config.arch,
        config_json=json.dumps(config.to_dict(), sort_keys=True), config_hash=config.config_hash(),
        code_version=SSL_CODE_VERSION, checkpoint_path=str(final.relative_to(store.home)),
        checkpoint_sha256=sha, manifest_version=manifest_version, n_samples_trained=n_samples,
        epochs=float(result.epochs_completed), final_loss=float(result.final_loss),
        loss_curve=[float(x) for x in result.loss_curve], images_per_s=float(result.images_per_s),
        seconds=float(result.seconds), stopped_by_budget=bool(result.stopped_by_budget),
        device=str(result.device), dim=_embedding_dim(final),
    )
    with session(target) as conn:
        run_query(conn, "insert_ssl_model", **row)
    return ModelRecord(model_version, "dino", True, reason, row)


def _format_train_progress(info: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())


def _embedding_dim(checkpoint: Path) -> int:
    from quality_assets.ssl.dino import load_checkpoint

    _, meta = load_checkpoint(checkpoint)
    return int(meta.get("embedding_dim") or meta.get("dim") or 0)


def _register_file_model(conn, options: ModelOptions, kind: str, file: str, manifest_version: str) -> ModelRecord:
    if not file:
        raise ValueError(f"embedder {kind} needs a file: set {'checkpoint_file' if kind == 'timm_checkpoint' else 'embeddings_file'}")
    path = Path(file).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} does not exist")
    sha = _sha256_file(path)
    model_version = f"{'timm' if kind == 'timm_checkpoint' else 'pre'}-{sha[:12]}"
    existing = run_query(conn, "model_by_version", model_version=model_version)
    if len(existing):
        return ModelRecord(model_version, kind, False, "file unchanged", existing.iloc[0].to_dict())
    config = {"file": str(path), "arch": options.arch, "image_size": options.image_size}
    row = dict(
        model_version=model_version, embedder_kind=kind, arch=options.arch or None,
        config_json=json.dumps(config, sort_keys=True), config_hash=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
        code_version=None, checkpoint_path=str(path), checkpoint_sha256=sha, manifest_version=manifest_version,
        n_samples_trained=None, epochs=None, final_loss=None, loss_curve=None, images_per_s=None,
        seconds=None, stopped_by_budget=None, device=None, dim=None,
    )
    run_query(conn, "insert_ssl_model", **row)
    return ModelRecord(model_version, kind, True, "new file", row)


def embed_device() -> str:
    """Where the in-process embedding runs: $QUALITY_EMBED_DEVICE (`auto`, `cpu`, `cuda`, `cuda:N`);
    `auto`, the default, is the GPU when this machine has one, else the CPU."""
    return device_setting(EMBED_DEVICE_ENV)


def make_embedder_for(row: dict[str, Any], store: Store, data_root_of: Callable[[], Path] | None = None):
    from quality_assets.embedders import PrecomputedEmbedder, SSLCheckpointEmbedder, TimmCheckpointEmbedder

    kind = row["embedder_kind"]
    if kind == "dino":
        return SSLCheckpointEmbedder(store.home / row["checkpoint_path"], device=embed_device())
    config = json.loads(row["config_json"])
    if kind == "timm_checkpoint":
        return TimmCheckpointEmbedder(config["arch"], Path(config["file"]), config.get("image_size") or 224,
                                      device=embed_device())
    if kind == "precomputed":
        return PrecomputedEmbedder(Path(config["file"]))
    raise ValueError(f"unknown embedder kind {kind!r}")


@dataclass
class EmbedStats:
    model_version: str
    n_embedded: int
    n_total: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n_embedded / self.seconds if self.seconds > 0 else 0.0


def embed_missing(target: Store | duckdb.DuckDBPyConnection, store: Store, model: ModelRecord,
                  progress: Callable[[int, int], None] | None = None) -> EmbedStats:
    """Embed only samples without a vector for this model; chunked so memory stays bounded.

    With a Store as `target`, the database is open only to list the work and to write each
    chunk's vectors (one short transaction each), never while the model runs. Images are read
    through their recorded hash; a sample whose file changed gets no vector and is superseded.
    """
    def count(conn) -> int:
        return int(run_query(conn, "count_embeddings", model_version=model.model_version).n[0])

    # The total is counted in the session that lists the work (nothing to do) or writes the last
    # chunk: opening the database costs about 20 ms, a tenth of a small drop's embedding step.
    with session(target) as conn:
        missing = run_query(conn, "samples_missing_embeddings", model_version=model.model_version)
        total = count(conn) if missing.empty else None
        # With Parquet row storage, Ray workers write their vectors as shard files themselves.
        shards_to = shard_folder("embeddings", model.model_version) if is_sharded(conn) else None
    started = time.perf_counter()
    done = 0
    for part in _embedded_chunks(missing, model, store, shards_to):
        chunk, changed = part.chunk, part.changed
        if part.vectors is not None:
            _check_vectors(part.vectors, len(chunk))
        fault_point("embed:chunk")
        keep = ~chunk.sample_id.isin(list(changed)).to_numpy()
        with session(target) as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                if part.vectors is None:
                    written = sum(adopt_shard(conn, "embeddings", model.model_version, f) for f in part.shard_files)
                else:
                    write_rows(conn, "embeddings", model.model_version,
                               vectors_to_arrow(list(chunk.sample_id[keep]), part.vectors[keep]))
                record_superseded(conn, changed)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if part.listed >= len(missing):
                total = count(conn)
        done += written if part.vectors is None else int(keep.sum())
        if progress:
            progress(part.listed, len(missing))
    seconds = time.perf_counter() - started
    if total is None:
        with session(target) as conn:
            total = count(conn)
    return EmbedStats(model.model_version, done, total, seconds)


@dataclass
class EmbeddedChunk:
    """A chunk of the samples to embed, done: its vectors, or the shard files workers wrote them to."""

    listed: int  # rows of the work done so far, this chunk included
    chunk: pd.DataFrame
    vectors: np.ndarray | None
    changed: dict  # sample_id -> imaging.SampleChanged: files whose bytes no longer match
    shard_files: tuple[str, ...] = ()  # with vectors None: partial shard files, relative to the home


def _embedded_chunks(missing: pd.DataFrame, model: ModelRecord, store: Store, shards_to: str | None = None):
    """Each chunk of `missing`, embedded on the Ray cluster QUALITY_RAY_ADDRESS names
    (quality_assets.distributed; its workers write shard files under `shards_to` when given), else
    in this process."""
    from quality_assets.distributed.engine import ray_address
    from quality_assets.imaging import VerifiedFiles

    address = ray_address()
    if address and model.embedder_kind != "precomputed":  # precomputed is a lookup: nothing to spread
        from quality_assets.distributed.embedding import embed_on_ray

        for listed, chunk, vectors, changed, files in embed_on_ray(
                address, missing, model.row, store.home, chunk_rows=EMBED_CHUNK, shards_to=shards_to):
            yield EmbeddedChunk(listed, chunk, vectors, changed, files)
        return
    embedder = make_embedder_for(model.row, store)
    for start in range(0, len(missing), EMBED_CHUNK):
        chunk = missing.iloc[start:start + EMBED_CHUNK]
        changed: dict = {}
        if model.embedder_kind == "precomputed":
            keys = list(chunk.path)
        else:
            keys = VerifiedFiles.from_frame(chunk, changed)
        yield EmbeddedChunk(start + len(chunk), chunk, embedder.embed(keys), changed)


@dataclass
class ThumbnailStats:
    size: int
    n_made: int
    n_unreadable: int
    n_total: int
    seconds: float


def _thumbnail_views(size: int, colour_grid_size: int) -> list[tuple[int, int, int]]:
    from PIL import Image

    if colour_grid_size == size:
        raise ValueError(f"the colour grid ({colour_grid_size} px) needs another size than the grayscale "
                         f"thumbnail ({size} px): the thumbnails table keys rows by size")
    # The grid averages each cell (BOX): compression noise cancels inside it (scores.near_exact).
    return [(size, 1, Image.BILINEAR), (colour_grid_size, 3, Image.BOX)]


def _thumbnails_or_none(source, views: list[tuple[int, int, int]]) -> list[bytes] | None:
    from quality_assets.ssl.data import decode_views

    try:
        # [C, S, S] -> row-major [S, S, C] bytes: size*size for the grayscale view, size*size*3 for colour.
        return [arr.transpose(1, 2, 0).tobytes() for arr in decode_views(source, views)]
    except (OSError, ValueError, SyntaxError):
        # Ingest decoded this file once; if it cannot be decoded now, the sample simply has no
        # pixel evidence (its SSL evidence still counts), and the next run tries again.
        return None


def _missing_thumbnails(conn: duckdb.DuckDBPyConnection, sizes: list[int]) -> pd.DataFrame:
    """Active samples lacking a thumbnail of any of `sizes`, each once, in sample_id order."""
    frames = [run_query(conn, "samples_missing_thumbnails", size=s) for s in sizes]
    missing = pd.concat(frames, ignore_index=True).drop_duplicates("sample_id")
    return missing.sort_values("sample_id", kind="stable").reset_index(drop=True)


def thumbnail_missing(target: Store | duckdb.DuckDBPyConnection, size: int = THUMBNAIL_SIZE,
                      progress: Callable[[int, int], None] | None = None, *,
                      colour_grid_size: int = COLOUR_GRID_SIZE) -> ThumbnailStats:
    """Store a grayscale size x size thumbnail and an RGB colour grid (`scores.near_exact`) for every
    active sample that lacks either; each file is decoded once for both.

    Reads go through the recorded hash (a changed file gets no thumbnail and is superseded); the
    database is open only to list the work and to write each chunk. The counts are the grayscale
    thumbnails'.
    """
    from concurrent.futures import ThreadPoolExecutor

    from quality_assets.imaging import VerifiedFiles
    from quality_assets.ssl.data import OBJECT_READ_THREADS

    views = _thumbnail_views(size, colour_grid_size)

    def count(conn) -> int:
        return int(run_query(conn, "count_thumbnails", size=size).n[0])

    with session(target) as conn:  # the total counted as in embed_missing
        missing = _missing_thumbnails(conn, [v[0] for v in views])
        total = count(conn) if missing.empty else None
    started = time.perf_counter()
    made = unreadable = 0
    # PIL releases the GIL while decoding; objects in a store are network round trips, so more overlap.
    threads = OBJECT_READ_THREADS if len(missing) and is_remote(missing.data_root.iloc[0]) else 2
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, len(missing), EMBED_CHUNK):
            chunk = missing.iloc[start:start + EMBED_CHUNK]
            changed: dict = {}
            files = VerifiedFiles.from_frame(chunk, changed)
            decoded = list(pool.map(lambda i: _thumbnails_or_none(files[i], views), range(len(files))))
            ids = chunk.sample_id.tolist()
            ok = [i for i, px in enumerate(decoded) if px is not None and ids[i] not in changed]
            unreadable += len(decoded) - len(ok)
            with session(target) as conn:
                conn.execute("BEGIN TRANSACTION")
                try:
                    # A sample that already holds one of the views keeps it (the insert skips stored keys).
                    for v, (view_size, _, _) in enumerate(views):
                        table = pa.table({"sample_id": pa.array([ids[i] for i in ok], pa.string()),
                                          "pixels": pa.array([decoded[i][v] for i in ok], pa.binary())})
                        write_rows(conn, "thumbnails", view_size, table)
                    record_superseded(conn, changed)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                if start + len(chunk) >= len(missing):
                    total = count(conn)
            made += len(ok)
            if progress:
                progress(start + len(chunk), len(missing))
    if total is None:
        with session(target) as conn:
            total = count(conn)
    return ThumbnailStats(size, made, unreadable, total, time.perf_counter() - started)


def load_thumbnails(conn: duckdb.DuckDBPyConnection, sample_ids: list[str],
                    size: int = THUMBNAIL_SIZE, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, size, size] (channels 1) or [N, size, size, channels] aligned with `sample_ids`, and
    the mask of samples that have one."""
    table = run_query_arrow(conn, "thumbnails_for_size", size=size)
    position = {sid: i for i, sid in enumerate(sample_ids)}
    shape = (size, size) if channels == 1 else (size, size, channels)
    thumbs = np.zeros((len(sample_ids), *shape), dtype=np.uint8)
    known = np.zeros(len(sample_ids), dtype=bool)
    expected = size * size * channels
    for sid, pixels in zip(table.column("sample_id").to_pylist(), table.column("pixels").to_pylist()):
        i = position.get(sid)
        if i is not None and len(pixels) == expected:
            thumbs[i] = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
            known[i] = True
    return thumbs, known


def load_colour_grids(conn: duckdb.DuckDBPyConnection, sample_ids: list[str],
                      size: int = COLOUR_GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The samples' colour grids, uint8 [N, size, size, 3], and the mask of samples that have one."""
    return load_thumbnails(conn, sample_ids, size, channels=3)


def _check_vectors(vectors: np.ndarray, expected_rows: int) -> None:
    if vectors.shape[0] != expected_rows:
        raise ValueError(f"embedder returned {vectors.shape[0]} vectors for {expected_rows} images")
    if not np.isfinite(vectors).all():
        raise ValueError("embedder returned non-finite values")


def load_vectors(conn: duckdb.DuckDBPyConnection, model_version: str) -> tuple[list[str], np.ndarray]:
    table = run_query_arrow(conn, "embeddings_for_model", model_version=model_version)
    return table.column("sample_id").to_pylist(), arrow_to_vectors(table)


