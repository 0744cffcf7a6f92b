"""Single-linkage merge tree of a kNN graph, and walks over it.

Single linkage of N samples is a binary tree of N - 1 merges (scipy's linkage layout: leaves
0..N-1, merge t creates node N + t at a height, the distance that joined the two clusters).
Built from the kNN graph rather than all N^2 distances: O(N log N) time and O(N k) memory (plus
the component search, when used).

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
   graph holds, above every MST edge, the smallest components last so that a walk visiting
   small late-joining clusters first (LAD, `off_topic.lad_from_merge_tree`) reaches them
   first. That keeps a far batch on top but cannot order whole clusters among themselves the
   way the dense dendrogram does.
3. Union-find over the MST edges sorted by distance builds the merge tree.

Walks over the tree (`group_join_heights`, LAD) are vectorised by pointer jumping over the parent
array (`tree_nodes`): O(N log depth), so a deep chain-like dendrogram (single linkage makes many)
costs no recursion.
"""

from __future__ import annotations

import faiss
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from quality_assets.knn import KnnGraph

__all__ = ["group_join_heights", "merge_tree_from_graph", "tree_nodes"]

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
    components are joined at measured distances (see the module docstring).
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
    return _closest_pair(x, side_a, side_b, target_block=max(1, side_b.size))


def _nearest_outside(
    x: np.ndarray, members: np.ndarray, sample_lab: np.ndarray, c: int
) -> tuple[float, int, int]:
    """(cosine, member, outsider) of the closest pair between a group and everything else."""
    # 512 x 32768 float32 blocks: 64 MB of temporaries whatever the sizes.
    return _closest_pair(x, members, np.flatnonzero(sample_lab != c), target_block=32_768)


def _closest_pair(
    x: np.ndarray, queries: np.ndarray, targets: np.ndarray, target_block: int
) -> tuple[float, int, int]:
    """(cosine, query, target) of the closest pair, in 512-query x `target_block` blocks.

    Ties go to the first pair in (query chunk, target block, query, target) order.
    """
    best = (-np.inf, -1, -1)
    for q0 in range(0, queries.size, 512):
        qidx = queries[q0 : q0 + 512]
        q = x[qidx]
        for b0 in range(0, targets.size, target_block):
            block = targets[b0 : b0 + target_block]
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


def tree_nodes(
    children: np.ndarray, heights: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node of a merge tree (leaves 0..N-1, then the merges): (height, leaf count, parent).

    Leaves have height 0 and count 1; the root (node 2N - 2) is its own parent.
    """
    n = children.shape[0] + 1
    total = 2 * n - 1
    height = np.zeros(total, dtype=np.float64)
    height[n:] = heights
    count = np.ones(total, dtype=np.int64)
    count[n:] = counts
    parent = np.arange(total, dtype=np.int64)
    internal = np.arange(n, total, dtype=np.int64)
    parent[children[:, 0]] = internal
    parent[children[:, 1]] = internal
    return height, count, parent


def group_join_heights(
    children: np.ndarray, heights: np.ndarray, counts: np.ndarray, group_size: int
) -> np.ndarray:
    """Per leaf, the merge height at which its cluster first holds `group_size` samples.

    group_size = 2 is the height at which the sample stops being alone (its single-linkage
    nearest-neighbour distance). Larger sizes make the isolation batch-aware: the members of a
    far group smaller than `group_size` all get the group's join height, however close they
    sit to each other. Capped at N (the root). Pointer jumping: O(N log depth).
    """
    n = children.shape[0] + 1
    height, count, parent = tree_nodes(children, heights, counts)
    size = min(int(group_size), n)
    target = np.where(count >= size, np.arange(count.size, dtype=np.int64), parent)
    while True:
        jumped = target[target]
        if np.array_equal(jumped, target):
            break
        target = jumped
    return height[target[:n]]
