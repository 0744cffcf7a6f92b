"""The near-duplicate copy descriptor's fits, kept between score runs so that a drop embeds its new
rows with the stored network instead of fine-tuning it again (`copy_detection.fits.kept_descriptors`
decides when it must).

A fit is a row of `copy_descriptor_fits` (its settings' hash, which includes the SSL backbone's
digest and the descriptor's code version) and two files under the quality home's
`artifacts/copy_descriptor/`: the rows (content-key digests and half-precision descriptors) and the
network. A fit that only added embedded rows shares its network file with the fit it grew from.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import duckdb
import numpy as np

from quality_assets.copy_detection.fits import CopyDescriptorFit
from quality_assets.fit_files import StoredFits, remove_unread_files
from quality_assets.store import run_query

__all__ = ["StoredCopyDescriptorFits", "prune_fits"]

_FOLDER = "copy_descriptor"


class StoredCopyDescriptorFits(StoredFits):
    """What `ScoringInputs.copy_descriptor_fits` expects: `latest(settings)` reads the newest fit made
    under these settings (the SSL backbone's digest among them), `keep(fit)` remembers one to store;
    `save()` stores it (call it in the score run's transaction)."""

    code_roots = ("quality_assets.copy_detection.fits",)
    latest_query = "latest_copy_descriptor_fit"
    shared_file = "network_path"

    def _read(self, home: Path, row) -> CopyDescriptorFit:
        return _read(home, row)

    def save(self) -> str | None:
        """Store the kept fit; returns its id (None when nothing was kept)."""
        fit = self._kept
        if fit is None:
            return None
        digest = self.settings_hash(fit.settings)
        # The network's training (its side, length, loss and time) is part of the id: a fit trained
        # again on the same rows (another image size) must not take the earlier row's place.
        trained = f"{fit.n_trained}:{fit.side}:{fit.steps}:{fit.final_loss!r}:{fit.seconds!r}".encode()
        fit_id = hashlib.sha256(b"".join([digest.encode(), fit.keys.tobytes(), trained])).hexdigest()[:16]
        folder = self._home / "artifacts" / _FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        earlier = self._latest.get(digest)
        if earlier is not None and earlier[0].state is fit.state:
            network_path = earlier[1]   # only embedded rows were added: the same network
        else:
            network_path = f"artifacts/{_FOLDER}/{fit_id}.network.pt"
            _write_network(self._home / network_path, fit)
        rows_path = f"artifacts/{_FOLDER}/{fit_id}.rows.npz"
        _write_rows(self._home / rows_path, fit)
        run_query(self._conn, "insert_copy_descriptor_fit", fit_id=fit_id, settings_hash=digest,
                  settings_json=json.dumps(fit.settings, sort_keys=True), side=int(fit.side),
                  n_rows=int(fit.keys.size), n_trained=int(fit.n_trained), steps=int(fit.steps),
                  seconds=float(fit.seconds), final_loss=float(fit.final_loss), rows_path=rows_path,
                  network_path=network_path)
        return fit_id


def prune_fits(conn: duckdb.DuckDBPyConnection, keep: int) -> int:
    """Keep the newest `keep` fits of each settings hash; delete the others' rows, then every file in
    the fits' folder that no remaining fit reads. Returns how many files were deleted."""
    run_query(conn, "prune_copy_descriptor_fits", keep=int(keep))
    return remove_unread_files(conn, _FOLDER, "copy_descriptor_fit_files")


def _write_rows(path: Path, fit: CopyDescriptorFit) -> None:
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, keys=fit.keys, descriptors=fit.descriptors.astype(np.float16))
    os.replace(partial, path)


def _write_network(path: Path, fit: CopyDescriptorFit) -> None:
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(fit.state, partial)
    os.replace(partial, path)


def _read(home: Path, row) -> CopyDescriptorFit:
    import torch

    with np.load(home / row.rows_path) as rows:
        keys, descriptors = rows["keys"], rows["descriptors"]
    if keys.shape[0] != descriptors.shape[0] or keys.shape[0] != int(row.n_rows):
        raise ValueError(f"{row.rows_path} holds {keys.shape[0]} keys and {descriptors.shape[0]} rows, "
                         f"not {int(row.n_rows)}")
    state = torch.load(home / row.network_path, weights_only=True)
    return CopyDescriptorFit(state, keys, descriptors, int(row.n_trained), int(row.side),
                             json.loads(row.settings_json), int(row.steps), float(row.seconds),
                             float(row.final_loss))
