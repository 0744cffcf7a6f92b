"""The embedding stage on a Ray cluster: Ray Data `map_batches` with one model actor per slot.

Each actor loads the model once (the same `make_embedder_for` as the in-process engine) and embeds
batches of manifest rows, reading every file through its recorded hash. Results stream back to the
driver in chunks, which the caller writes to DuckDB as the in-process engine does; the vectors are
the same, only where they are computed changes. With Parquet row storage the actors write the
vectors as shard files themselves (on the home's shared filesystem) and only the file names come
back, for the driver to list: no vector passes through the driver or the DuckDB writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from quality_assets.distributed.engine import actor_slots, batch_size as default_batch_size, connect

# What an actor needs of each manifest row (VerifiedFiles.from_frame reads these).
ROW_COLUMNS = ["sample_id", "data_root", "path", "file_sha256", "bytes"]


class EmbedActor:
    """Holds one embedder; called with a batch of manifest rows, returns their vectors, or with
    `shards_to` writes them as one Parquet shard file there and returns its name."""

    def __init__(self, model_row: dict[str, Any], home: str, device: str, torch_threads: int,
                 shards_to: str | None = None) -> None:
        import torch

        from quality_assets.representation import make_embedder_for
        from quality_assets.store import Store

        torch.set_num_threads(max(1, torch_threads))
        self.home, self.model_version, self.shards_to = Path(home), model_row["model_version"], shards_to
        self.embedder = make_embedder_for(model_row, Store(home))
        if hasattr(self.embedder, "device"):  # the actor's own slot: its GPU, or the CPU
            self.embedder.device = device

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        from quality_assets.imaging import VerifiedFiles

        changed: dict = {}
        files = VerifiedFiles.from_frame(batch, changed)
        vectors = np.asarray(self.embedder.embed(files, batch_size=max(1, len(batch))), dtype=np.float32)
        ids = batch.sample_id.tolist()
        out = {
            "sample_id": np.asarray(ids, dtype=object),
            "changed_reason": np.asarray([changed[s].reason if s in changed else "" for s in ids], dtype=object),
            "changed_detail": np.asarray([changed[s].detail if s in changed else "" for s in ids], dtype=object),
        }
        if self.shards_to is None:
            return {**out, "vector": vectors}
        keep = [i for i, s in enumerate(ids) if s not in changed]
        shard = self._write_shard([ids[i] for i in keep], vectors[keep]) if keep else ""
        return {**out, "shard": np.asarray([shard] * len(ids), dtype=object)}

    def _write_shard(self, ids: list[str], vectors: np.ndarray) -> str:
        """The batch's vectors as a shard file of `embeddings`, written whole under a partial name."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from quality_assets.representation import _check_vectors
        from quality_assets.row_shards import partial_name
        from quality_assets.store import vectors_to_arrow

        _check_vectors(vectors, len(ids))
        table = vectors_to_arrow(ids, vectors)
        table = table.add_column(1, "model_version", pa.array([self.model_version] * len(ids), pa.string()))
        relative = partial_name(self.shards_to)
        (self.home / relative).parent.mkdir(parents=True, exist_ok=True)
        # Whole once this returns: the driver learns the name only from the return value.
        pq.write_table(table, self.home / relative)
        return relative


def embed_on_ray(address: str, missing: pd.DataFrame, model_row: dict[str, Any], home: str | Path, *,
                 chunk_rows: int, batch_size: int | None = None, num_actors: int | None = None,
                 cpus_per_actor: float = 1.0, shards_to: str | None = None
                 ) -> Iterator[tuple[int, pd.DataFrame, np.ndarray | None, dict, tuple[str, ...]]]:
    """Yield (rows done so far, chunk of `missing`, its vectors, changed samples, shard files) per chunk.

    With `shards_to` (a folder relative to the home, Parquet row storage) the actors write each
    batch's vectors there as a shard file and only its name comes back: the vectors are None and
    the files, partial names for `row_shards.adopt_shard`, hold the chunk's unchanged samples.

    `changed` maps sample_id -> imaging.SampleChanged for files whose bytes no longer match the
    manifest, as the in-process engine reports them. Actors ask for a GPU each when the cluster has
    GPUs, else `cpus_per_actor` CPUs (and as many torch threads); `num_actors` defaults to as many
    as the cluster's GPUs or CPUs hold.
    """
    from quality_assets.imaging import SampleChanged

    if missing.empty:
        return
    ray = connect(address)
    slots, has_gpu = actor_slots(ray, cpus_per_actor)
    actors = num_actors or slots
    rows = missing.reindex(columns=ROW_COLUMNS)
    if rows["bytes"].isna().any():
        rows = rows.drop(columns="bytes")
    by_id = missing.set_index("sample_id", drop=False)
    size = batch_size or default_batch_size()
    # One block per batch, made here: a repartition would need a CPU task while the actors hold
    # every CPU, and would wait for ever.
    blocks = [rows.iloc[start:start + size] for start in range(0, len(rows), size)]
    dataset = ray.data.from_pandas(blocks).map_batches(
        EmbedActor, batch_size=size, batch_format="pandas", concurrency=max(1, actors),
        fn_constructor_kwargs={"model_row": model_row, "home": str(home),
                               "device": "cuda" if has_gpu else "cpu",
                               "torch_threads": int(cpus_per_actor), "shards_to": shards_to},
        num_cpus=0 if has_gpu else cpus_per_actor, num_gpus=1 if has_gpu else 0,
    )
    done = 0
    for out in dataset.iter_batches(batch_size=chunk_rows, batch_format="numpy"):
        ids = [str(s) for s in out["sample_id"]]
        chunk = by_id.loc[ids].reset_index(drop=True)
        changed = {sid: SampleChanged(reason, detail) for sid, reason, detail
                   in zip(ids, out["changed_reason"], out["changed_detail"]) if reason}
        done += len(ids)
        if shards_to is None:
            yield done, chunk, np.asarray(out["vector"], dtype=np.float32), changed, ()
        else:
            yield done, chunk, None, changed, tuple(sorted({str(f) for f in out["shard"] if f}))
