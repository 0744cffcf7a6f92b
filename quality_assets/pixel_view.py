"""The pixel view: small grayscale thumbnails as a second representation, its search vectors and
the copy-candidate search.

Stored by the representation stage (`thumbnails` table; the `knn_graph` asset stores this view's
kNN graph and its copy candidates next to the SSL graph), read by the scores. The geometry helpers
(blur, canonical frame, warp) are shared with the pair verifiers in `scores.pixel_copies`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from quality_assets.imaging import COLOURED_MIN
from quality_assets.knn import build_knn_graph, pair_dot

__all__ = [
    "PIXEL_GRAPH_SIZE",
    "SEARCH_SIZE",
    "THUMBNAIL_SIZE",
    "canonical_search_vectors",
    "fill_to_background",
    "graph_vectors",
    "hue_search_vectors",
    "polar_search_vectors",
    "check_thumbnails",
    "copy_candidate_pairs",
    "crop_boxes",
    "crop_search_k",
    "crop_search_vectors",
    "contrast_weight",
    "pixel_candidate_pairs",
    "search_vectors",
]

# Thumbnails are stored at this size (grayscale uint8, 784 bytes per image). 24 px until
# 2026-12-06: at 28 the registration tells copies from natural twins by the detail a 28 px digit
# has and 24 px blurs away. Registered again on the matrix's captured pairs (benchmarks/
# registration_variants.py, `pictures`), MNIST s1's copies ranked at pair AP 0.625 at 28 px against
# 0.556 at 24, 0.595 at 32 and 0.581 at 40; clip art and icons gain at 28 too; through the service
# on all twelve cells near-duplicate AP 0.326 -> 0.367 (docs/benchmarks/matrix.md, "Update
# 2026-12-06 (5)" and "(6)"). Registering a pair costs 1.5-1.8x (the pixels).
THUMBNAIL_SIZE = 28
# The copy candidates' search vectors are 8x8 averages of the thumbnail (the pixel view's graph's
# too until 2026-12-06). On the demo they hold every copy and leak pair among the candidates (85 of
# 85, as 16x16 does) and gave the same off-topic and label-error AP as 16x16 (0.98 / 0.96 vs
# 0.97 / 0.94; 0.80 / 0.85 vs 0.81 / 0.85), with a quarter of the dimensions: the kNN searches
# are the pixel view's largest cost at scale.
SEARCH_SIZE = 8
# The pixel view's kNN graph (off-topic and label errors read it, with its vectors) is on finer
# averages than the copy search: 14x14, the 28 px thumbnail's own 2x2 bins. On all twelve matrix
# cells the label errors rose 0.648 -> 0.666 on the mean over datasets (icons +0.039, clip art
# +0.024) and off-topic moved 0.963 -> 0.961 (clip art -0.009); 10x10 gave about +0.011 and 0 on
# nine cells; the copy search itself at 14 or 10 moved near duplicates by noise and cost leakage,
# at 7 lost 0.025 (docs/benchmarks/matrix.md, "Update 2026-12-06 (7)"). Three times the
# dimensions of the 8x8 search: the graph's kNN costs about twice as much at scale (IVF at 1M,
# `benchmarks/bench_knn.py --dims 64 196`: 173 s against 83 s, peak RSS 2.4 against 1.6 GB).
PIXEL_GRAPH_SIZE = 14
# Canonical RMS radius, in normalised [-1, 1] image coordinates.
CANONICAL_RADIUS = 0.45
BLUR_SIGMA_PX = 1.0  # at THUMBNAIL_SIZE; tolerates the half-pixel errors of the alignment grid


def check_thumbnails(thumbs: np.ndarray) -> np.ndarray:
    t = np.asarray(thumbs)
    if t.ndim != 3 or t.shape[1] != t.shape[2] or t.dtype != np.uint8:
        raise ValueError(f"thumbnails must be uint8 [N, S, S], got {t.dtype} {t.shape}")
    return t



def graph_vectors(thumbs: np.ndarray) -> np.ndarray:
    """The pixel view's kNN-graph vectors: PIXEL_GRAPH_SIZE averages of each thumbnail (zero-mean,
    unit-norm), as `search_vectors` makes them."""
    return search_vectors(thumbs, size=PIXEL_GRAPH_SIZE)


def search_vectors(thumbs: np.ndarray, *, mirror: bool = False, size: int = SEARCH_SIZE) -> np.ndarray:
    """float32 [N, size*size]: area-downsampled thumbnails, zero-mean and unit-norm (cosine space)."""
    return _search_entries(thumbs, mirror=mirror, size=size)[0]


def _search_entries(thumbs: np.ndarray, *, mirror: bool = False,
                    size: int = SEARCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`search_vectors` and each one's contrast: the RMS of its area averages before the
    norm, in [0, 1] grey levels (float64 [N])."""
    t = check_thumbnails(thumbs)
    out = np.empty((len(t), size * size), dtype=np.float32)
    contrast = np.empty(len(t))
    for start in range(0, len(t), 65536):
        x = torch.from_numpy(t[start:start + 65536]).float()[:, None] / 255.0
        if mirror:
            x = torch.flip(x, dims=[3])
        v = F.interpolate(x, size=(size, size), mode="area").flatten(1)
        v = v - v.mean(1, keepdim=True)
        norm = v.norm(dim=1, keepdim=True)
        # A flat image has no direction; give it a fixed one so it still has neighbours (other flats).
        v = torch.where(norm > 1e-6, v / norm.clamp(min=1e-6), torch.full_like(v, 1.0 / size))
        out[start:start + len(v)] = v.numpy()
        contrast[start:start + len(v)] = norm[:, 0].double().numpy() / size
    return out, contrast


def canonical_search_vectors(thumbs: np.ndarray, *, mirror: bool = False,
                             size: int = SEARCH_SIZE) -> np.ndarray:
    """Like :func:`search_vectors`, but of the blurred thumbnail in its canonical frame (centre
    of mass centred, RMS radius fixed): a cropped or padded copy lands on its source here even
    when the plain thumbnails have drifted apart."""
    t = check_thumbnails(thumbs)
    out = np.empty((len(t), size * size), dtype=np.float32)
    sigma = BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    with torch.inference_mode():
        for start in range(0, len(t), 16384):
            x = gaussian_blur(torch.from_numpy(t[start:start + 16384]).float()[:, None] / 255.0, sigma)
            v = F.interpolate(warp(x, *frames(x), 0.0, mirror), size=(size, size), mode="area").flatten(1)
            v = v - v.mean(1, keepdim=True)
            norm = v.norm(dim=1, keepdim=True)
            v = torch.where(norm > 1e-6, v / norm.clamp(min=1e-6), torch.full_like(v, 1.0 / size))
            out[start:start + len(v)] = v.numpy()
    return out


# The crop search: each image's four corner crops and its centre crop, in each of CROP_SHAPES
# ((height, width) as shares of the side). A copy that holds its source in part of its frame (a
# picture beside tiles, a bar, a caption or a canvas) is near its source's thumbnail only through
# one of its crops. The square 0.8 crops: on the SelfClean protocol's copies, with 2k neighbours per
# image, the four data sets' ARTE pairs among the candidates went from 11, 13, 10 and 2 to 22, 22,
# 22 and 6 (of 25, 25, 25 and 6) with the crop search alone; 0.75 found fewer. The two oblong
# shapes: a copy squeezed beside a bar and then tiled holds its source at another aspect (the
# protocol's mosaic + colour-bar copies: 74% of the width, 79% of the height), and the bar lies
# inside every square crop. On the MNIST cell seed 1, the 10 ARTE pairs that no search held were
# all such copies; with the oblong crops the crop search holds 25 of its 30 ARTE pairs (20 before).
# Smaller square crops (0.7, 0.65, 0.6 of the side) found none of the ten.
CROP_SHAPES = ((0.8, 0.8), (0.8, 0.72), (0.72, 0.8))
CROP_PLACES = 5  # the four corners and the centre
CROPS = len(CROP_SHAPES) * CROP_PLACES
# A crop flatter than this (RMS over its SEARCH_SIZE averages, in [0, 1] grey levels) has no
# direction: a blank corner of clip art. It stands in as the whole image's vector instead, so that
# blank corners do not all meet in one place (an inverted list of every clip-art image) and the
# entry finds nothing the plain search would not.
CROP_FLAT_RMS = 1.0 / 255
# The crop evidence (`crop_distances`) weighs each cosine by both entries' contrast
# (`contrast_weight`): a small figure on a blank page is one dark cell of the 8x8 averages, so two
# such pictures meet at a cosine near 1 whatever they show (a dot and a chicken on white were among
# clip art's top 100 pairs, through the crop evidence alone). The floor is the contrast (RMS of the
# averages, [0, 1] grey levels) at which a cosine keeps 71% of itself; a figure with r = 0.02 keeps
# 89%, a typical picture (r >= 0.08) more than 99%. Chosen on four matrix cells before the rest
# were measured (docs/benchmarks/matrix.md "Update 2026-12-06 (2)"): 0.005-0.02 all lift clip art
# (pair AP 0.114 -> 0.121-0.126) and leave MNIST, Animal-MNIST and the icons within 0.003.
CROP_CONTRAST_FLOOR = 0.01


def crop_boxes(side: int, shapes=CROP_SHAPES) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of each crop of a `side` px thumbnail, shape-major: each shape's
    four corners, then its centre."""
    boxes = []
    for height, width in shapes:
        ch, cw = max(1, int(round(side * height))), max(1, int(round(side * width)))
        oy, ox = side - ch, side - cw
        boxes += [(y0, x0, ch, cw) for y0, x0 in ((0, 0), (0, ox), (oy, 0), (oy, ox), (oy // 2, ox // 2))]
    return boxes


def crop_search_vectors(thumbs: np.ndarray, *, size: int = SEARCH_SIZE, whole: np.ndarray | None = None,
                        shapes=CROP_SHAPES) -> np.ndarray:
    """float32 [len(shapes) * CROP_PLACES * N, size*size], crop-major (crop c of image i at row
    c * N + i, in `crop_boxes` order): the four corner crops and the centre crop of each thumbnail
    in each shape, as :func:`search_vectors` makes them (area averages, zero-mean, unit-norm).
    `whole`: the thumbnails' `search_vectors` where already computed (a flat crop's stand-in)."""
    t = check_thumbnails(thumbs)
    whole_vectors = search_vectors(t, size=size) if whole is None else whole
    return _crop_entries(t, whole_vectors, np.zeros(len(t)), size=size, shapes=shapes)[0]


def _crop_entries(t: np.ndarray, whole: np.ndarray, whole_contrast: np.ndarray, *, size: int = SEARCH_SIZE,
                  shapes=CROP_SHAPES) -> tuple[np.ndarray, np.ndarray]:
    """:func:`crop_search_vectors` and each crop's contrast (as `_search_entries`'); a flat crop
    stands in as its whole thumbnail, vector and contrast."""
    n, side = len(t), t.shape[1]
    whole = np.asarray(whole, dtype=np.float32)
    if whole.shape != (n, size * size):
        raise ValueError(f"whole must be [{n}, {size * size}] search vectors, got {whole.shape}")
    boxes = crop_boxes(side, shapes)
    out = np.empty((len(boxes) * n, size * size), dtype=np.float32)
    contrast = np.empty(len(boxes) * n)
    for start in range(0, n, 65536):
        x = torch.from_numpy(t[start:start + 65536]).float()[:, None] / 255.0
        stand_in = torch.from_numpy(whole[start:start + 65536])
        stand_in_contrast = np.asarray(whole_contrast[start:start + 65536], dtype=np.float64)
        for k, (y0, x0, ch, cw) in enumerate(boxes):
            v = F.interpolate(x[:, :, y0:y0 + ch, x0:x0 + cw], size=(size, size), mode="area").flatten(1)
            v = v - v.mean(1, keepdim=True)
            norm = v.norm(dim=1, keepdim=True)
            flat = norm <= CROP_FLAT_RMS * size
            v = torch.where(flat, stand_in, v / norm.clamp(min=1e-6))
            rows = slice(k * n + start, k * n + start + len(v))
            out[rows] = v.numpy()
            contrast[rows] = np.where(flat[:, 0].numpy(), stand_in_contrast, norm[:, 0].double().numpy() / size)
    return out, contrast


def contrast_weight(contrast: np.ndarray, floor: float = CROP_CONTRAST_FLOOR) -> np.ndarray:
    """How far a search vector's direction can be trusted, from its contrast r (RMS in [0, 1]
    grey levels): r / sqrt(r^2 + floor^2), near 1 for a picture, near 0 for a blank."""
    r = np.asarray(contrast, dtype=np.float64)
    return r / np.sqrt(r * r + floor * floor) if floor > 0 else np.ones_like(r)


# The crop evidence compares a pair's crops at two scales, the copy search's 8x8 averages and the
# pixel graph's 14x14, and takes the mean of the two distances. A copy squeezed beside a bar (ARTE)
# meets its source through a crop, and on 8x8 averages it meets every natural twin of its source as
# well (a shrunk "1" and any "1"); 14x14 keeps the strokes that tell the source from its twins,
# but alone it is too strict for a crop that the box grid cuts a few pixels off (clip art and the
# icons lost 0.016-0.027 of pair AP at 14 alone). Through the service on all twelve matrix cells:
# near-duplicate AP 0.367 -> 0.374 on the mean over datasets (every grayscale cell +0.006 to +0.032,
# the colour cells within 0.003), leakage 0.935 -> 0.934 (docs/benchmarks/matrix.md, "Update
# 2026-12-06 (9)"); 3.4x the cost a pair of 8x8 alone (`benchmarks/bench_crop_distances.py`; 4.7x before
# a pair end's crops came in one gather).
CROP_DISTANCE_SIZES = (SEARCH_SIZE, PIXEL_GRAPH_SIZE)


def crop_distances(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                   contrast_floor: float = CROP_CONTRAST_FLOOR,
                   sizes: tuple[int, ...] = CROP_DISTANCE_SIZES) -> tuple[np.ndarray, np.ndarray]:
    """(1 - the best cosine between one end's crop (any of `crop_search_vectors`') and the other
    end's whole thumbnail, either way round; 1 - the whole thumbnails' cosine), per pair (a, b:
    rows of `thumbs`), each cosine weighed by both entries' `contrast_weight` (at `contrast_floor`;
    0: plain cosines), each distance the mean of its values on the averages of each of `sizes`. Only
    the pairs' own images are read, so a pair's distances do not depend on which other pairs are
    asked with it (a drop measures only its new pairs)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if not a.size:
        return np.empty(0), np.empty(0)
    if not sizes:
        raise ValueError("sizes must name at least one size of averages")
    images = np.unique(np.concatenate([a, b]))
    ra, rb = np.searchsorted(images, a), np.searchsorted(images, b)
    t = np.asarray(thumbs)[images]
    per_size = [_crop_distances_at(t, ra, rb, size, contrast_floor) for size in sizes]
    return np.mean([crop for crop, _ in per_size], axis=0), np.mean([whole for _, whole in per_size], axis=0)


def _crop_distances_at(t: np.ndarray, ra: np.ndarray, rb: np.ndarray, size: int,
                       contrast_floor: float, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """`crop_distances` on `size` x `size` averages, for pairs (ra, rb) of rows of `t`. The crops are
    made one shape at a time: all of a run's images' crops at once would hold 16 vectors an image
    (12.5 GB at 1M images on 14x14 averages). A shape's crops are laid out image-major, so a pair's
    five crops of one end come in one gather, not five (2x faster on 100k pairs,
    `benchmarks/bench_crop_distances.py`); each cosine is computed and weighed as one pair's alone
    would be (the same einsum over the same rows, the same products in the same order), so the
    distances are the same to the bit. Chunks of 2,048 pairs keep a gather (8 MB at 14x14) near
    the caches; 8,192 took 1.1-1.3x longer."""
    whole, whole_contrast = _search_entries(t, size=size)
    whole_weight = contrast_weight(whole_contrast, contrast_floor)
    n = len(t)
    best = np.full(ra.size, -1.0)
    for shape in CROP_SHAPES:
        crops, crop_contrast = _crop_entries(t, whole, whole_contrast, size=size, shapes=(shape,))
        by_image = crops.reshape(CROP_PLACES, n, -1).transpose(1, 0, 2).copy()   # [n, places, d]
        del crops
        crop_weight = contrast_weight(crop_contrast, contrast_floor).reshape(CROP_PLACES, n).T.copy()
        for start in range(0, ra.size, chunk):
            a, b = ra[start:start + chunk], rb[start:start + chunk]
            # Either end's crops against the other's whole thumbnail, weighed crop first as listed.
            a_crops = np.einsum("pcd,pd->pc", np.take(by_image, a, axis=0), whole[b])
            b_crops = np.einsum("pd,pcd->pc", whole[a], np.take(by_image, b, axis=0))
            cosine = np.maximum(((a_crops * crop_weight[a]) * whole_weight[b][:, None]).max(1),
                                ((b_crops * whole_weight[a][:, None]) * crop_weight[b]).max(1))
            best[start:start + chunk] = np.maximum(best[start:start + chunk], cosine)
    return 1.0 - best, 1.0 - pair_dot(whole, ra, rb) * whole_weight[ra] * whole_weight[rb]


def crop_search_k(k: int) -> int:
    """Entries a crop-search row keeps for a copy search of k neighbours: 2k, plus room for the
    row's own crops (near their own image, they are skipped when the row is read)."""
    return 2 * k + CROPS


# The polar view: rings around the centre of mass out to this many RMS radii, samples per ring,
# and the angular harmonics kept per ring.
POLAR_RINGS = 8
POLAR_ANGLES = 32
POLAR_HARMONICS = 8
POLAR_REACH = 2.2


def polar_search_vectors(thumbs: np.ndarray) -> np.ndarray:
    """float32 [N, POLAR_RINGS * POLAR_HARMONICS], unit-norm: invariant to turns and mirrors by construction.

    The blurred thumbnail (less its border's median) is sampled on rings around its centre of
    mass, scaled by its RMS radius (as the canonical frame: shift and zoom removed); a turn about
    that centre shifts each ring circularly and a mirror reverses it, and neither changes the
    magnitudes of the ring's Fourier harmonics. A copy turned by any angle, mirrored, or cropped
    and zoomed (which the frame undoes as long as the crop keeps most of the foreground) lands on
    its source. On the SelfClean protocol's MNIST AUG copies, 8 neighbours here hold 84% of the
    copies' sources; the plain and canonical searches hold 12-30%. Weak where the frame is not
    stable: occluded (ARTE) copies, photos without a uniform border.
    """
    t = check_thumbnails(thumbs)
    sigma = BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    radii = (torch.arange(POLAR_RINGS, dtype=torch.float32) + 0.5) / POLAR_RINGS * POLAR_REACH
    angles = torch.arange(POLAR_ANGLES, dtype=torch.float32) * 2 * math.pi / POLAR_ANGLES
    ring_x, ring_y = radii[:, None] * torch.cos(angles)[None], radii[:, None] * torch.sin(angles)[None]
    out = np.empty((len(t), POLAR_RINGS * POLAR_HARMONICS), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(t), 16384):
            x = gaussian_blur(torch.from_numpy(t[start:start + 16384]).float()[:, None] / 255.0, sigma)
            cx, cy, radius = frames(x)
            border = border_median(x)
            grid = torch.stack([cx[:, None, None] + radius[:, None, None] * ring_x,
                                cy[:, None, None] + radius[:, None, None] * ring_y], -1)
            rings = F.grid_sample(x - border[:, None, None, None], grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False)[:, 0]
            v = torch.fft.rfft(rings, dim=-1).abs()[..., :POLAR_HARMONICS].flatten(1)
            norm = v.norm(dim=1, keepdim=True)
            # A flat image has no rings; a fixed direction keeps it among the other flat ones.
            v = torch.where(norm > 1e-6, v / norm.clamp(min=1e-6), torch.full_like(v, 1.0 / math.sqrt(v.shape[1])))
            out[start:start + len(v)] = v.numpy()
    return out


def _graph_pairs(vectors: np.ndarray, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys a * n + b, 1-based row position) of a kNN graph over n images' (stacked) vectors."""
    # Rows of the originals only; a stacked (mirrored or cropped) entry stands for its source image.
    graph = build_knn_graph(vectors, min(len(vectors) - 1, k), seed=seed, recall_sample=0, queries=n)
    nb = graph.neighbors.astype(np.int64) % n
    src = np.repeat(np.arange(n, dtype=np.int64), nb.shape[1])
    dst = nb.ravel()
    keep = src != dst
    # Position in the row once self (its own mirror image) is skipped.
    position = np.cumsum(keep.reshape(n, -1), axis=1).ravel()[keep]
    a, b = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    return a * n + b, position


def pixel_candidate_pairs(thumbs: np.ndarray, k: int = 8, *, mirror: bool = True, canonical: bool = True,
                          polar: bool = True, crops: bool = True, hue_histograms: np.ndarray | None = None,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected candidate pairs (i < j) from thumbnail kNN graphs, and each pair's best
    1-based position in either end's row (1 = nearest).

    Two searches on SEARCH_SIZE averages, k neighbours each: plain thumbnails, and (``canonical``)
    thumbnails in their canonical frame; on the demo neither alone holds every copy and leak
    pair (79 and 67 of 85), together they do. With ``mirror``, the mirrored thumbnails are in each index too, so each image also
    meets the sources of its mirror images. A third (``polar``, 2k neighbours) on
    :func:`polar_search_vectors` finds copies turned by any angle. A fourth (``hue_histograms`` given, 2k
    neighbours) on :func:`hue_search_vectors` finds coloured copies whatever their geometry; its
    pairs with a colourless end are dropped. A fifth (``crops``, :func:`crop_search_k` neighbours)
    searches the plain vectors among an index that also holds every image's
    :func:`crop_search_vectors`: an image meets the copies that hold it in part of their frame.
    Uses the same exact/IVF builder as the SSL graph.
    """
    t = check_thumbnails(thumbs)
    n = len(t)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    views = [search_vectors] + ([canonical_search_vectors] if canonical else [])
    parts = []
    for view in views:
        vectors = view(t)
        if crops and view is search_vectors:
            parts.append(_graph_pairs(np.vstack([vectors, crop_search_vectors(t, whole=vectors)]), n,
                                      crop_search_k(k), seed))
        if mirror:
            vectors = np.vstack([vectors, view(t, mirror=True)])
        parts.append(_graph_pairs(vectors, n, 2 * k if mirror else k, seed))
    if polar:
        # Mirror-invariant already: no mirrored entries; as many neighbours as the others keep.
        parts.append(_graph_pairs(polar_search_vectors(t), n, min(n - 1, 2 * k), seed))
    if hue_histograms is not None:
        hue_vectors, coloured = hue_search_vectors(hue_histograms, t)
        keys, position = _graph_pairs(hue_vectors, n, min(n - 1, 2 * k), seed)
        both = coloured[keys // n] & coloured[keys % n]
        parts.append((keys[both], position[both]))
    keys = np.concatenate([p[0] for p in parts])
    position = np.concatenate([p[1] for p in parts])
    order = np.lexsort((position, keys))
    keys, position = keys[order], position[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys = keys[first]
    return keys // n, keys % n, position[first].astype(np.int64)



def copy_candidate_pairs(thumbs: np.ndarray, known: np.ndarray | None = None, k: int = 8, *, mirror: bool = True,
                         hue_histograms: np.ndarray | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pixel_candidate_pairs` over the samples that hold a thumbnail (``known``), in
    sample positions: (i, j, best 1-based position), i < j."""
    t = np.asarray(thumbs)
    rows = np.flatnonzero(np.ones(len(t), dtype=bool) if known is None else np.asarray(known, dtype=bool))
    if rows.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    hues = None if hue_histograms is None else np.asarray(hue_histograms)[rows]
    a, b, position = pixel_candidate_pairs(t[rows], min(k, rows.size - 1), mirror=mirror, hue_histograms=hues,
                                           seed=seed)
    return rows[a], rows[b], position  # rows is increasing, so rows[a] < rows[b]



def blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """[size, size] Gaussian blur along one axis with replicated edges, as a matrix: blurring a
    batch is then two batched matmuls, several times faster than 1-channel conv2d on CPU."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    offsets = torch.arange(-r, r + 1)
    weights = torch.exp(-offsets.float() ** 2 / (2 * sigma * sigma))
    weights = weights / weights.sum()
    m = torch.zeros(size, size)
    rows = torch.arange(size)[:, None].expand(size, offsets.numel())
    cols = (torch.arange(size)[:, None] + offsets[None, :]).clamp(0, size - 1)
    m.index_put_((rows.reshape(-1), cols.reshape(-1)), weights.repeat(size), accumulate=True)
    return m


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    m = blur_matrix(x.shape[-1], sigma).to(x.device)
    return m @ x @ m.T


def border_median(x: torch.Tensor) -> torch.Tensor:
    """[B] median of each image's border pixels (x: [B, S, S] or [B, 1, S, S]): its background."""
    x = x[:, 0] if x.dim() == 4 else x
    return torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], 1).median(1).values


# Rotation corners, pads and letterboxes: the fill that PIL, torchvision and OpenCV put where a
# turned or padded picture has no pixels is black. On a light background it is the strongest thing
# in the thumbnail (a clip-art copy turned by 45 degrees has black triangles on 59% of its border).
FILL_MAX = 10            # a thumbnail pixel this dark belongs to a fill (uint8; JPEG keeps black within it)
FILL_MIN_BORDER = 0.25   # share of the border that must be background for the dark part to count as fill
FILL_CHUNK = 65536
HUE_SPREAD_DIM = 16      # colourless images in the hue search: their thumbnail's 4x4 means


def fill_to_background(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(thumbnails with the black fill painted as background, bool [N]: which changed).

    The fill is the dark region (<= FILL_MAX) connected to the border, plus its edge pixels darker
    than half the background (the thumbnail blends the fill's diagonal edge). The background is
    the median of the rest of the border. Only images whose remaining border is a light
    background (at least FILL_MIN_BORDER of it) change: on a black background (digits) the dark
    region is the background itself. A dark part of the picture that touches a light border is
    painted too, so a reader should look at both the painted and the untouched thumbnail
    (``registered_similarity`` keeps the better of the two).
    """
    t = check_thumbnails(thumbs)
    n, s = t.shape[:2]
    if n == 0 or s < 3:
        return t.copy(), np.zeros(n, dtype=bool)
    if n > FILL_CHUNK:  # the flood fill holds a few float copies of its batch
        parts = [fill_to_background(t[start:start + FILL_CHUNK]) for start in range(0, n, FILL_CHUNK)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(t).float()
    dark = x <= FILL_MAX
    edge = torch.zeros(s, s, dtype=torch.bool)
    edge[0] = edge[-1] = edge[:, 0] = edge[:, -1] = True
    # The fill grows from the dark border pixels through dark pixels only, so on the border it is
    # exactly the dark pixels, and the rest of the border (the background) is light: which images
    # change is known before the flood fill, which then runs on those alone (a digit on black, a
    # drawing on white: none of a batch, where every image used to grow its fill).
    border_dark = dark[:, edge]
    changed = ((~border_dark).float().mean(1) >= FILL_MIN_BORDER) & border_dark.any(1)
    out = t.copy()
    at = torch.nonzero(changed)[:, 0]
    if at.numel():
        x, dark = x[at], dark[at]
        fill = dark & edge
        for _ in range(s * s):  # a flood fill by dilation; a region snakes at most through every pixel
            grown = (F.max_pool2d(fill[:, None].float(), 3, 1, 1)[:, 0] > 0) & dark
            if torch.equal(grown, fill):
                break
            fill = grown
        background = torch.nanmedian(torch.where(fill[:, edge], torch.nan, x[:, edge]), dim=1).values
        fill |= (F.max_pool2d(fill[:, None].float(), 3, 1, 1)[:, 0] > 0) & (x < background[:, None, None] / 2)
        painted = torch.where(fill, background[:, None, None], x)
        out[at.numpy()] = painted.round().clamp(0, 255).to(torch.uint8).numpy()
    return out, changed.numpy()


def hue_search_vectors(hue_histograms: np.ndarray, thumbs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, bins + HUE_SPREAD_DIM] unit vectors, bool [N]: which images have colour enough to search).

    The ingest hue histograms ([achromatic share, hue-bin shares], ``imaging.hue_histogram``) of
    the coloured pixels only, square-rooted (cosine = the Bhattacharyya coefficient). Turns,
    flips, crops, blur, re-encoding and black fill leave them nearly unchanged by construction: on
    the SelfClean protocol's clip-art AUG copies (turned up to 180 degrees, 50-90% crops), 8 hue
    neighbours hold 92% of the sources (icons: 100%), where the polar vectors hold 20% (33%).

    An image with less than COLOURED_MIN colour (or no histogram) gets a vector orthogonal to every
    coloured one, and the candidate search drops its pairs. With ``thumbs`` it is the thumbnail's
    4x4 means, so that such images spread over the index: one shared vector put every grayscale
    image in one inverted list, and the search went quadratic (100k grayscale images: 80 s against
    4 s for coloured ones). Without thumbnails (distances only, no search) it is one fixed axis.
    """
    h = np.asarray(hue_histograms, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] < 2:
        raise ValueError(f"hue histograms must be [N, 1 + bins], got shape {h.shape}")
    bins = h.shape[1] - 1
    coloured_share = 1.0 - h[:, 0]
    coloured = np.isfinite(h).all(axis=1) & (coloured_share >= COLOURED_MIN)
    out = np.zeros((len(h), bins + HUE_SPREAD_DIM), dtype=np.float32)
    hues = np.sqrt(np.clip(h[coloured, 1:], 0.0, None) / coloured_share[coloured, None])
    norm = np.linalg.norm(hues, axis=1, keepdims=True)
    out[coloured, :bins] = hues / np.maximum(norm, 1e-12)
    colourless = np.flatnonzero(~coloured)
    if thumbs is not None and colourless.size:
        t = check_thumbnails(thumbs)
        if len(t) != len(h):
            raise ValueError(f"{len(h)} hue histograms for {len(t)} thumbnails")
        out[colourless, bins:] = search_vectors(t[colourless], size=int(math.isqrt(HUE_SPREAD_DIM)))
    blank = colourless[np.linalg.norm(out[colourless], axis=1) < 0.5]
    out[blank, bins] = 1.0
    return out, coloured


def frames(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre of mass (cx, cy) and RMS radius of each image's foreground, in [-1, 1] coordinates.

    Foreground = distance from the border's median value, so a dark digit on white and a white
    digit on black get the same frame, and a photo (no uniform border) gets a frame near the
    centre with a large radius.
    """
    s = x.shape[-1]
    border = border_median(x)
    fg = (x[:, 0] - border[:, None, None]).abs()
    total = fg.sum((1, 2))
    w = fg / total.clamp(min=1e-8)[:, None, None]
    lin = (torch.arange(s, dtype=torch.float32, device=x.device) + 0.5) / s * 2 - 1
    cy = (w.sum(2) * lin).sum(1)
    cx = (w.sum(1) * lin).sum(1)
    var = (w * ((lin[None, :, None] - cy[:, None, None]) ** 2 + (lin[None, None, :] - cx[:, None, None]) ** 2)).sum((1, 2))
    radius = torch.sqrt(var)
    flat = total <= 1e-6
    # A flat image has no foreground: identity frame.
    cx, cy = torch.where(flat, 0.0, cx), torch.where(flat, 0.0, cy)
    radius = torch.where(flat | (radius < 0.05), torch.full_like(radius, CANONICAL_RADIUS), radius)
    return cx, cy, radius


def warp(x: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radius: torch.Tensor,
          theta: float, flip: bool) -> torch.Tensor:
    # Output pixel p samples the input at centre + (radius / R) * Rot(theta) * Flip * p. The grid
    # is built by broadcasting: F.affine_grid's batched matmul was the slowest step here.
    s = x.shape[-1]
    lin = (torch.arange(s, dtype=torch.float32, device=x.device) * 2 + 1) / s - 1
    gx, gy = lin[None, :].expand(s, s).reshape(1, -1), lin[:, None].expand(s, s).reshape(1, -1)
    scale = (radius / CANONICAL_RADIUS)[:, None]
    cos, sin = math.cos(theta), math.sin(theta)
    f = -1.0 if flip else 1.0
    sample_x = scale * (cos * f * gx - sin * gy) + cx[:, None]
    sample_y = scale * (sin * f * gx + cos * gy) + cy[:, None]
    grid = torch.stack([sample_x, sample_y], dim=-1).view(len(x), s, s, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

