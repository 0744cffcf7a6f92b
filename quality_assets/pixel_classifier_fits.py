"""The label-error pixel classifier's fits, kept between score runs so that a drop does not train its
fold networks again (`scores.pixel_classifier.pixel_probabilities` decides when it must).

A fit is a row of `pixel_classifier_fits` (its settings' hash, which includes the classifier's code
version, its classes and sizes) and two files under the quality home's `artifacts/pixel_classifier/`:
the rows (content-key digests, labels, probabilities, training margins) and the fold networks'
weights. A fit that only added predicted rows shares its weights file with the fit it grew from.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np

from quality_assets.fit_files import StoredFits, remove_unread_files
from quality_assets.scores.pixel_classifier import FoldNetwork, PixelClassifierFit
from quality_assets.store import run_query

__all__ = ["StoredPixelClassifierFits", "prune_fits"]

_FOLDER = "pixel_classifier"


class StoredPixelClassifierFits(StoredFits):
    """What `ScoringInputs.pixel_classifier_fits` expects: `latest(settings)` reads the newest fit
    made under these settings, `keep(fit)` remembers one to store; `save()` stores it (call it in
    the score run's transaction)."""

    code_roots = ("quality_assets.scores.pixel_classifier",)
    folder = _FOLDER
    latest_query = "latest_pixel_classifier_fit"
    shared_file = "folds_path"
    shared_suffix = ".folds.pt"

    def _identity(self, fit: PixelClassifierFit) -> list[bytes]:
        return [fit.keys.tobytes(), fit.labels.tobytes(), fit.trained.tobytes(), fit.anchored.tobytes()]

    def _same_networks(self, earlier: PixelClassifierFit, fit: PixelClassifierFit) -> bool:
        return earlier.folds is fit.folds   # only predicted rows were added: the same networks

    def _write_networks(self, path: Path, fit: PixelClassifierFit) -> None:
        import torch

        torch.save({"states": [fold.state for fold in fit.folds],
                    "present": [fold.present.astype(np.int64).tolist() for fold in fit.folds]}, path)

    def _write_rows(self, path: Path, fit: PixelClassifierFit) -> None:
        margins = {} if fit.margins is None else {"margins": fit.margins.astype(np.float32)}
        np.savez(path, keys=fit.keys, labels=fit.labels, anchored=fit.anchored, trained=fit.trained,
                 probabilities=fit.probabilities.astype(np.float32), **margins)

    def _insert(self, fit: PixelClassifierFit, *, fit_id: str, settings_hash: str, rows_path: str,
                shared_path: str) -> None:
        run_query(self._conn, "insert_pixel_classifier_fit", fit_id=fit_id, settings_hash=settings_hash,
                  settings_json=json.dumps(fit.settings, sort_keys=True), classes_json=json.dumps(list(fit.classes)),
                  side=int(fit.side), n_rows=int(fit.keys.size), n_trained=fit.n_trained,
                  rows_path=rows_path, folds_path=shared_path)

    def _read(self, home: Path, row) -> PixelClassifierFit:
        import torch

        with np.load(home / row.rows_path) as rows:
            arrays = {name: rows[name] for name in ("keys", "labels", "anchored", "trained", "probabilities")}
            margins = rows["margins"] if "margins" in rows.files else None   # a fit stored before they were kept
        folds = torch.load(home / row.folds_path, weights_only=True)
        networks = [FoldNetwork(state, np.asarray(present, dtype=np.int64))
                    for state, present in zip(folds["states"], folds["present"])]
        return PixelClassifierFit(tuple(json.loads(row.classes_json)), arrays["keys"], arrays["labels"],
                                  arrays["anchored"], arrays["trained"], arrays["probabilities"], networks,
                                  int(row.side), json.loads(row.settings_json), margins)


def prune_fits(conn: duckdb.DuckDBPyConnection, keep: int) -> int:
    """Keep the newest `keep` fits of each settings hash; delete the others' rows, then every file in
    the fits' folder that no remaining fit reads (a pruned fit's, or a crashed write's). Returns how
    many files were deleted."""
    run_query(conn, "prune_pixel_classifier_fits", keep=int(keep))
    return remove_unread_files(conn, _FOLDER, "pixel_classifier_fit_files")
