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

Graph version, O(N log N) time and O(N k) memory (plus the component search, when used):

1. Single linkage = Kruskal on the minimum spanning tree. The MST of the kNN graph (symmetrised)
   equals the true MST whenever the graph holds every true MST edge (k large enough, see
   docs/benchmarks/knn_scores.md for the agreement with the dense version).
2. A kNN graph can fall apart into components (a batch of off-topic images that only see each
   other, or well separated classes). Given the vectors, components are joined by Borůvka
   rounds at measured distances: exactly (the true single-linkage heights) for the smallest
   components while a budget of 5e8 distance evaluations per round lasts - every component of
   a set below ~22k samples, and small far batches in any set - and from 16 representatives
   per component refined by nearest-member descent beyond it (real distances, upper bounds on
   the true heights; exhaustive between a group and its 3 likeliest partners when they are
   small enough). Without vectors the graph has no distance between components, only the
   fact that none is within anybody's k nearest: they are joined at the largest distance the
   graph holds, above every MST edge, the smallest components last so the walk reaches them
   first. That keeps a far batch on top but cannot order whole clusters among themselves the
   way the dense dendrogram does.
3. Union-find over the MST edges sorted by distance builds the merge tree.
4. The walk is a prefix sum along root-to-leaf paths: a leaf's area is the sum, over the nodes
   on its path, of the node's own rectangle plus (for a larger child) the whole area of its
   smaller sibling's subtree, which is width x parent height. Pointer jumping evaluates all
   those path sums in O(N log depth) vectorised steps, so a deep chain-like dendrogram (single
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
(`pixel_vectors`; the service uses 8x8 averages, `pixel_copies.search_vectors`; these notes were
measured at 16x16, which gives the same AP on the demo) and its kNN graph (`pixel_graph`). Three terms, each the log of a distance
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

import faiss
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from quality_assets.knn import KnnGraph

__all__ = [
    "group_join_heights",
    "lad_from_merge_tree",
    "lad_scores",
    "mean_knn_distance_scores",
    "merge_tree_from_graph",
    "off_topic_evidence",
    "off_topic_scores",
]

# csgraph drops explicit zeros: exact-duplicate edges would vanish without this lift.
_ZERO_LIFT = 1e-9
# Member x sample distances per Borůvka round spent on exact component searches (~1 s at
# d = 128 on two cores); representatives per component and refined partners beyond that.
_EXACT_PAIRS = 5e8
_REPS = 16
_PARTNERS = 3
# Two groups up to this many member pairs are compared exhaustively to find their closest pair.
_PAIR_EXACT = 2e6


def merge_tree_from_graph(
    graph: KnnGraph, vectors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-linkage merge tree of the kNN graph as (children [N-1, 2], height [N-1], count [N-1]).

    Node ids follow scipy's linkage convention: leaves 0..N-1, merge t creates node N + t.
    children[t, 0] is the smaller child (ties: the smaller node id). With `vectors`, graph
    components are joined at measured distances (see `lad_scores`).
    """
    n = graph.n
    w = graph.to_csr(offset=_ZERO_LIFT)
    n_comp, comp = connected_components(w, directed=False)
    mst = minimum_spanning_tree(w).tocoo()
    u = mst.row.astype(np.int64)
    v = mst.col.astype(np.int64)
    h = mst.data.astype(np.float64) - _ZERO_LIFT
    if n_comp > 1 and vectors is not None:
        eu, ev, eh = _component_edges(graph, vectors, comp)
        u, v, h = np.concatenate([u, eu]), np.concatenate([v, ev]), np.concatenate([h, eh])
    elif n_comp > 1:
        sizes = np.bincount(comp, minlength=n_comp)
        first_member = np.full(n_comp, n, dtype=np.int64)
        np.minimum.at(first_member, comp, np.arange(n, dtype=np.int64))
        by_size = np.lexsort((np.arange(n_comp), -sizes))  # largest first
        hub = first_member[by_size[0]]
        others = first_member[by_size[1:]]  # decreasing size: the smallest joins last
        top = float(graph.distances.max())
        u = np.concatenate([u, np.full(others.size, hub, dtype=np.int64)])
        v = np.concatenate([v, others])
        h = np.concatenate([h, np.full(others.size, top)])
    h = np.maximum(h, 0.0)
    order = np.argsort(h, kind="stable")  # connecting edges were appended last: they stay last
    return _kruskal(n, u[order], v[order], h[order])


def _component_edges(
    graph: KnnGraph,
    vectors: np.ndarray,
    comp: np.ndarray,
    reps_per_component: int = _REPS,
    exact_pairs: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measured edges between the graph's components (u, v, cosine distance): Borůvka rounds.

    Each round every super-component (a group of components joined so far) takes its closest
    pair to another one; the edges merge them; rounds repeat until one is left (at most
    log2 C rounds for C components).

    * Exact, smallest super-components first, while the round's budget of `exact_pairs`
      member x sample distances lasts: every member is searched against all samples, so the
      edge is the true single-linkage height (an off-topic batch is such a component; below
      ~22k samples every component is exact).
    * Approximate beyond the budget: `reps_per_component` representatives per super-component
      (half its most isolated members by first-neighbour distance, half random) find their
      closest representatives elsewhere; for the 3 closest partner groups the closest pair is
      found exhaustively when the two groups have at most 2e6 member pairs, else refined by
      alternating nearest-member descent (a's closest member on b's side, then b's closest
      on a's side, ...); the shortest pair is the edge: a real distance, exact for the chosen
      partner unless descent was used, and an upper bound on the true height. Cost
      O((C R)^2 d + 3 C 2e6 d) per round at most.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = x.shape[0]
    if n != graph.n:
        raise ValueError(f"vectors has {n} rows for a graph of {graph.n} samples")
    if exact_pairs is None:
        exact_pairs = _EXACT_PAIRS
    rng = np.random.default_rng(0)
    first_d = graph.distances[:, 0]
    sample_lab = np.unique(comp, return_inverse=True)[1]
    eu: list[int] = []
    ev: list[int] = []
    eh: list[float] = []
    while True:
        n_lab = int(sample_lab.max()) + 1
        if n_lab == 1:
            break
        sizes = np.bincount(sample_lab, minlength=n_lab)
        s_order = np.argsort(sample_lab, kind="stable")
        s_bounds = np.r_[0, np.cumsum(sizes)]
        best: dict[int, tuple[float, int, int]] = {}

        # exact part, smallest groups first
        by_size = np.argsort(sizes, kind="stable")
        cost = np.where(sizes[by_size] <= 64, sizes[by_size] * float(n),
                        sizes[by_size] * float(n) - sizes[by_size] ** 2.0)
        exact = by_size[np.cumsum(cost) <= exact_pairs]
        small = exact[sizes[exact] <= 64]
        if small.size:
            members = np.concatenate([s_order[s_bounds[c] : s_bounds[c + 1]] for c in small])
            kk = int(min(n, sizes[small].max() + 1))
            for q0 in range(0, members.size, 4096):
                qs = members[q0 : q0 + 4096]
                sims, ids = faiss.knn(x[qs], x, kk, metric=faiss.METRIC_INNER_PRODUCT)
                outside = (ids >= 0) & (sample_lab[np.maximum(ids, 0)] != sample_lab[qs][:, None])
                col = np.argmax(outside, axis=1)  # a group of m has an outsider in m + 1 results
                rows = np.arange(qs.size)
                found = zip(qs.tolist(), ids[rows, col].tolist(), sims[rows, col].tolist())
                for q, t, sim in found:
                    c = int(sample_lab[q])
                    if c not in best or sim > best[c][0]:
                        best[c] = (sim, q, t)
        for c in exact[sizes[exact] > 64].tolist():
            members = s_order[s_bounds[c] : s_bounds[c + 1]]
            best[c] = _nearest_outside(x, members, sample_lab, c)

        # approximate part: representatives, then refinement
        done = np.fromiter(best.keys(), dtype=np.int64, count=len(best))
        todo = np.setdiff1d(np.arange(n_lab), done)
        if todo.size:
            reps_list = []
            for c in range(n_lab):  # every group offers targets, only `todo` ones search
                m = s_order[s_bounds[c] : s_bounds[c + 1]]
                if m.size <= reps_per_component:
                    reps_list.append(m)
                    continue
                half = reps_per_component // 2
                iso = m[np.argsort(-first_d[m], kind="stable")[:half]]
                rest = np.setdiff1d(m, iso)
                pick = rng.choice(rest, reps_per_component - half, replace=False)
                reps_list.append(np.concatenate([iso, pick]))
            reps = np.concatenate(reps_list)
            lab = sample_lab[reps]
            queries = np.flatnonzero(np.isin(lab, todo))
            xr = x[reps]
            cand: dict[tuple[int, int], tuple[float, int, int]] = {}
            for q0 in range(0, queries.size, 1024):
                qi = queries[q0 : q0 + 1024]
                sims = x[reps[qi]] @ xr.T
                sims[lab[qi][:, None] == lab[None, :]] = -np.inf
                top = np.argsort(-sims, axis=1)[:, : 4 * _PARTNERS]
                for row, q in enumerate(qi.tolist()):
                    for j in top[row].tolist():
                        key = (int(lab[q]), int(lab[j]))
                        val = float(sims[row, j])
                        if key not in cand or val > cand[key][0]:
                            cand[key] = (val, int(reps[q]), int(reps[j]))
            by_group: dict[int, list[tuple[float, int, int]]] = {}
            for (c, _), v in cand.items():
                by_group.setdefault(c, []).append(v)
            for c, options in by_group.items():
                for _, a, b in sorted(options, reverse=True)[:_PARTNERS]:
                    side_a = s_order[s_bounds[c] : s_bounds[c + 1]]
                    cb = int(sample_lab[b])
                    side_b = s_order[s_bounds[cb] : s_bounds[cb + 1]]
                    if float(side_a.size) * side_b.size <= _PAIR_EXACT:
                        sim, a, b = _closest_between(x, side_a, side_b)
                    else:
                        a, b, sim = _refine_pair(x, a, b, sample_lab, s_order, s_bounds)
                    if c not in best or sim > best[c][0]:
                        best[c] = (sim, a, b)

        a_arr = np.asarray([v[1] for v in best.values()], dtype=np.int64)
        b_arr = np.asarray([v[2] for v in best.values()], dtype=np.int64)
        sims_arr = np.asarray([v[0] for v in best.values()])
        eu.extend(a_arr.tolist())
        ev.extend(b_arr.tolist())
        eh.extend(np.clip((1.0 - sims_arr) / 2.0, 0.0, 1.0).tolist())
        link = sp.coo_matrix(
            (np.ones(a_arr.size), (sample_lab[a_arr], sample_lab[b_arr])), shape=(n_lab, n_lab)
        )
        _, merged = connected_components(link, directed=False)
        sample_lab = merged[sample_lab]
    return (
        np.asarray(eu, dtype=np.int64),
        np.asarray(ev, dtype=np.int64),
        np.asarray(eh, dtype=np.float64),
    )


def _closest_between(
    x: np.ndarray, side_a: np.ndarray, side_b: np.ndarray
) -> tuple[float, int, int]:
    """(cosine, a, b) of the closest pair between two groups, by brute force."""
    best = (-np.inf, -1, -1)
    xb = x[side_b]
    for q0 in range(0, side_a.size, 512):
        qa = side_a[q0 : q0 + 512]
        sims = x[qa] @ xb.T
        flat = int(np.argmax(sims))
        qi, bi = divmod(flat, side_b.size)
        if sims[qi, bi] > best[0]:
            best = (float(sims[qi, bi]), int(qa[qi]), int(side_b[bi]))
    return best


def _nearest_outside(
    x: np.ndarray, members: np.ndarray, sample_lab: np.ndarray, c: int
) -> tuple[float, int, int]:
    """(cosine, member, outsider) of the closest pair between a group and everything else."""
    outside = np.flatnonzero(sample_lab != c)
    best = (-np.inf, -1, -1)
    # 512 x 32768 float32 blocks: 64 MB of temporaries whatever the sizes.
    for q0 in range(0, members.size, 512):
        qidx = members[q0 : q0 + 512]
        q = x[qidx]
        for b0 in range(0, outside.size, 32_768):
            block = outside[b0 : b0 + 32_768]
            sims = q @ x[block].T
            flat = int(np.argmax(sims))
            qi, bi = divmod(flat, block.size)
            if sims[qi, bi] > best[0]:
                best = (float(sims[qi, bi]), int(qidx[qi]), int(block[bi]))
    return best


def _refine_pair(
    x: np.ndarray,
    a: int,
    b: int,
    sample_lab: np.ndarray,
    s_order: np.ndarray,
    s_bounds: np.ndarray,
    steps: int = 4,
) -> tuple[int, int, float]:
    """Alternating nearest-member descent from a representative pair towards the closest pair
    between the two super-components (each step is one query against one side's members)."""
    side_a = s_order[s_bounds[sample_lab[a]] : s_bounds[sample_lab[a] + 1]]
    side_b = s_order[s_bounds[sample_lab[b]] : s_bounds[sample_lab[b] + 1]]
    sim = float(x[a] @ x[b])
    for _ in range(steps):
        sa = x[side_a] @ x[b]
        a_new = int(side_a[np.argmax(sa)])
        sb = x[side_b] @ x[a_new]
        b_new = int(side_b[np.argmax(sb)])
        new_sim = float(sb.max())
        if (a_new, b_new) == (a, b) or new_sim <= sim:
            if new_sim > sim:
                a, b, sim = a_new, b_new, new_sim
            break
        a, b, sim = a_new, b_new, new_sim
    return a, b, sim


def _kruskal(
    n: int, u: np.ndarray, v: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parent = list(range(n))
    node_of = list(range(n))  # union-find root -> current tree node id
    size = [1] * (2 * n - 1)
    children = np.empty((n - 1, 2), dtype=np.int64)
    heights = np.empty(n - 1, dtype=np.float64)
    t = 0
    for a, b, w in zip(u.tolist(), v.tolist(), h.tolist()):
        ra = a
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]  # path halving
            ra = parent[ra]
        rb = b
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra == rb:
            continue
        na, nb_ = node_of[ra], node_of[rb]
        sa, sb = size[na], size[nb_]
        if sa > sb or (sa == sb and na > nb_):
            na, nb_ = nb_, na
        children[t, 0] = na
        children[t, 1] = nb_
        heights[t] = w
        new = n + t
        size[new] = sa + sb
        if sa < sb:  # union by size keeps the find paths short
            parent[ra] = rb
            node_of[rb] = new
        else:
            parent[rb] = ra
            node_of[ra] = new
        t += 1
    if t != n - 1:  # cannot happen: components were connected above
        raise RuntimeError(f"merge tree has {t} merges for {n} leaves")
    counts = np.asarray(size[n:], dtype=np.int64)
    return children, heights, counts


def lad_from_merge_tree(
    children: np.ndarray, heights: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """LAD score per leaf from a merge tree (scipy linkage layout, smaller child first)."""
    m = children.shape[0]
    n = m + 1
    total = 2 * n - 1
    height = np.zeros(total, dtype=np.float64)
    height[n:] = heights
    count = np.ones(total, dtype=np.float64)
    count[n:] = counts
    parent = np.full(total, total - 1, dtype=np.int64)
    first, second = children[:, 0], children[:, 1]
    internal = np.arange(n, total, dtype=np.int64)
    parent[first] = internal
    parent[second] = internal
    root = total - 1
    h_parent = height[parent]
    width = count / n
    delta = width * (h_parent - height)
    # The larger child is reached after the smaller child's whole subtree, whose area is its
    # width times the parent's height (each column of a subtree sums to the height above it).
    delta[second] += width[first] * height[internal]
    delta[root] = 0.0
    nxt = parent.copy()
    nxt[root] = root
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


def group_join_heights(
    children: np.ndarray, heights: np.ndarray, counts: np.ndarray, group_size: int
) -> np.ndarray:
    """Per leaf, the merge height at which its cluster first holds `group_size` samples.

    group_size = 2 is the height at which the sample stops being alone (its single-linkage
    nearest-neighbour distance). Larger sizes make the isolation batch-aware: the members of a
    far group smaller than `group_size` all get the group's join height, however close they
    sit to each other. Capped at N (the root). Pointer jumping: O(N log depth).
    """
    m = children.shape[0]
    n = m + 1
    total = 2 * n - 1
    height = np.zeros(total, dtype=np.float64)
    height[n:] = heights
    count = np.ones(total, dtype=np.int64)
    count[n:] = counts
    parent = np.arange(total, dtype=np.int64)  # the root points to itself
    internal = np.arange(n, total, dtype=np.int64)
    parent[children[:, 0]] = internal
    parent[children[:, 1]] = internal
    size = min(int(group_size), n)
    target = np.where(count >= size, np.arange(total, dtype=np.int64), parent)
    while True:
        jumped = target[target]
        if np.array_equal(jumped, target):
            break
        target = jumped
    return height[target[:n]]


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
