"""fastdup (Visual Layer) as a peer: its own bundled ONNX model and kNN, run offline.

fastdup 2.54 installs from PyPI as a manylinux wheel that carries its model and runs with no
network. Its pins (numpy, opencv) do not sit well with the project's environment, so it runs in
its own virtual environment, in a child process: ``QUALITY_LAB_FASTDUP_PYTHON`` names that
interpreter (default: the current one when it can import fastdup)::

    python3 -m venv .venv-fastdup && .venv-fastdup/bin/pip install fastdup==2.54
    export QUALITY_LAB_FASTDUP_PYTHON=$PWD/.venv-fastdup/bin/python

The child runs ``fastdup.create(work_dir, input_dir).run(nearest_neighbors_k=10, threshold=0)``,
which writes ``similarity.csv`` (from, to, cosine similarity of every kNN edge) and
``atrain_features.dat.csv`` (index -> file). The rankings read from them, as a fastdup user would:

- ``near_duplicate``: kNN pairs by similarity, highest first (fastdup's duplicate list);
- ``off_topic``: samples by their highest neighbour similarity, lowest first (fastdup's outliers);
- ``label_error``: samples by the similarity-weighted share of neighbours with another label
  (fastdup's "wrong label" galleries: an image whose look-alikes carry a different label);
- ``leakage``: eval samples by their highest similarity to a train sample.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from quality_assets.splits import EVAL_SPLITS

INSTALL = ("python3 -m venv .venv-fastdup && .venv-fastdup/bin/pip install fastdup==2.54, then "
           "export QUALITY_LAB_FASTDUP_PYTHON=$PWD/.venv-fastdup/bin/python")
K = 10

_DRIVER = textwrap.dedent("""
    import sys
    import fastdup
    fd = fastdup.create(work_dir=sys.argv[2], input_dir=sys.argv[1])
    fd.run(overwrite=True, nearest_neighbors_k=int(sys.argv[3]), threshold=0.0, verbose=False,
           num_threads=2)
""")


def fastdup_python() -> str | None:
    env = os.environ.get("QUALITY_LAB_FASTDUP_PYTHON")
    if env:
        return env if Path(env).is_file() else None
    return sys.executable if importlib.util.find_spec("fastdup") is not None else None


def unavailable_reason() -> str | None:
    return None if fastdup_python() else f"fastdup not found ({INSTALL})"


def run_fastdup(image_dir: Path, work_dir: Path, *, k: int = K, timeout_s: float = 1800) -> Path:
    python = fastdup_python()
    if python is None:
        raise RuntimeError(f"fastdup not found ({INSTALL})")
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SENTRY_OPT_OUT": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([python, "-c", _DRIVER, str(image_dir), str(work_dir), str(k)],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=work_dir)
    if proc.returncode != 0 or not (work_dir / "similarity.csv").is_file():
        raise RuntimeError(f"fastdup failed ({proc.returncode}): {proc.stderr[-800:]}")
    return work_dir


def fastdup_rankings(
    image_dir: Path, paths: Sequence[str], labels: Sequence[str], splits: Sequence[str], work_dir: Path,
) -> dict[str, Any]:
    """Run fastdup on ``image_dir`` and return rankings keyed by position in ``paths``."""
    run_fastdup(Path(image_dir), Path(work_dir))
    files = pd.read_csv(work_dir / "atrain_features.dat.csv")
    position = {p: i for i, p in enumerate(paths)}
    root = Path(image_dir).resolve()

    def to_pos(name: str) -> int:
        p = Path(name)
        p = (Path(work_dir) / p).resolve() if not p.is_absolute() else p.resolve()
        try:
            return position.get(p.relative_to(root).as_posix(), -1)
        except ValueError:
            return -1

    index_pos = np.asarray([to_pos(f) for f in files["filename"]], dtype=np.int64)
    sim = pd.read_csv(work_dir / "similarity.csv")
    a = index_pos[sim["from"].to_numpy()]
    b = index_pos[sim["to"].to_numpy()]
    s = sim["distance"].to_numpy(dtype=np.float64)  # fastdup calls the cosine similarity "distance"
    keep = (a >= 0) & (b >= 0) & (a != b)
    a, b, s = a[keep], b[keep], s[keep]
    n = len(paths)

    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    order = np.lexsort((key, -s))
    _, first = np.unique(key[order], return_index=True)
    pick = order[np.sort(first)]
    pairs = (lo[pick], hi[pick])
    pair_order = np.lexsort((pairs[1], pairs[0], -s[pick]))
    near = (pairs[0][pair_order], pairs[1][pair_order])

    best = np.full(n, -np.inf)
    np.maximum.at(best, a, s)
    off_topic = np.argsort(best, kind="stable").astype(np.int64)

    lab = np.asarray(labels).astype(str)
    w = np.clip(s, 0.0, None)
    other = np.zeros(n)
    total = np.zeros(n)
    np.add.at(other, a, w * (lab[a] != lab[b]))
    np.add.at(total, a, w)
    disagreement = np.divide(other, total, out=np.zeros(n), where=total > 0)
    label_error = np.argsort(-disagreement, kind="stable").astype(np.int64)

    spl = pd.Series(splits, dtype=object).astype(str).str.lower().to_numpy()
    is_eval = np.isin(spl, EVAL_SPLITS)
    to_train = np.full(n, -np.inf)
    sel = is_eval[a] & (spl[b] == "train")
    np.maximum.at(to_train, a[sel], s[sel])
    sel = is_eval[b] & (spl[a] == "train")
    np.maximum.at(to_train, b[sel], s[sel])
    ev = np.flatnonzero(is_eval)
    leakage = ev[np.argsort(-to_train[ev], kind="stable")].astype(np.int64)
    return {"near_duplicate": near, "off_topic": off_topic, "label_error": label_error, "leakage": leakage}
