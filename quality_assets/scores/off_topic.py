"""Off-topic samples: SelfClean's LAD, a two-view score that fixes its failures, a mean-kNN baseline.

LAD (from the SelfClean paper) reads the single-linkage dendrogram. Each node of the
dendrogram owns an interval of the unit "weight" axis whose width is its share of the leaves;
a node's children split its interval by their leaf counts, smaller child first (ties: the child
formed earlier). Each node draws a rectangle as wide as its interval, from its own merge height
up to its parent's. Walking the tree depth-first from the root, smaller child first, a leaf's
score is the total area drawn when the walk reaches it (its own rectangle included). Samples
that join late (large merge height) and into small clusters are reached first, with little
area accumulated, so they score lowest. Scores are divided by the root height (the total area),
so they lie in (0, 1] and lower = more off-topic.

This is the walk as described in the paper, with the children's intervals partitioning the
parent's. SelfClean's reference code places the larger child at a different offset and adds
left-over "white space" rectangles later; that changes the numbers, not the idea.

Graph version: the merge tree comes from the kNN graph (`merge_tree.merge_tree_from_graph`, which
joins a disconnected graph's components at measured distances when given the vectors), O(N log N)
time and O(N k) memory. The walk is a prefix sum along root-to-leaf paths: a leaf's area is the
sum, over the nodes on its path, of the node's own rectangle plus (for a larger child) the whole
area of its smaller sibling's subtree, which is width x parent height. Pointer jumping evaluates
all those path sums in O(N log depth) vectorised steps, so a deep chain-like dendrogram (single
linkage makes many) costs no recursion.

Two-view score (`off_topic_scores`, the one to report when a pixel view exists)
------------------------------------------------------------------------------
LAD alone fails in two measured ways. (a) Encoder collapse: an SSL encoder maps inputs it was
not trained on into a tight clump (on the MNIST demo, 20 photos had an inner 1-NN distance of
0.037 against 0.095 between digits, 20 heavily blurred digits 0.001), which single linkage
merges early, so LAD and mean kNN distance rank them as inliers. (b) LAD's visit order: with two
equal classes in separate components, the walk covers a whole class before an outlier inside
the other one, and the top of the ranking fills with merely unusual in-domain samples (odd
handwriting) that join the tree late.

A second, cheap view fixes both: per sample a small grayscale thumbnail, zero-mean, unit-norm
(`pixel_vectors`; the service uses 14x14 averages, `pixel_view.graph_vectors`; these notes were
measured at 16x16) and its kNN graph (`pixel_graph`). Three terms, each the log of a distance
over its dataset median (0 = typical, +1 = e times farther than typical; distances below 1 %
of the median count as that floor, so exact copies read as "very close", not as infinitely so):

* collapse = log(pixel spread / median) - log(SSL spread / median), where SSL spread is the
  mean cosine distance to the sample's first 8 SSL neighbours and pixel spread the mean pixel
  distance to those same neighbours. High when the encoder calls images near-identical that
  look nothing alike: the encoder does not represent them, so they are outside its domain.
  Copies (close in both views) and ordinary neighbours (both views agree) score about 0.
* isolation_ssl, isolation_pixel = log of the single-linkage height at which the sample's
  cluster first holds 32 samples (`group_join_heights`), each view on its own merge tree. It is
  the nearest-neighbour distance made batch-aware: every member of a far group of fewer than 32
  gets the group's join height, however tight the group. It is local (no visit order), so an
  outlier inside one of two separate classes is not pushed behind the other class.
* evidence = max(collapse, (isolation_ssl + isolation_pixel) / 2); score = 1 / (1 + e^evidence),
  0.5 = typical, lower = more off-topic. Isolation counts as the geometric mean of the two
  views' ratios: a sample far out in both is off-topic; one far only in the SSL space (a hard
  but in-domain sample) or only in pixels (an unusual rendering of a familiar thing) counts
  half. Everything is relative to the dataset's own medians: no threshold, no data-set
  constant. The score is monotone in the evidence, so the SelfClean logit cut-off applies.

Measured on the offline MNIST demo (5k digits + 20 photos + 20 degraded digits, two demo runs
with differently trained encoders; docs/benchmarks/knn_scores.md): AP 0.97 / 0.93 against
LAD 0.10 / 0.38 and mean kNN 0.01 / 0.03. Cost on top of LAD: one more merge tree (the pixel
graph's) and N x 8 dot products of 256-d thumbnails, in chunks: O(N k) memory.

Limits: augmented copies (close in SSL by training, far in pixels) look like collapse; on the
demo 8 of the top 100 were such copies (they are reported as near duplicates anyway). Without
a pixel view `off_topic_scores` is LAD. `lad_scores` stays SelfClean's LAD, unchanged.
"""

from __future__ import annotations

import numpy as np

from quality_assets.knn import KnnGraph
from quality_assets.scores.merge_tree import group_join_heights, merge_tree_from_graph, tree_nodes

# The tree's own names stay importable from here, where callers found them before the split.
__all__ = [
    "group_join_heights",
    "lad_from_merge_tree",
    "lad_scores",
    "mean_knn_distance_scores",
    "merge_tree_from_graph",
    "off_topic_evidence",
    "off_topic_scores",
    "robust_z",
]


def lad_from_merge_tree(
    children: np.ndarray, heights: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """LAD score per leaf from a merge tree (scipy linkage layout, smaller child first)."""
    n = children.shape[0] + 1
    height, count, parent = tree_nodes(children, heights, counts)
    first, second = children[:, 0], children[:, 1]
    internal = np.arange(n, 2 * n - 1, dtype=np.int64)
    root = 2 * n - 2
    h_parent = height[parent]
    width = count / n
    delta = width * (h_parent - height)
    # The larger child is reached after the smaller child's whole subtree, whose area is its
    # width times the parent's height (each column of a subtree sums to the height above it).
    delta[second] += width[first] * height[internal]
    delta[root] = 0.0
    nxt = parent  # the root is its own parent: paths stop there
    val = delta
    while True:
        done = nxt == root
        if done.all():
            break
        val = val + np.where(done, 0.0, val[nxt])
        nxt = nxt[nxt]
    # After the loop val holds the path sum up to, not including, the root's own (zero) delta.
    scores = val[:n]
    h_root = height[root]
    if h_root <= 0:
        return np.ones(n, dtype=np.float64)
    return np.clip(scores / h_root, 0.0, 1.0)


def lad_scores(graph: KnnGraph, vectors: np.ndarray | None = None) -> np.ndarray:
    """LAD off-topic score per sample in (0, 1]; lower = joins later and into smaller clusters.

    vectors: the L2-normalised vectors the graph was built from. Only used when the graph is
    disconnected, to join its components at measured distances instead of all at the top.
    """
    children, heights, counts = merge_tree_from_graph(graph, vectors)
    return lad_from_merge_tree(children, heights, counts)


def mean_knn_distance_scores(graph: KnnGraph, k: int | None = None) -> np.ndarray:
    """Baseline: 1 - mean distance to the first k neighbours / its maximum (0 = most isolated)."""
    kk = graph.k if k is None else int(k)
    if not 1 <= kk <= graph.k:
        raise ValueError(f"k must be in [1, {graph.k}], got {kk}")
    m = graph.distances[:, :kk].astype(np.float64).mean(axis=1)
    top = m.max()
    if top <= 0:
        return np.ones(graph.n, dtype=np.float64)
    return 1.0 - m / top


def _relative_log(values: np.ndarray, floor_fraction: float) -> np.ndarray:
    """log(value / median), with values below `floor_fraction` x median raised to that floor."""
    med = float(np.median(values))
    if med <= 0:  # over half the samples sit at distance 0: nothing is typical, no evidence
        return np.zeros(values.shape, dtype=np.float64)
    return np.log(np.maximum(values, floor_fraction * med) / med)


def _pixel_distance_to_neighbours(
    pixel_vectors: np.ndarray, neighbors: np.ndarray, chunk: int = 16_384
) -> np.ndarray:
    """Mean cosine distance, in the pixel view, from each sample to its given neighbours."""
    n, k = neighbors.shape
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):  # chunk x k x d floats at a time, not N x k x d
        rows = pixel_vectors[s : s + chunk]
        sims = np.einsum("id,ikd->ik", rows, pixel_vectors[neighbors[s : s + chunk]])
        out[s : s + chunk] = np.clip((1.0 - sims) / 2.0, 0.0, 1.0).mean(axis=1)
    return out


def off_topic_evidence(
    graph: KnnGraph,
    vectors: np.ndarray | None,
    pixel_graph: KnnGraph,
    pixel_vectors: np.ndarray,
    *,
    neighbours: int = 8,
    group_size: int = 32,
    floor_fraction: float = 0.01,
) -> dict[str, np.ndarray]:
    """The three terms of the two-view off-topic score, in log units (0 = typical, higher = worse).

    Returns ``collapse``, ``isolation_ssl``, ``isolation_pixel`` and ``evidence`` =
    max(collapse, (isolation_ssl + isolation_pixel) / 2); see the module docstring.
    """
    x = np.ascontiguousarray(pixel_vectors, dtype=np.float32)
    n = graph.n
    if pixel_graph.n != n or x.shape[0] != n:
        raise ValueError(
            f"pixel view has {pixel_graph.n} graph rows and {x.shape[0]} vectors "
            f"for an embedding graph of {n} samples"
        )
    if x.ndim != 2 or not np.all(np.isfinite(x)):
        raise ValueError("pixel_vectors must be a finite [N, d] array")
    kk = min(int(neighbours), graph.k, pixel_graph.k)
    if kk < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    nb = graph.neighbors[:, :kk]
    ssl_spread = graph.distances[:, :kk].astype(np.float64).mean(axis=1)
    pixel_spread = _pixel_distance_to_neighbours(x, nb)
    collapse = _relative_log(pixel_spread, floor_fraction) - _relative_log(ssl_spread, floor_fraction)
    tree = merge_tree_from_graph(graph, vectors)
    iso_ssl = _relative_log(group_join_heights(*tree, group_size), floor_fraction)
    pixel_tree = merge_tree_from_graph(pixel_graph, x)
    iso_pix = _relative_log(group_join_heights(*pixel_tree, group_size), floor_fraction)
    evidence = np.maximum(collapse, (iso_ssl + iso_pix) / 2.0)
    return {
        "collapse": collapse,
        "isolation_ssl": iso_ssl,
        "isolation_pixel": iso_pix,
        "evidence": evidence,
    }


def off_topic_scores(
    graph: KnnGraph,
    vectors: np.ndarray | None = None,
    pixel_graph: KnnGraph | None = None,
    pixel_vectors: np.ndarray | None = None,
    **options: float,
) -> np.ndarray:
    """Off-topic score per sample in (0, 1); lower = more off-topic.

    With a pixel view (both `pixel_graph` and `pixel_vectors`): 1 / (1 + exp(evidence)) of
    `off_topic_evidence` (0.5 = typical). Without one: SelfClean's LAD (`lad_scores`).
    `options` go to `off_topic_evidence` (neighbours, group_size, floor_fraction).
    """
    if (pixel_graph is None) != (pixel_vectors is None):
        raise ValueError("pass pixel_graph and pixel_vectors together, or neither")
    if pixel_graph is None:
        return lad_scores(graph, vectors)
    evidence = off_topic_evidence(graph, vectors, pixel_graph, pixel_vectors, **options)["evidence"]
    return 1.0 / (1.0 + np.exp(np.clip(evidence, -50.0, 50.0)))


def property_isolation(property_graph: KnnGraph, *, group_size: int = 32, floor_fraction: float = 0.01) -> np.ndarray:
    """Isolation in the property view (`quality_assets.property_view`), in log units like the
    other terms: the single-linkage height at which a sample's cluster first holds `group_size`
    samples, relative to the median. A batch of foreign images smaller than the group still
    joins late.

    The view's graph stores distances squashed into [0, 1) as d / (d + s); the heights are read
    back as d / s (single linkage is unchanged by a monotone map of its distances, and s cancels
    against the median). Squashed, every far batch read as about the same isolation, so a batch
    of photos among icons could not outweigh the learned views' ordinary tail."""
    children, heights, counts = merge_tree_from_graph(property_graph, None)
    heights = heights / np.maximum(1.0 - heights, 1e-7)
    return _relative_log(group_join_heights(children, heights, counts, group_size), floor_fraction)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(value - median) / spread: how many typical spreads a sample sits above the bulk. The spread
    is 1.4826 x the median absolute deviation, at least 5% of the standard deviation (as the
    property view standardises its columns): where nearly every sample ties, a MAD of almost 0
    would turn any small difference into thousands of spreads. NaN reads as the median; a
    constant array gives zeros."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(x.shape)
    med = float(np.median(x[finite]))
    x = np.where(finite, x, med)
    spread = max(1.4826 * float(np.median(np.abs(x - med))), 0.05 * float(x.std()))
    return (x - med) / spread if spread > 0 else np.zeros(x.shape)


def fused_off_topic_scores(learned_scores: np.ndarray, property_graph: KnnGraph | None, **options: float) -> np.ndarray:
    """The learned views' score fused with the property view's isolation, in (0, 1), lower = more
    off-topic. Each view's evidence (the learned score's log-odds, the property isolation in log
    units) becomes a robust z-score against its own bulk (`robust_z`); the fused evidence is the
    larger of the two, the property one less whatever the learned views find the sample more
    typical than their median, and the score is 1 / (1 + e^evidence). Without a property view:
    `learned_scores`.

    Why z-scores and not ranks: each view's top ranks hold its merely unusual samples, whatever the
    view's quality. A rank fusion (the smaller of the two rank p-values, doubled) let a weak learned
    view (DINO on 600 icons) put its ordinary tail level with the property view's far batch of
    photos. In spreads above the bulk, a view that truly isolates a sample says so by a wide margin
    (the protocol's photos and blurred images sit 5-17 spreads out) and a view that does not, does
    not (the weak view's best ordinary icon: 6). Off-topic AP on nine matrix cells, the same DINO
    models, rank fusion -> this, each dataset's seed mean: mnist 0.99 -> 1.00, animal_mnist 0.96 ->
    0.99, openclipart 0.72 -> 0.94, oxygen_icons 0.56 -> 0.94 (docs/benchmarks/matrix.md, "Update
    2026-12-01 (4)"). The flag (SelfClean's cut on this score) now follows the contamination, where
    the rank fusion flagged about the same small share of any data; the cost is more flags on
    copy-free data with a statistically distinct minority (2.9% of clean clip art: full-bleed
    pictures such as signal flags)."""
    if property_graph is None:
        return learned_scores
    iso = property_isolation(property_graph, **options)
    clipped = np.clip(np.asarray(learned_scores, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    learned_evidence = np.log1p(-clipped) - np.log(clipped)  # -logit: 0 at a typical 0.5
    learned_z = robust_z(learned_evidence)
    # Unusual statistics say less about a sample the learned views hold in a denser-than-typical
    # neighbourhood of its kind (a large white bear silhouette among animal silhouettes): its
    # property evidence loses what the learned views find it more typical than the median. Clean
    # seed-0/1 cells flagged 1.63% -> 0% (animal_mnist s1), 2.09% -> 0.87% (icons), with AP within
    # 0.011 on every contaminated cell.
    evidence = np.maximum(learned_z, robust_z(iso) + np.minimum(learned_z, 0.0))
    # Clipped where float64 still tells the scores apart: the ranking reads them.
    return 1.0 / (1.0 + np.exp(np.clip(evidence, -700.0, 700.0)))
