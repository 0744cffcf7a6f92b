"""The pixel view's search vectors are a function of each thumbnail alone: a drop computes only its
new images' vectors and reads the others back from the stored search rows (view_graphs), which is
exact only if a vector has the same bits whatever batch computed it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quality_assets.pixel_view import (
    CROP_DISTANCE_SIZES,
    CROPS,
    PIXEL_GRAPH_SIZE,
    SEARCH_SIZE,
    THUMBNAIL_SIZE,
    canonical_search_vectors,
    contrast_weight,
    crop_distances,
    crop_search_vectors,
    graph_vectors,
    polar_search_vectors,
    search_vectors,
)


def _thumbnails(n: int, seed: int = 0) -> np.ndarray:
    """Blobs of random size and place on a random background, some flat (the fixed-direction case)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:THUMBNAIL_SIZE, :THUMBNAIL_SIZE]
    thumbs = np.empty((n, THUMBNAIL_SIZE, THUMBNAIL_SIZE), dtype=np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(4, THUMBNAIL_SIZE - 4, 2).tolist() + [rng.uniform(2, 9)]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        image = rng.uniform(0, 60) + rng.uniform(80, 195) * blob + rng.normal(0, 6, blob.shape)
        thumbs[i] = np.clip(image, 0, 255).astype(np.uint8)
    thumbs[::17] = rng.integers(0, 256)  # flat images
    return thumbs


def _pixels_only_in_cell(cell: int, side: int, cells: int) -> tuple[int, int]:
    """(first, last) pixel that only `cell` of the `cells` x `cells` area averages holds: area pooling
    spans cell i over [floor(i side / cells), ceil((i + 1) side / cells)), so neighbouring cells share
    a pixel where `cells` does not divide the side."""
    return math.ceil(cell * side / cells), math.floor((cell + 1) * side / cells) - 1


def _by_image(crop_vectors: np.ndarray, n: int) -> np.ndarray:
    """crop_search_vectors' crop-major rows as [n, CROPS, d]."""
    return crop_vectors.reshape(CROPS, n, -1).transpose(1, 0, 2)


@pytest.mark.parametrize("vectors", [
    search_vectors,
    lambda t: search_vectors(t, mirror=True),
    canonical_search_vectors,
    lambda t: canonical_search_vectors(t, mirror=True),
    polar_search_vectors,
    lambda t: _by_image(crop_search_vectors(t), len(t))[:, 2],
], ids=["plain", "plain-mirrored", "canonical", "canonical-mirrored", "polar", "crop"])
def test_a_vector_has_the_same_bits_whatever_batch_computes_it(vectors):
    thumbs = _thumbnails(300)
    whole = vectors(thumbs)
    assert whole.dtype == np.float32 and np.isfinite(whole).all()
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
    # Split at an odd place, a few images on their own, and a shuffled batch.
    split = np.vstack([vectors(thumbs[:211]), vectors(thumbs[211:])])
    single = np.vstack([vectors(thumbs[i:i + 1]) for i in range(290, 300)])
    order = np.random.default_rng(1).permutation(len(thumbs))
    shuffled = np.empty_like(whole)
    shuffled[order] = vectors(thumbs[order])
    assert np.array_equal(whole, split)
    assert np.array_equal(whole[290:], single)
    assert np.array_equal(whole, shuffled)


def test_every_crop_has_the_same_bits_whatever_batch_and_a_flat_crop_stands_in_as_its_whole_image():
    thumbs = _thumbnails(120)
    # A light image with one dark blob in its top-left corner: its bottom-right crop is blank.
    thumbs[5] = 200
    thumbs[5, 0:4, 0:4] = 20
    crops = _by_image(crop_search_vectors(thumbs), len(thumbs))
    assert crops.shape == (len(thumbs), CROPS, SEARCH_SIZE * SEARCH_SIZE) and crops.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(crops, axis=2), 1.0, atol=1e-5)
    split = np.concatenate([_by_image(crop_search_vectors(thumbs[:77]), 77),
                            _by_image(crop_search_vectors(thumbs[77:]), len(thumbs) - 77)])
    assert np.array_equal(crops, split)
    whole = search_vectors(thumbs)
    assert np.array_equal(crops, _by_image(crop_search_vectors(thumbs, whole=whole), len(thumbs)))
    # The top-left crop sees the blob; the bottom-right one is flat and stands in as the whole image.
    assert not np.array_equal(crops[5, 0], whole[5])
    assert np.array_equal(crops[5, 3], whole[5])
    # A flat image's crops are all flat.
    assert all(np.array_equal(crops[17, c], whole[17]) for c in range(CROPS))
    empty = crop_search_vectors(thumbs[:0])
    assert empty.shape == (0, SEARCH_SIZE * SEARCH_SIZE) and empty.dtype == np.float32
    with pytest.raises(ValueError, match="whole must be"):
        crop_search_vectors(thumbs, whole=whole[:10])
    with pytest.raises(ValueError, match="thumbnails must be"):
        crop_search_vectors(thumbs.astype(np.float32))


def test_faint_small_figures_on_a_blank_page_no_longer_meet_while_a_padded_copy_keeps_its_crop_evidence():
    from PIL import Image

    side = THUMBNAIL_SIZE
    thumbs = np.full((4, side, side), 255, dtype=np.uint8)
    # Two different faint figures inside one cell of the 8x8 averages: a dot and a small cross, on
    # the pixels that only cell 3 holds (9-11 at 24 px).
    c, last = _pixels_only_in_cell(3, side, SEARCH_SIZE)
    assert last - c >= 2
    thumbs[0, c:c + 2, c:c + 2] = 200
    thumbs[1, c + 1, c:c + 3] = 200
    thumbs[1, c:c + 3, c + 1] = 200
    # A picture, and a copy of it shrunk to 80% into the top-left of a dark canvas.
    yy, xx = np.mgrid[:side, :side]
    picture = 128 + 100 * np.sin(xx / 2.5) * np.cos(yy / 3.5) + np.random.default_rng(0).normal(0, 5, (side, side))
    thumbs[2] = np.clip(picture, 0, 255).astype(np.uint8)
    thumbs[3] = 40
    shrunk = round(0.8 * side)
    thumbs[3, :shrunk, :shrunk] = np.asarray(Image.fromarray(thumbs[2]).resize((shrunk, shrunk), Image.BILINEAR))
    a, b = np.array([0, 2]), np.array([1, 3])

    # On the copy search's 8x8 averages alone (the crop distances' finer 14x14 see the figures' shapes).
    plain_crop, plain_whole = crop_distances(thumbs, a, b, contrast_floor=0.0, sizes=(SEARCH_SIZE,))
    crop, whole = crop_distances(thumbs, a, b, sizes=(SEARCH_SIZE,))
    # Plain cosines cannot tell the figures apart whole (one dark cell each) and nearly so cropped.
    assert plain_whole[0] < 1e-6 and plain_crop[0] < 0.1
    # Weighed by their contrast, they are far apart: a dot is not a copy of a cross.
    assert whole[0] > 0.3 and crop[0] > 0.3
    # The copy's crop evidence hardly moves: its contrast is a picture's.
    assert crop[1] < 0.02 and abs(crop[1] - plain_crop[1]) < 0.005
    assert abs(whole[1] - plain_whole[1]) < 0.005

    weights = contrast_weight(np.array([0.0, 0.005, 0.01, 0.02, 0.08, 0.2]))
    assert weights[0] == 0.0 and np.all(np.diff(weights) > 0) and weights[-1] < 1.0
    np.testing.assert_allclose(weights[2], 1 / np.sqrt(2))   # the floor keeps 71% of a cosine
    assert weights[4] > 0.99
    np.testing.assert_array_equal(contrast_weight(np.array([0.0, 0.3]), floor=0.0), [1.0, 1.0])


def test_the_crop_distances_tell_a_copy_s_source_from_a_twin_that_the_8x8_averages_cannot():
    """A twin that differs from the source only inside cells of the 8x8 averages (a bright stroke on
    the other side of each cell, the same cell means) is the source itself to the copy search. A copy
    of the source shrunk into a corner (ARTE's squeeze) meets both alike there; the crop distances,
    which also compare on 14x14 averages, put the source nearer."""
    from PIL import Image

    side = THUMBNAIL_SIZE
    source = np.full((side, side), 30, dtype=np.uint8)
    twin = source.copy()
    for row in range(SEARCH_SIZE):
        r0, r1 = _pixels_only_in_cell(row, side, SEARCH_SIZE)
        for col in range(SEARCH_SIZE):
            c0, c1 = _pixels_only_in_cell(col, side, SEARCH_SIZE)
            if (row + col) % 2 or r1 <= r0 or c1 <= c0:
                continue
            stroke = np.full((r1 - r0 + 1, c1 - c0 + 1), 30, dtype=np.uint8)
            stroke[:, 0] = 230
            source[r0:r1 + 1, c0:c1 + 1] = stroke
            twin[r0:r1 + 1, c0:c1 + 1] = stroke[:, ::-1]
    thumbs = np.full((3, side, side), 40, dtype=np.uint8)
    thumbs[0], thumbs[1] = source, twin
    shrunk = round(0.8 * side)
    thumbs[2, :shrunk, :shrunk] = np.asarray(Image.fromarray(source).resize((shrunk, shrunk), Image.BILINEAR))
    search = search_vectors(thumbs[:2])
    assert float(search[0] @ search[1]) > 1 - 1e-6   # the same to the copy search
    copy, ends = np.array([2, 2]), np.array([0, 1])   # (copy, source), (copy, twin)

    coarse_crop, coarse_whole = crop_distances(thumbs, copy, ends, sizes=(SEARCH_SIZE,))
    np.testing.assert_allclose(coarse_crop[0], coarse_crop[1], atol=1e-6)
    crop, whole = crop_distances(thumbs, copy, ends)
    assert CROP_DISTANCE_SIZES == (SEARCH_SIZE, PIXEL_GRAPH_SIZE)
    assert crop[0] < 0.25 and crop[1] > crop[0] + 0.1
    # The mean of the two sizes' distances, each as that size alone measures it.
    fine_crop, fine_whole = crop_distances(thumbs, copy, ends, sizes=(PIXEL_GRAPH_SIZE,))
    np.testing.assert_allclose(crop, (coarse_crop + fine_crop) / 2)
    np.testing.assert_allclose(whole, (coarse_whole + fine_whole) / 2)
    with pytest.raises(ValueError, match="at least one size"):
        crop_distances(thumbs, copy, ends, sizes=())


def test_a_flat_thumbnail_is_no_crop_copy_of_anything_not_even_another_flat_one():
    """A blank (a flat grey thumbnail, an empty scan) has no direction: weighed by its contrast 0 it
    meets nothing through the crop evidence, and the distances stay finite (no 0/0)."""
    thumbs = _thumbnails(3, seed=4)
    thumbs[0] = 128
    thumbs[1] = 200
    a, b = np.array([0, 0, 1]), np.array([1, 2, 2])
    crop, whole = crop_distances(thumbs, a, b)
    assert np.all(np.isfinite(crop)) and np.all(np.isfinite(whole))
    # Flat against flat and flat against a picture: cosine x weight 0 -> distance 1, never near 0.
    np.testing.assert_allclose(crop, 1.0)
    np.testing.assert_allclose(whole, 1.0)
    # Unweighed, two flats share the fixed stand-in direction and would be a perfect crop match.
    plain_crop, _ = crop_distances(thumbs, a, b, contrast_floor=0.0)
    assert plain_crop[0] < 1e-6


def test_the_graph_vectors_tell_apart_detail_that_the_copy_search_averages_away():
    """Two thumbnails that differ only inside one cell of the copy search's averages (a thin bar moved
    by two pixels within the cell) are the same to the copy search and different to the pixel view's
    graph, whose finer averages off-topic and the label errors read."""
    side = THUMBNAIL_SIZE
    first, last = _pixels_only_in_cell(3, side, SEARCH_SIZE)
    assert last - first >= 2 and side % PIXEL_GRAPH_SIZE == 0
    bin_px = side // PIXEL_GRAPH_SIZE
    assert first // bin_px != last // bin_px  # the two bars fall in different bins of the graph's averages
    thumbs = np.full((2, side, side), 30, dtype=np.uint8)
    thumbs[0, :, first] = 220
    thumbs[1, :, last] = 220
    search, graph = search_vectors(thumbs), graph_vectors(thumbs)
    assert search.shape[1] == SEARCH_SIZE ** 2 and graph.shape[1] == PIXEL_GRAPH_SIZE ** 2
    np.testing.assert_allclose(np.linalg.norm(graph, axis=1), 1.0, atol=1e-5)
    assert float(search[0] @ search[1]) > 0.999
    assert float(graph[0] @ graph[1]) < 0.5


@pytest.mark.parametrize("size", [SEARCH_SIZE, PIXEL_GRAPH_SIZE])
def test_the_crop_distances_are_each_pairs_best_crop_cosine_either_way_round_weighed_by_contrast(size):
    """The distances against a plain reading of their definition: every crop of one end (all
    shapes at once, crop-major as the crop search indexes them) against the other end's whole
    thumbnail, both ways round, pair by pair. Pairs repeat, meet themselves and span more than one
    chunk of the computation; flat thumbnails stand in for flat crops."""
    from quality_assets.pixel_view import _crop_entries, _search_entries

    thumbs = _thumbnails(60, seed=7)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 60, 5000), rng.integers(0, 60, 5000)
    a[:4], b[:4] = [4, 4, 17, 9], [4, 9, 34, 4]   # an image with itself, a pair both ways round, two flats
    crop, whole = crop_distances(thumbs, a, b, sizes=(size,))

    vectors, contrast = _search_entries(thumbs, size=size)
    crops, crops_contrast = _crop_entries(thumbs, vectors, contrast, size=size)
    weight, crop_weight = contrast_weight(contrast), contrast_weight(crops_contrast)
    n = len(thumbs)
    expected_crop = np.empty(a.size)
    for p, (i, j) in enumerate(zip(a, b)):
        rows = np.arange(CROPS) * n
        either_way = np.concatenate([crops[rows + i] @ vectors[j] * crop_weight[rows + i] * weight[j],
                                     crops[rows + j] @ vectors[i] * crop_weight[rows + j] * weight[i]])
        expected_crop[p] = 1.0 - either_way.max()
    expected_whole = 1.0 - np.einsum("pd,pd->p", vectors[a], vectors[b]) * weight[a] * weight[b]
    np.testing.assert_allclose(crop, expected_crop, rtol=0, atol=1e-6)
    np.testing.assert_allclose(whole, expected_whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(crop[3], crop[1], rtol=0, atol=1e-12)   # either way round
    np.testing.assert_allclose([crop[2], whole[2]], 1.0, atol=1e-9)   # two flats meet nowhere
