"""Off-topic samples: SelfClean's LAD score on the kNN graph, and a mean-kNN-distance baseline.

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
   other, or well separated classes). Given the vectors, components are joined Borůvka-style
   at measured distances: each component's closest outsider is searched exactly (all
   members) when the component is small or while a budget of 2e9 member x outsider distances
   per round lasts, and from up to 64 members (periphery + random, an upper bound) beyond,
   so small far groups join at their true single-linkage height. Without vectors the graph has
   no distance between components, only the fact that none is within anybody's k nearest:
   they are joined at the largest distance the graph holds, above every MST edge, the smallest
   components last so the walk reaches them first. That keeps a far batch on top but cannot
   order whole clusters among themselves the way the dense dendrogram does.
3. Union-find over the MST edges sorted by distance builds the merge tree.
4. The walk is a prefix sum along root-to-leaf paths: a leaf's area is the sum, over the nodes
   on its path, of the node's own rectangle plus (for a larger child) the whole area of its
   smaller sibling's subtree, which is width x parent height. Pointer jumping evaluates all
   those path sums in O(N log depth) vectorised steps, so a deep chain-like dendrogram (single
   linkage makes many) costs no recursion.
"""

from __future__ import annotations

import faiss
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from quality_assets.knn import KnnGraph

__all__ = ["lad_scores", "mean_knn_distance_scores", "merge_tree_from_graph"]

# csgraph drops explicit zeros: exact-duplicate edges would vanish without this lift.
_ZERO_LIFT = 1e-9
# Member x outsider distance evaluations allowed for an exact component search (~3 s at d=128
# on two cores); beyond it a component is searched from a sample of its members.
_EXACT_PAIRS = 2e9
# Sampled member queries per Borůvka round over all large components together.
_REP_BUDGET = 4096


def merge_tree_from_graph(
    graph: KnnGraph, vectors: np.ndarray | None = None, *, reps_per_component: int = 64
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
        eu, ev, eh = _component_edges(graph, vectors, comp, reps_per_component)
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


def _nearest_outside(
    x: np.ndarray, queries: np.ndarray, comp: np.ndarray, c: int
) -> tuple[int, int, float]:
    """(query, target, cosine) of the closest pair between `queries` and samples outside c."""
    outside = np.flatnonzero(comp != c)
    best = (-1, -1, -np.inf)
    # 512 x 32768 float32 blocks: 64 MB of temporaries whatever the sizes.
    for qs in range(0, queries.size, 512):
        qidx = queries[qs : qs + 512]
        q = x[qidx]
        for start in range(0, outside.size, 32_768):
            block = outside[start : start + 32_768]
            sims = q @ x[block].T
            flat = int(np.argmax(sims))
            qi, bi = divmod(flat, block.size)
            if sims[qi, bi] > best[2]:
                best = (int(qidx[qi]), int(block[bi]), float(sims[qi, bi]))
    return best


def _component_edges(
    graph: KnnGraph,
    vectors: np.ndarray,
    comp: np.ndarray,
    reps_per_component: int,
    exact_pairs: float = _EXACT_PAIRS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Borůvka rounds over the graph's components with measured distances.

    Each round, every component finds its closest sample outside itself: exactly (all members
    searched) when the component has at most `reps_per_component` samples or while the round's
    budget of `exact_pairs` member x outsider evaluations lasts (smallest first); otherwise from a sample of its members (half those with the
    largest first-neighbour distance, half random; `reps_per_component` each, fewer - at least
    4 - when many large components share the round's budget of 4096), an upper bound. Found
    edges merge components; rounds repeat until one component is left, at most
    log2(#components) rounds.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = x.shape[0]
    if n != graph.n:
        raise ValueError(f"vectors has {n} rows for a graph of {graph.n} samples")
    rng = np.random.default_rng(0)
    first_d = graph.distances[:, 0]
    comp = comp.copy()
    eu: list[int] = []
    ev: list[int] = []
    eh: list[float] = []
    while True:
        labels, comp = np.unique(comp, return_inverse=True)
        n_comp = labels.size
        if n_comp == 1:
            break
        order = np.argsort(comp, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(comp, minlength=n_comp))]
        small = np.diff(bounds) <= reps_per_component
        # Small components, all members at once: their nearest outsider is within the first
        # (component size + 1) results, which faiss finds exactly by brute force.
        small_members = order[np.repeat(small, np.diff(bounds))]
        best_sim = np.full(n_comp, -np.inf)
        best_pair = np.full((n_comp, 2), -1, dtype=np.int64)
        if small_members.size:
            kk = int(min(n, np.diff(bounds)[small].max() + 1))
            for start in range(0, small_members.size, 4096):
                qs = small_members[start : start + 4096]
                sims, ids = faiss.knn(x[qs], x, kk, metric=faiss.METRIC_INNER_PRODUCT)
                outside = (ids >= 0) & (comp[np.maximum(ids, 0)] != comp[qs][:, None])
                col = np.argmax(outside, axis=1)
                rows = np.arange(qs.size)
                s = np.where(outside[rows, col], sims[rows, col], -np.inf)
                tgt = ids[rows, col]
                for q, t, val in zip(qs.tolist(), tgt.tolist(), s.tolist()):
                    c = comp[q]
                    if val > best_sim[c]:
                        best_sim[c] = val
                        best_pair[c] = (q, t)
        large = np.flatnonzero(~small)
        # A shared budget of sampled queries per round keeps many large components affordable.
        reps = int(np.clip(_REP_BUDGET // max(1, large.size), 4, reps_per_component))
        exact_left = exact_pairs  # shared by the round, smallest components first
        for c in large[np.argsort(np.diff(bounds)[large], kind="stable")]:
            members = order[bounds[c] : bounds[c + 1]]
            cost = float(members.size) * float(n - members.size)
            if cost <= exact_left:
                exact_left -= cost
                queries = members
            else:
                half = reps // 2
                periphery = members[np.argsort(-first_d[members], kind="stable")[:half]]
                rest = np.setdiff1d(members, periphery)
                take = min(rest.size, reps - half)
                queries = np.concatenate([periphery, rng.choice(rest, size=take, replace=False)])
            q, t, sim = _nearest_outside(x, queries, comp, int(c))
            best_pair[c] = (q, t)
            best_sim[c] = sim
        found = best_pair[:, 0] >= 0
        a, b = best_pair[found, 0], best_pair[found, 1]
        eu.extend(a.tolist())
        ev.extend(b.tolist())
        eh.extend(np.clip((1.0 - best_sim[found]) / 2.0, 0.0, 1.0).tolist())
        link = sp.coo_matrix(
            (np.ones(a.size), (comp[a], comp[b])), shape=(n_comp, n_comp)
        )
        _, merged = connected_components(link, directed=False)
        comp = merged[comp]
    return (
        np.asarray(eu, dtype=np.int64),
        np.asarray(ev, dtype=np.int64),
        np.asarray(eh, dtype=np.float64),
    )


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
