"""Peer methods for the detection benchmark, on the same data and the same features as ours.

Every function returns *rankings* in one shape, so the benchmark can judge all methods alike:

- sample issue types (``off_topic``, ``label_error``, ``leakage``): an int64 array of sample
  positions, most suspicious first (leakage rankings hold eval-split samples only);
- ``near_duplicate``: a pair ranking ``(a, b)``, two int64 arrays of positions, most likely
  duplicate pair first.

Peers are optional extras, never runtime dependencies of the service: cleanlab and imagehash are
imported inside the functions that need them, and :func:`peer_status` says which ones can run
(with the install hint when one cannot). scikit-learn (IsolationForest, logistic regression, PCA)
is a dependency of the project already.

| peer | issue types | evidence |
|---|---|---|
| cleanlab ``Datalab`` | label_error, off_topic, near_duplicate, leakage | ``features=`` + ``pred_probs`` from cross-validated logistic regression on the same features (what cleanlab's docs recommend); issue types label, outlier, near_duplicate |
| perceptual hash (imagehash ``phash``) | near_duplicate, leakage | Hamming distance of 64-bit DCT hashes |
| IsolationForest | off_topic | ``score_samples`` on the features |
| mean kNN distance | off_topic | mean distance to the k nearest neighbours (SelfClean's baseline) |
"""

from __future__ import annotations

import importlib.util
from typing import Any, Sequence

import numpy as np
import pandas as pd
from quality_assets.splits import EVAL_SPLITS

__all__ = [
    "PEERS",
    "PeerUnavailable",
    "cleanlab_rankings",
    "cv_pred_probs",
    "isolation_forest_ranking",
    "mean_knn_ranking",
    "pca_features",
    "peer_status",
    "phash_hashes",
    "phash_rankings",
]

PEERS: tuple[str, ...] = ("cleanlab", "phash", "isolation_forest", "mean_knn")
_INSTALL = {
    "cleanlab": 'pip install "cleanlab[datalab]>=2.6"',
    "phash": 'pip install "imagehash>=4.3"',
}
# Datalab needs cleanlab's `datalab` extra (Hugging Face `datasets`), not just cleanlab.
_MODULES = {"cleanlab": ("cleanlab", "datasets"), "phash": ("imagehash",)}

Ranking = np.ndarray
PairRanking = tuple[np.ndarray, np.ndarray]


class PeerUnavailable(RuntimeError):
    """A peer's optional package is not installed."""


def peer_status() -> dict[str, str | None]:
    """peer name -> None when it can run, else why not (with the install command)."""
    out: dict[str, str | None] = {}
    for name in PEERS:
        missing = [m for m in _MODULES.get(name, ()) if importlib.util.find_spec(m) is None]
        out[name] = f"{', '.join(missing)} not installed ({_INSTALL[name]})" if missing else None
    return out


def _require(name: str) -> None:
    reason = peer_status()[name]
    if reason is not None:
        raise PeerUnavailable(reason)


def _order(score: np.ndarray) -> Ranking:
    """Positions by ascending score (lower = more suspicious); ties keep position order."""
    return np.argsort(np.asarray(score, dtype=np.float64), kind="stable").astype(np.int64)


def _eval_mask(splits: Sequence[Any]) -> np.ndarray:
    return pd.Series(splits, dtype=object).astype(str).str.lower().isin(EVAL_SPLITS).to_numpy()


# --------------------------------------------------------------------------------------------
# features


def pca_features(x: np.ndarray, n_components: int = 64, seed: int = 0) -> np.ndarray:
    """PCA of raw pixels (or any features) to at most ``n_components`` dims, float32."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n_components = int(min(n_components, x.shape[0] - 1, x.shape[1]))
    return PCA(n_components=n_components, random_state=seed).fit_transform(x).astype(np.float32)


def cv_pred_probs(
    features: np.ndarray, labels: Sequence[Any], *, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-sample class probabilities by K-fold cross-validated logistic regression.

    cleanlab's guidance: pred_probs must be out-of-sample (a model never trained on the example
    it scores). Returns (pred_probs [N, C], classes in column order, sorted like np.unique).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels).astype(str)
    classes, counts = np.unique(y, return_counts=True)
    folds = int(max(2, min(folds, counts.min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, np.asarray(features, dtype=np.float32), y, cv=cv, method="predict_proba")
    return probs.astype(np.float64), classes


# --------------------------------------------------------------------------------------------
# cleanlab


def _graph_pairs(graph: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected unique pairs (a < b) of a sparse kNN distance graph, with their distance."""
    coo = graph.tocoo()
    i = coo.row.astype(np.int64)
    j = coo.col.astype(np.int64)
    d = coo.data.astype(np.float64)
    keep = i != j
    i, j, d = i[keep], j[keep], d[keep]
    a, b = np.minimum(i, j), np.maximum(i, j)
    n = int(graph.shape[0])
    key = a * n + b
    order = np.lexsort((d, key))
    key, d = key[order], d[order]
    first = np.r_[True, key[1:] != key[:-1]] if key.size else np.zeros(0, bool)
    key, d = key[first], d[first]
    return key // n, key % n, d


def _pair_ranking_by_distance(a: np.ndarray, b: np.ndarray, d: np.ndarray) -> PairRanking:
    order = np.lexsort((b, a, d))
    return a[order], b[order]


def _leakage_from_pairs(
    a: np.ndarray, b: np.ndarray, d: np.ndarray, splits: Sequence[Any], fallback: np.ndarray
) -> Ranking:
    """Eval samples by their smallest pair distance to a train sample; those with no such pair
    follow, ordered by ``fallback`` (lower first)."""
    s = pd.Series(splits, dtype=object).astype(str).str.lower().to_numpy()
    is_eval = np.isin(s, EVAL_SPLITS)
    is_train = s == "train"
    n = len(s)
    best = np.full(n, np.inf)
    fwd = is_eval[a] & is_train[b]
    bwd = is_train[a] & is_eval[b]
    np.minimum.at(best, a[fwd], d[fwd])
    np.minimum.at(best, b[bwd], d[bwd])
    ev = np.flatnonzero(is_eval)
    order = np.lexsort((np.asarray(fallback, dtype=np.float64)[ev], best[ev]))
    return ev[order].astype(np.int64)


def cleanlab_rankings(
    features: np.ndarray,
    labels: Sequence[Any],
    splits: Sequence[Any],
    *,
    pred_probs: np.ndarray | None = None,
    seed: int = 0,
    k: int = 10,
) -> tuple[dict[str, Ranking | PairRanking], dict[str, Any]]:
    """cleanlab ``Datalab.find_issues`` with issue types label, outlier and near_duplicate.

    Rankings:
    - ``label_error``: ascending ``label_score``;
    - ``off_topic``: ascending ``outlier_score``;
    - ``near_duplicate``: every edge of Datalab's own kNN graph (``weighted_knn_graph``, k
      neighbours, cosine distance for > 3 dims) ranked by distance: the pair-level evidence
      behind its ``near_duplicate_sets`` (which are the pairs under 0.13 x the median
      nearest-neighbour distance);
    - ``leakage``: eval samples by their nearest train neighbour on that graph (cleanlab has no
      leakage issue type; this is how a user would read one off its near-duplicate output).

    Also returns info: the numbers of flagged samples per issue type and the seconds spent.
    """
    _require("cleanlab")
    import time

    from cleanlab import Datalab

    y = np.asarray(labels).astype(str)
    t0 = time.perf_counter()
    if pred_probs is None:
        pred_probs, _ = cv_pred_probs(features, y, seed=seed)
    t_probs = time.perf_counter() - t0
    lab = Datalab(data={"label": y}, label_name="label", verbosity=0)
    # n_jobs=1: cleanlab's default process pool forks a process that already runs torch/OpenMP
    # threads, which deadlocked the test suite once.
    issue_types = {"label": {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}},
                   "outlier": {"k": k}, "near_duplicate": {"k": k}}
    lab.find_issues(features=np.asarray(features, dtype=np.float32), pred_probs=pred_probs, issue_types=issue_types)
    label = lab.get_issues("label")
    outlier = lab.get_issues("outlier")
    near = lab.get_issues("near_duplicate")
    graph = lab.get_info("statistics")["weighted_knn_graph"]
    a, b, d = _graph_pairs(graph)
    rankings: dict[str, Ranking | PairRanking] = {
        "label_error": _order(label["label_score"].to_numpy()),
        "off_topic": _order(outlier["outlier_score"].to_numpy()),
        "near_duplicate": _pair_ranking_by_distance(a, b, d),
        "leakage": _leakage_from_pairs(a, b, d, splits, near["near_duplicate_score"].to_numpy()),
    }
    info = {
        "n_label_issues": int(label["is_label_issue"].sum()),
        "n_outlier_issues": int(outlier["is_outlier_issue"].sum()),
        "n_near_duplicate_issues": int(near["is_near_duplicate_issue"].sum()),
        "pred_probs_seconds": round(t_probs, 2),
        "seconds": round(time.perf_counter() - t0, 2),
        # Out-of-sample accuracy of the model behind pred_probs (columns follow np.unique order).
        "cv_accuracy": round(float((np.unique(y)[np.argmax(pred_probs, axis=1)] == y).mean()), 4),
    }
    return rankings, info


# --------------------------------------------------------------------------------------------
# perceptual hash


def phash_hashes(images: Sequence[np.ndarray]) -> np.ndarray:
    """imagehash's 64-bit ``phash`` of each uint8 image, as int64 (bit order of ``hash.flatten()``)."""
    _require("phash")
    import imagehash
    from PIL import Image

    out = np.empty(len(images), dtype=np.int64)
    for i, img in enumerate(images):
        bits = imagehash.phash(Image.fromarray(np.asarray(img, dtype=np.uint8))).hash.flatten()
        out[i] = np.packbits(bits.astype(np.uint8)).view(">i8")[0]
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x).view(np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int16)
    return np.unpackbits(x.view(np.uint8).reshape(x.shape + (8,)), axis=-1).sum(axis=-1).astype(np.int16)


def phash_rankings(
    hashes: np.ndarray,
    splits: Sequence[Any],
    *,
    max_pairs_per_sample: int = 20,
    block: int = 512,
) -> dict[str, Ranking | PairRanking]:
    """Near-duplicate pairs ranked by Hamming distance of the hashes, and leakage.

    All N(N-1)/2 pairs are scored (blockwise, O(block x N) memory). The ranking keeps the pairs
    up to the largest Hamming distance t whose pairs number at most ``max_pairs_per_sample x N``
    (a reviewer never reaches further; pairs at distance > t count as not retrieved). Ties in
    distance keep position order, which carries no information (positions are shuffled).
    Leakage: eval samples by their smallest Hamming distance to any train sample.
    """
    h = np.asarray(hashes, dtype=np.int64)
    n = h.size
    hist = np.zeros(65, dtype=np.int64)
    for s in range(0, n, block):
        e = min(n, s + block)
        ham = _popcount(np.bitwise_xor(h[s:e, None], h[None, :]))
        upper = np.arange(n)[None, :] > np.arange(s, e)[:, None]
        hist += np.bincount(ham[upper].ravel(), minlength=65)
    cum = np.cumsum(hist)
    budget = max_pairs_per_sample * n
    t = int(np.flatnonzero(cum <= budget)[-1]) if (cum <= budget).any() else 0
    a_parts, b_parts, d_parts = [], [], []
    for s in range(0, n, block):
        e = min(n, s + block)
        ham = _popcount(np.bitwise_xor(h[s:e, None], h[None, :]))
        upper = np.arange(n)[None, :] > np.arange(s, e)[:, None]
        r, c = np.nonzero(upper & (ham <= t))
        a_parts.append(r + s)
        b_parts.append(c)
        d_parts.append(ham[r, c])
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    d = np.concatenate(d_parts).astype(np.float64)

    s_arr = pd.Series(splits, dtype=object).astype(str).str.lower().to_numpy()
    ev = np.flatnonzero(np.isin(s_arr, EVAL_SPLITS))
    tr = np.flatnonzero(s_arr == "train")
    best = np.full(ev.size, 64, dtype=np.int64)
    if tr.size:
        for s in range(0, ev.size, block):
            ham = _popcount(np.bitwise_xor(h[ev[s:s + block], None], h[None, tr]))
            best[s:s + block] = ham.min(axis=1)
    return {
        "near_duplicate": _pair_ranking_by_distance(a, b, d),
        "leakage": ev[np.argsort(best, kind="stable")].astype(np.int64),
    }


# --------------------------------------------------------------------------------------------
# outlier baselines


def isolation_forest_ranking(features: np.ndarray, *, seed: int = 0, n_estimators: int = 200) -> Ranking:
    """Off-topic ranking by scikit-learn's IsolationForest (lowest ``score_samples`` first)."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    forest.fit(np.asarray(features, dtype=np.float32))
    return _order(forest.score_samples(np.asarray(features, dtype=np.float32)))


def mean_knn_ranking(graph: Any) -> Ranking:
    """Off-topic ranking by mean distance to the k nearest neighbours (largest first).

    ``graph`` is a :class:`quality_assets.knn.KnnGraph`.
    """
    return _order(-graph.distances.astype(np.float64).mean(axis=1))
