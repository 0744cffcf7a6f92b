"""The near-duplicate copy descriptor's fits, kept between score runs so that a drop embeds its new
rows with the stored network instead of fine-tuning it again (`copy_detection.fits.kept_descriptors`
decides when it must).

A fit is a row of `copy_descriptor_fits` (its settings' hash, which includes the SSL backbone's
digest and the descriptor's code version) and two files under the quality home's
`artifacts/copy_descriptor/`: the rows (content-key digests and half-precision descriptors) and the
network. A fit that only added embedded rows shares its network file with the fit it grew from.
"""

from __future__ import annotations

import json
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
    folder = _FOLDER
    latest_query = "latest_copy_descriptor_fit"
    shared_file = "network_path"
    shared_suffix = ".network.pt"

    def _identity(self, fit: CopyDescriptorFit) -> list[bytes]:
        # The network's training (its side, length, loss and time) is part of the id: a fit trained
        # again on the same rows (another image size) must not take the earlier row's place.
        return [fit.keys.tobytes(), f"{fit.n_trained}:{fit.side}:{fit.steps}:{fit.final_loss!r}:{fit.seconds!r}".encode()]

    def _same_networks(self, earlier: CopyDescriptorFit, fit: CopyDescriptorFit) -> bool:
        return earlier.state is fit.state   # only embedded rows were added: the same network

    def _write_networks(self, path: Path, fit: CopyDescriptorFit) -> None:
        import torch

        torch.save(fit.state, path)

    def _write_rows(self, path: Path, fit: CopyDescriptorFit) -> None:
        np.savez(path, keys=fit.keys, descriptors=fit.descriptors.astype(np.float16))

    def _insert(self, fit: CopyDescriptorFit, *, fit_id: str, settings_hash: str, rows_path: str,
                shared_path: str) -> None:
        run_query(self._conn, "insert_copy_descriptor_fit", fit_id=fit_id, settings_hash=settings_hash,
                  settings_json=json.dumps(fit.settings, sort_keys=True), side=int(fit.side),
                  n_rows=int(fit.keys.size), n_trained=int(fit.n_trained), steps=int(fit.steps),
                  seconds=float(fit.seconds), final_loss=float(fit.final_loss), rows_path=rows_path,
                  network_path=shared_path)

    def _read(self, home: Path, row) -> CopyDescriptorFit:
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


def prune_fits(conn: duckdb.DuckDBPyConnection, keep: int) -> int:
    """Keep the newest `keep` fits of each settings hash; delete the others' rows, then every file in
    the fits' folder that no remaining fit reads. Returns how many files were deleted."""
    run_query(conn, "prune_copy_descriptor_fits", keep=int(keep))
    return remove_unread_files(conn, _FOLDER, "copy_descriptor_fit_files")
