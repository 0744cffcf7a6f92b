"""Near-duplicate pairs, per-sample scores, groups and label conflicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components
import scipy.sparse as sp

from quality_assets.knn import build_knn_graph
from quality_assets.scores.near_duplicate import (
    duplicate_groups,
    group_label_conflicts,
    hamming64,
    near_duplicate_pairs,
    sample_duplicate_scores,
)

from .dense_reference import (
    clustered_vectors,
    dense_distances,
    dense_pairs,
    density_copies,
    normalise,
    precision_at_n,
    twin_copies,
)


def test_distance_ranking_matches_dense_all_pairs() -> None:
    x, _ = clustered_vectors(1500, 24, n_clusters=8, spread=0.3, seed=11)
    graph = build_knn_graph(x, 10)
    pairs = near_duplicate_pairs(graph, score_kind="distance")
    dense = dense_pairs(dense_distances(x))
    top = 500  # every pair this close is some sample's nearest few, so the graph holds it
    np.testing.assert_array_equal(pairs[["i", "j"]].to_numpy()[:top], dense[:top, :2].astype(np.int64))
    np.testing.assert_allclose(pairs["distance"].to_numpy()[:top], dense[:top, 2], atol=2e-6)
    np.testing.assert_array_equal(pairs["score"], pairs["distance"])


@pytest.mark.parametrize("score_kind", ["distance", "combined"])
def test_exact_duplicate_vector_pair_is_the_top_pair(score_kind: str) -> None:
    x, _ = clustered_vectors(800, 16, seed=12)
    x[321] = x[17]
    pairs = near_duplicate_pairs(build_knn_graph(x, 8), score_kind=score_kind)
    top = pairs.iloc[0]
    assert (top["i"], top["j"]) == (17, 321)
    assert top["score"] == 0.0 and top["rank"] == 1 and top["distance"] <= 1e-6
    assert "mutual_nn" in top["evidence"] and "knn" in top["evidence"]


def test_hash_matches_become_pairs_even_outside_the_graph() -> None:
    x, cluster = clustered_vectors(400, 16, n_clusters=4, spread=0.2, seed=13)
    a, b = 0, int(np.flatnonzero(cluster != cluster[0])[0])  # far apart: not graph neighbours
    pix = np.array([f"p{i}" for i in range(400)], dtype=object)
    pix[b] = pix[a]
    files = np.array([None] * 400, dtype=object)
    graph = build_knn_graph(x, 5)
    assert b not in graph.neighbors[a]
    pairs = near_duplicate_pairs(graph, pixel_sha256=pix, file_sha256=files)
    row = pairs[(pairs["i"] == min(a, b)) & (pairs["j"] == max(a, b))]
    assert len(row) == 1
    assert row["distance"].iloc[0] == 0.0 and row["score"].iloc[0] == 0.0
    assert row["evidence"].iloc[0] == "pixel_sha256"
    assert row["rank"].iloc[0] == 1  # score 0, distance 0: ahead of every graph pair


def test_large_hash_group_becomes_a_star_with_one_component() -> None:
    x, _ = clustered_vectors(300, 8, seed=14)
    files = np.array([f"f{i}" for i in range(300)], dtype=object)
    members = np.arange(100, 160)
    files[members] = "same"
    pairs = near_duplicate_pairs(build_knn_graph(x, 4), file_sha256=files, hash_group_limit=10)
    hashed = pairs[pairs["evidence"].astype(str).str.contains("file_sha256")]
    assert len(hashed) == members.size - 1
    assert set(hashed["i"]) == {100}
    groups = duplicate_groups(hashed, 300)
    assert np.unique(groups[members]).size == 1 and groups[members][0] >= 0


def test_combined_score_beats_distance_among_natural_twins_with_phash() -> None:
    # Copies sit farther from their source than natural twins sit from each other; only the
    # perceptual hash knows. Distance alone finds none of them at the top.
    x, phash, truth = twin_copies(seed=0)
    graph = build_knn_graph(x, 16)
    by_distance = near_duplicate_pairs(graph, score_kind="distance")
    combined = near_duplicate_pairs(graph, phash=phash)
    p_dist = precision_at_n(by_distance["i"].to_numpy(), by_distance["j"].to_numpy(), truth)
    p_comb = precision_at_n(combined["i"].to_numpy(), combined["j"].to_numpy(), truth)
    assert p_dist <= 0.1
    assert p_comb >= 0.9
    assert (combined.head(40)["evidence"].astype(str).str.contains("phash")).mean() >= 0.9


def test_combined_score_beats_distance_under_varying_density() -> None:
    # No hashes: relative evidence (local scale, neighbour gap) does the work.
    gains = []
    for seed in (0, 1):
        x, truth = density_copies(seed=seed)
        graph = build_knn_graph(x, 16)
        d = near_duplicate_pairs(graph, score_kind="distance")
        c = near_duplicate_pairs(graph)
        gains.append(
            precision_at_n(c["i"].to_numpy(), c["j"].to_numpy(), truth)
            - precision_at_n(d["i"].to_numpy(), d["j"].to_numpy(), truth)
        )
    assert min(gains) >= 0.25


def test_max_pairs_per_sample_keeps_only_near_columns() -> None:
    x, _ = clustered_vectors(500, 16, seed=15)
    graph = build_knn_graph(x, 10)
    full = near_duplicate_pairs(graph)
    short = near_duplicate_pairs(graph, max_pairs_per_sample=2)
    assert len(short) < len(full)
    ri, rj = short["rank_i"].to_numpy(), short["rank_j"].to_numpy()
    assert np.all(((ri >= 1) & (ri <= 2)) | ((rj >= 1) & (rj <= 2)))
    assert len(short) <= 500 * 2


def test_phash_must_not_be_float() -> None:
    x, _ = clustered_vectors(50, 8, seed=16)
    graph = build_knn_graph(x, 4)
    with pytest.raises(ValueError, match="int64"):
        near_duplicate_pairs(graph, phash=np.linspace(0, 1, 50))
    hashes = pd.array([None] + list(range(49)), dtype="Int64")  # unknown hashes are fine
    pairs = near_duplicate_pairs(graph, phash=hashes)
    assert pairs.loc[(pairs["i"] == 0) | (pairs["j"] == 0), "hamming"].isna().all()


def test_hamming64_counts_bits_of_signed_hashes() -> None:
    a = np.array([0, -1, 0b1011, np.iinfo(np.int64).min], dtype=np.int64)
    b = np.array([0, 0, 0b0001, 0], dtype=np.int64)
    assert hamming64(a, b).tolist() == [0, 64, 2, 1]


def test_same_label_column() -> None:
    x, _ = clustered_vectors(60, 8, seed=17)
    x[1] = x[0]
    x[3] = x[2]
    labels = np.array(["a"] * 60, dtype=object)
    labels[1] = "b"
    labels[2] = None
    pairs = near_duplicate_pairs(build_knn_graph(x, 3), labels=labels)
    first = pairs[(pairs["i"] == 0) & (pairs["j"] == 1)]["same_label"].iloc[0]
    assert first is False or first == False  # noqa: E712 - pandas BooleanDtype scalar
    assert pd.isna(pairs[(pairs["i"] == 2) & (pairs["j"] == 3)]["same_label"].iloc[0])


def test_sample_scores_and_partners() -> None:
    pairs = pd.DataFrame({"i": [0, 1, 0], "j": [1, 2, 3], "score": [0.2, 0.1, 0.5]})
    best, partner = sample_duplicate_scores(pairs, 5, return_partner=True)
    np.testing.assert_allclose(best, [0.2, 0.1, 0.1, 0.5, 1.0])
    assert partner.tolist() == [1, 2, 1, 0, -1]


def test_duplicate_groups_from_flagged_pairs() -> None:
    pairs = pd.DataFrame(
        {"i": [5, 0, 1, 7], "j": [6, 1, 2, 8], "is_issue": [True, True, True, False]}
    )
    groups = duplicate_groups(pairs, 10)
    assert groups.tolist() == [0, 0, 0, -1, -1, 1, 1, -1, -1, -1]


def test_group_label_conflicts_compare_label_sets() -> None:
    groups = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    labels = np.array(["a|b", "b|a", None, "cat", "dog", "x", "x", "z"], dtype=object)
    out = group_label_conflicts(groups, labels).set_index("group_id")
    assert out.loc[0, "size"] == 3 and out.loc[0, "n_labels"] == 1
    assert out.loc[0, "majority_label"] == "a|b" and not out.loc[0, "is_conflict"]
    assert out.loc[1, "is_conflict"] and out.loc[1, "n_labels"] == 2
    assert out.loc[1, "majority_label"] == "cat"  # tie: alphabetically first
    assert not out.loc[2, "is_conflict"]
    assert list(out.index) == [0, 1, 2]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=8, max_value=60),
    k=st.integers(min_value=1, max_value=6),
    seed=st.integers(min_value=0, max_value=10_000),
    n_dups=st.integers(min_value=0, max_value=4),
    kind=st.sampled_from(["combined", "distance"]),
    cut=st.floats(min_value=0.0, max_value=1.0),
)
def test_property_pairs_are_canonical_and_groups_follow_pairs(
    n: int, k: int, seed: int, n_dups: int, kind: str, cut: float
) -> None:
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, 4)))
    for t in range(n_dups):
        x[rng.integers(n)] = x[rng.integers(n)]
    files = np.array([f"f{rng.integers(n)}" for _ in range(n)], dtype=object)
    phash = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    pairs = near_duplicate_pairs(
        build_knn_graph(x, k), file_sha256=files, phash=phash, score_kind=kind
    )
    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    assert np.all(i < j)
    assert len(set(zip(i.tolist(), j.tolist()))) == len(pairs)
    s = pairs["score"].to_numpy()
    assert np.all((s >= 0) & (s <= 1)) and np.all(np.diff(s) >= 0)
    assert pairs["rank"].tolist() == list(range(1, len(pairs) + 1))
    # Flagged pairs (score below a cut) rank above every unflagged pair.
    flagged = s < cut
    if flagged.any() and (~flagged).any():
        assert pairs["rank"][flagged].max() < pairs["rank"][~flagged].min()
    best = sample_duplicate_scores(pairs, n)
    assert np.all((best >= 0) & (best <= 1))
    pf = pairs.assign(is_issue=flagged)
    groups = duplicate_groups(pf, n)
    fi, fj = i[flagged], j[flagged]
    assert np.all(groups[fi] == groups[fj]) and np.all(groups[fi] >= 0)
    in_pair = np.zeros(n, bool)
    in_pair[fi] = in_pair[fj] = True
    assert np.all((groups >= 0) == in_pair)
    if fi.size:
        adj = sp.coo_matrix((np.ones(fi.size), (fi, fj)), shape=(n, n))
        n_comp, comp = connected_components(adj, directed=False)
        assert len(set(groups[in_pair].tolist())) == len(set(comp[in_pair].tolist()))


def test_colour_disagreement_of_pairs() -> None:
    from quality_assets.scores.near_duplicate import colour_disagrees

    red = [0.7, 0.3] + [0.0] * 11
    red_again = [0.6, 0.38, 0.02] + [0.0] * 10                 # a crop with a little orange edge
    green = [0.7, 0.0, 0.0, 0.0, 0.3] + [0.0] * 8
    gray = [1.0] + [0.0] * 12
    unknown = [np.nan] * 13
    hist = np.array([red, red_again, green, gray, gray, unknown])
    i = np.array([0, 0, 0, 3, 0])
    j = np.array([1, 2, 3, 4, 5])
    assert colour_disagrees(hist, i, j).tolist() == [False, True, True, False, False]


def _dihedral_descriptors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 8, 32)).astype(np.float32)
    return d / np.linalg.norm(d, axis=2, keepdims=True)


def test_descriptor_ratio_finds_a_turned_copy_at_its_own_end() -> None:
    from quality_assets.scores.pair_evidence import descriptor_ratio

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v)

    desc = _dihedral_descriptors(40)
    # Image 9 is image 5 turned: 5's third dihedral transform is 9 as stored.
    desc[9, 0] = desc[5, 3]
    # Image 20 is a near copy of 21, and 21 has a closer natural twin (22): at 21's end the copy is
    # not the best pair, at 20's own end it is by far.
    desc[20, 0] = unit(desc[21, 0] + 0.3 * desc[20, 0])
    desc[22, 0] = unit(desc[21, 0] + 0.1 * desc[22, 0])
    i = np.array([5, 5, 9, 20, 21, 20, 0, 1])
    j = np.array([9, 30, 31, 21, 22, 33, 2, 3])
    ratio = descriptor_ratio(desc, i, j, 40)
    assert ratio[0] < 1e-6                       # an exact dihedral match (float32 dot products)
    assert ratio[3] < 0.1                        # the copy stands out at its own end, whatever 21's twin
    assert (ratio[[1, 2, 5, 6, 7]] > 0.2).all()  # unrelated pairs do not (no crowd: their dissimilarity)
    # Gathered in chunks or at once: the same values.
    assert np.array_equal(descriptor_ratio(desc, i, j, 40, chunk=3), ratio)


def test_the_descriptor_view_takes_a_fifth_of_the_fusion() -> None:
    from quality_assets.scores.pair_evidence import fuse_p_values

    m = 100
    ranks = np.arange(1, m + 1, dtype=float)
    columns = {"aligned_ratio": ranks, "agreement_ratio": ranks, "registered_ratio": ranks,
               "crop_ratio": ranks, "embedding_score": ranks}
    from quality_assets.scores.pair_evidence import DEFAULT_FUSION_WEIGHTS as w

    without = fuse_p_values(columns, w)
    with_view = fuse_p_values({**columns, "descriptor_ratio": ranks[::-1].copy()}, w)

    # The last pair is the descriptor's best (p = 1 / m) and every other view's worst.
    assert with_view[-1] == pytest.approx((1 / m) / 0.2)
    assert without[-1] == 1.0
    # The others keep their ratios within the other four fifths: the best pair's p grows by 1 / 0.8.
    assert with_view[0] == pytest.approx(without[0] / 0.8)
    assert w["descriptor"] / (w["descriptor"] + sum(w[k] for k in ("aligned", "agreement", "registered",
                                                                     "embedding", "crop"))) == pytest.approx(0.2)


def test_exact_and_near_exact_pairs_stay_out_of_the_other_pairs_p_values() -> None:
    from quality_assets.scores.pair_evidence import DEFAULT_FUSION_WEIGHTS as w
    from quality_assets.scores.pair_evidence import fuse_p_values

    rng = np.random.default_rng(5)
    m = 60
    columns = {name: rng.random(m) for name in ("aligned_ratio", "agreement_ratio", "registered_ratio", "crop_ratio",
                                                "embedding_score")}
    exact = np.zeros(m, dtype=bool)
    exact[:5] = True
    near = np.zeros(m, dtype=bool)
    near[5:15] = True
    for column in ("aligned_ratio", "agreement_ratio", "registered_ratio", "embedding_score"):
        columns[column][:15] = 0.0   # repeats: the best evidence of every view but the crop view's
    columns["crop_ratio"][:15] = 10.0
    rest = ~(exact | near)

    fused = fuse_p_values(columns, w, exact=exact, near_exact=near)
    assert (fused[exact] == 0).all()
    # The other pairs score as if the repeats were not there ...
    alone = fuse_p_values({k: v[rest] for k, v in columns.items()}, w)
    np.testing.assert_array_equal(fused[rest], alone)
    # ... where counted in the p-values they pushed the registered view's best pair behind the crop
    # view's best (15 ranks down in one view, none in the other).
    counted = fuse_p_values(columns, w, exact=exact)
    others = np.flatnonzero(rest)
    best_registered = others[np.argmin(columns["registered_ratio"][rest])]
    best_crop = others[np.argmin(columns["crop_ratio"][rest])]
    assert best_registered != best_crop
    assert fused[best_registered] < fused[best_crop]
    assert counted[best_registered] > counted[best_crop]
    # The near-exact pairs are ranked among themselves, by their own evidence.
    np.testing.assert_array_equal(fused[near], fuse_p_values({k: v[near] for k, v in columns.items()}, w))
