"""The label-error classifiers' fits on the representation, kept between score runs so that a drop
does not fit every fold again (`scores.kept_label_model.label_model_probabilities` decides when it
must).

A fit is a row of `label_model_fits` (its settings' hash, which includes the classifiers' code
version, its classes and sizes) and two files under the quality home's `artifacts/label_model/`: the
rows (content-key digests, labels, probabilities, the probe rows' features) and the models (the
standardiser and each fold's linear model, kernel machine and sigmoids, pickled: the machines are
scikit-learn's, whose version the settings name). A fit that only added predicted rows shares its
models file with the fit it grew from.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import duckdb
import numpy as np

from quality_assets.fit_files import StoredFits, remove_unread_files
from quality_assets.scores.confident_learning import LabelModel
from quality_assets.scores.kept_label_model import LabelModelFit
from quality_assets.store import run_query

__all__ = ["StoredLabelModelFits", "prune_fits"]

_FOLDER = "label_model"


class StoredLabelModelFits(StoredFits):
    """What `ScoringInputs.label_model_fits` expects: `latest(settings)` reads the newest fit made
    under these settings, `keep(fit)` remembers one to store; `save()` stores it (call it in the
    score run's transaction)."""

    code_roots = ("quality_assets.scores.confident_learning", "quality_assets.scores.kept_label_model")
    folder = _FOLDER
    latest_query = "latest_label_model_fit"
    shared_file = "models_path"
    shared_suffix = ".models.pkl"

    def _identity(self, fit: LabelModelFit) -> list[bytes]:
        return [fit.keys.tobytes(), fit.labels.tobytes(), fit.trained.tobytes(), fit.anchored.tobytes()]

    def _same_networks(self, earlier: LabelModelFit, fit: LabelModelFit) -> bool:
        return earlier.model is fit.model   # only predicted rows were added: the same models

    def _write_networks(self, path: Path, fit: LabelModelFit) -> None:
        with open(path, "wb") as out:
            pickle.dump(fit.model, out, protocol=pickle.HIGHEST_PROTOCOL)

    def _write_rows(self, path: Path, fit: LabelModelFit) -> None:
        np.savez(path, keys=fit.keys, labels=fit.labels, anchored=fit.anchored, trained=fit.trained,
                 probabilities=fit.probabilities, probe=fit.probe, probe_features=fit.probe_features)

    def _insert(self, fit: LabelModelFit, *, fit_id: str, settings_hash: str, rows_path: str,
                shared_path: str) -> None:
        run_query(self._conn, "insert_label_model_fit", fit_id=fit_id, settings_hash=settings_hash,
                  settings_json=json.dumps(fit.settings, sort_keys=True), classes_json=json.dumps(list(fit.classes)),
                  n_rows=int(fit.keys.size), n_trained=fit.n_trained, rows_path=rows_path, models_path=shared_path)

    def _read(self, home: Path, row) -> LabelModelFit:
        with np.load(home / row.rows_path) as rows:
            arrays = {name: rows[name] for name in ("keys", "labels", "anchored", "trained", "probabilities", "probe",
                                                    "probe_features")}
        # The models file is this service's own, written by `_write_networks` under the quality home.
        with open(home / row.models_path, "rb") as models:
            model = pickle.load(models)
        if not isinstance(model, LabelModel):
            raise ValueError(f"{row.models_path} does not hold a label model")
        return LabelModelFit(tuple(json.loads(row.classes_json)), arrays["keys"], arrays["labels"], arrays["anchored"],
                             arrays["trained"], arrays["probabilities"], model, arrays["probe"],
                             arrays["probe_features"], json.loads(row.settings_json))


def prune_fits(conn: duckdb.DuckDBPyConnection, keep: int) -> int:
    """Keep the newest `keep` fits of each settings hash; delete the others' rows, then every file in
    the fits' folder that no remaining fit reads. Returns how many files were deleted."""
    run_query(conn, "prune_label_model_fits", keep=int(keep))
    return remove_unread_files(conn, _FOLDER, "label_model_fit_files")
