"""Pixel-view evidence that two images are copies of each other, for near-duplicate pairs.

Why a second view: a representation learned for semantics (the SSL model) is built to put
*different* images of the same thing close together. In datasets packed with natural near-twins
(digits, products, clothing) that is exactly what hides copies: a rotated, cropped or
watermarked copy sits farther from its source than two ordinary "1"s sit from each other
(docs/benchmarks/detection.md: in the SSL space an ARTE copy's source is its nearest neighbour
only about half the time). A copy, unlike a twin, is the *same pixels* up to a small geometric
change or a local occlusion, and that can be checked directly on a small grayscale thumbnail.

Three pieces, all O(pairs) time and O(N) memory besides the thumbnails themselves:

1. Candidates: the k nearest neighbours in an 8x8 thumbnail space (zero-mean, unit-norm), plain
   and in the canonical frame below, with the mirrored thumbnails in the index too so a flipped
   copy finds its source. These pairs join the SSL kNN edges; no view alone holds every copy.
2. Two verifiers per candidate pair, each a dissimilarity in [0, 1]:
   - ``aligned``: 1 - the best correlation of the two blurred thumbnails after putting each
     into a canonical frame (centre of mass at the centre, RMS radius fixed: removes shift and
     scale, i.e. crops and padding) and searching rotations of +-12 degrees (and the mirror).
     Also tried without the canonical frame, which a local artefact would move. This is what
     finds rotated / cropped / padded / slightly blurred copies.
   - ``agreement``: the share of informative pixels (those away from the image's median in
     either image) that do NOT agree within 4/255-ish (``AGREE_TOLERANCE``) in the unblurred
     thumbnails. A watermark, a bar or a pasted tile changes a region completely and leaves
     the rest identical; a natural twin agrees nowhere exactly.
3. Relative evidence: natural twins come in crowds (every "1" looks like every other "1"), a
   copy stands out from its crowd. Each verifier's dissimilarity is divided by the node's next
   best dissimilarity among its other candidate pairs (Lowe's ratio test), geometric mean over
   the two ends.

Fusion lives in :mod:`quality_assets.scores.near_duplicate`: each verifier's ratio becomes an
empirical p-value (its rank among all candidate pairs) and the pair's score is the smallest
weighted p-value (a weighted Bonferroni combination), so either verifier alone can vouch for
a copy and no verifier's scale dominates.

Measured on the demo (MNIST 5k + 60 injected copies + 25 leaked copies; `benchmarks/demo_rescore.py`,
docs/BENCHMARKS.md): near-duplicate pair AP 0.05 with embedding evidence alone -> 0.86, leakage
AP 0.72 -> 1.0. Cost at scale: `benchmarks/bench_pixel_copies.py`, docs/benchmarks/knn_scores.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from quality_assets.knn import build_knn_graph

__all__ = [
    "AGREE_TOLERANCE",
    "SEARCH_SIZE",
    "canonical_search_vectors",
    "THUMBNAIL_SIZE",
    "pixel_candidate_pairs",
    "ratio_to_next_best",
    "search_vectors",
    "verify_pairs",
]

# Thumbnails are stored at this size (grayscale uint8, 576 bytes per image); 32 px found no
# more copies on the demo and took 1.8x longer to verify.
THUMBNAIL_SIZE = 24
# The pixel view's vectors (copy candidates, off-topic and label-error graphs) are 8x8 averages
# of the thumbnail. On the demo they hold every copy and leak pair among the candidates (85 of
# 85, as 16x16 does) and give the same off-topic and label-error AP as 16x16 (0.98 / 0.96 vs
# 0.97 / 0.94; 0.80 / 0.85 vs 0.81 / 0.85), with a quarter of the dimensions: the kNN searches
# are the pixel view's largest cost at scale.
SEARCH_SIZE = 8
# Two pixels agree when they differ by at most this (on a 0..1 scale): JPEG re-encodes at
# quality >= 70 keep nearly every pixel within it, different strokes never are.
AGREE_TOLERANCE = 0.04
# Rotations searched in the canonical frame (degrees); copies rotated further are not "near".
ROTATIONS_DEG = tuple(float(a) for a in np.arange(-12.0, 12.01, 3.0))
# Canonical RMS radius, in normalised [-1, 1] image coordinates.
_CANONICAL_RADIUS = 0.45
_BLUR_SIGMA_PX = 1.0  # at THUMBNAIL_SIZE; tolerates the half-pixel errors of the alignment grid


def _check_thumbnails(thumbs: np.ndarray) -> np.ndarray:
    t = np.asarray(thumbs)
    if t.ndim != 3 or t.shape[1] != t.shape[2] or t.dtype != np.uint8:
        raise ValueError(f"thumbnails must be uint8 [N, S, S], got {t.dtype} {t.shape}")
    return t


def search_vectors(thumbs: np.ndarray, *, mirror: bool = False, size: int = SEARCH_SIZE) -> np.ndarray:
    """float32 [N, size*size]: area-downsampled thumbnails, zero-mean and unit-norm (cosine space)."""
    t = _check_thumbnails(thumbs)
    out = np.empty((len(t), size * size), dtype=np.float32)
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
    return out


def canonical_search_vectors(thumbs: np.ndarray, *, mirror: bool = False,
                             size: int = SEARCH_SIZE) -> np.ndarray:
    """Like :func:`search_vectors`, but of the blurred thumbnail in its canonical frame (centre
    of mass centred, RMS radius fixed): a cropped or padded copy lands on its source here even
    when the plain thumbnails have drifted apart."""
    t = _check_thumbnails(thumbs)
    out = np.empty((len(t), size * size), dtype=np.float32)
    sigma = _BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    with torch.inference_mode():
        for start in range(0, len(t), 16384):
            x = _gaussian_blur(torch.from_numpy(t[start:start + 16384]).float()[:, None] / 255.0, sigma)
            v = F.interpolate(_warp(x, *_frames(x), 0.0, mirror), size=(size, size), mode="area").flatten(1)
            v = v - v.mean(1, keepdim=True)
            norm = v.norm(dim=1, keepdim=True)
            v = torch.where(norm > 1e-6, v / norm.clamp(min=1e-6), torch.full_like(v, 1.0 / size))
            out[start:start + len(v)] = v.numpy()
    return out


def _graph_pairs(vectors: np.ndarray, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys a * n + b, 1-based row position) of a kNN graph over n images' (stacked) vectors."""
    graph = build_knn_graph(vectors, min(len(vectors) - 1, k), seed=seed, recall_sample=0)
    # Rows of the originals only; a stacked (mirrored) entry stands for its source image.
    nb = graph.neighbors[:n].astype(np.int64) % n
    src = np.repeat(np.arange(n, dtype=np.int64), nb.shape[1])
    dst = nb.ravel()
    keep = src != dst
    # Position in the row once self (its own mirror image) is skipped.
    position = np.cumsum(keep.reshape(n, -1), axis=1).ravel()[keep]
    a, b = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    return a * n + b, position


def pixel_candidate_pairs(thumbs: np.ndarray, k: int = 8, *, mirror: bool = True, canonical: bool = True,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected candidate pairs (i < j) from thumbnail kNN graphs, and each pair's best
    1-based position in either end's row (1 = nearest).

    Two searches on SEARCH_SIZE averages, k neighbours each: plain thumbnails, and (``canonical``)
    thumbnails in their canonical frame; on the demo neither alone holds every copy and leak
    pair (79 and 67 of 85), together they do. With ``mirror``, the mirrored thumbnails are in each index too, so each image also
    meets the sources of its mirror images. Uses the same exact/IVF builder as the SSL graph.
    """
    t = _check_thumbnails(thumbs)
    n = len(t)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    views = [search_vectors] + ([canonical_search_vectors] if canonical else [])
    parts = []
    for view in views:
        vectors = view(t)
        if mirror:
            vectors = np.vstack([vectors, view(t, mirror=True)])
        parts.append(_graph_pairs(vectors, n, 2 * k if mirror else k, seed))
    keys = np.concatenate([p[0] for p in parts])
    position = np.concatenate([p[1] for p in parts])
    order = np.lexsort((position, keys))
    keys, position = keys[order], position[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys = keys[first]
    return keys // n, keys % n, position[first].astype(np.int64)



def _blur_matrix(size: int, sigma: float) -> torch.Tensor:
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


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    m = _blur_matrix(x.shape[-1], sigma).to(x.device)
    return m @ x @ m.T


def _frames(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre of mass (cx, cy) and RMS radius of each image's foreground, in [-1, 1] coordinates.

    Foreground = distance from the border's median value, so a dark digit on white and a white
    digit on black get the same frame, and a photo (no uniform border) gets a frame near the
    centre with a large radius.
    """
    s = x.shape[-1]
    border = torch.cat([x[:, 0, 0], x[:, 0, -1], x[:, 0, :, 0], x[:, 0, :, -1]], 1).median(1).values
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
    radius = torch.where(flat | (radius < 0.05), torch.full_like(radius, _CANONICAL_RADIUS), radius)
    return cx, cy, radius


def _warp(x: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radius: torch.Tensor,
          theta: float, flip: bool) -> torch.Tensor:
    # Output pixel p samples the input at centre + (radius / R) * Rot(theta) * Flip * p. The grid
    # is built by broadcasting: F.affine_grid's batched matmul was the slowest step here.
    s = x.shape[-1]
    lin = (torch.arange(s, dtype=torch.float32, device=x.device) * 2 + 1) / s - 1
    gx, gy = lin[None, :].expand(s, s).reshape(1, -1), lin[:, None].expand(s, s).reshape(1, -1)
    scale = (radius / _CANONICAL_RADIUS)[:, None]
    cos, sin = math.cos(theta), math.sin(theta)
    f = -1.0 if flip else 1.0
    sample_x = scale * (cos * f * gx - sin * gy) + cx[:, None]
    sample_y = scale * (sin * f * gx + cos * gy) + cy[:, None]
    grid = torch.stack([sample_x, sample_y], dim=-1).view(len(x), s, s, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _unit(x: torch.Tensor) -> torch.Tensor:
    v = x.flatten(1)
    v = v - v.mean(1, keepdim=True)
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-6)


def _agreement_dissimilarity(a: torch.Tensor, b: torch.Tensor, med_a: torch.Tensor,
                             med_b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    med_a, med_b = med_a[:, None], med_b[:, None]
    informative = ((a - med_a).abs() > AGREE_TOLERANCE) | ((b - med_b).abs() > AGREE_TOLERANCE)
    disagree = (a - b).abs() > AGREE_TOLERANCE
    n_inf = informative.sum(1)
    frac = (disagree & informative).sum(1) / n_inf.clamp(min=1)
    # Two flat images: nothing is informative; they agree as far as their pixels do.
    return torch.where(n_inf > 0, frac, disagree.float().mean(1))


def verify_pairs(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, *, mirror: bool = True,
                 batch: int | None = None, threads: int | None = None,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(aligned, agreement) dissimilarities in [0, 1] for the pairs (i[p], j[p]); see the module doc.

    device: "cpu" (default), "cuda", or "auto" (CUDA when available). The verifiers are the
    same tensor code on either. Only the CPU path has been run so far: no GPU was available when
    this was written, so the service does not pick CUDA by itself.
    """
    t = _check_thumbnails(thumbs)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.shape != j.shape:
        raise ValueError("i and j must have the same shape")
    aligned = np.ones(i.size, dtype=np.float64)
    agreement = np.ones(i.size, dtype=np.float64)
    if i.size == 0:
        return aligned, agreement
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    batch = int(batch or (65536 if dev.type == "cuda" else 4096))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    sigma = _BLUR_SIGMA_PX * t.shape[1] / THUMBNAIL_SIZE
    thetas = [math.radians(a) for a in ROTATIONS_DEG]
    flips = (False, True) if mirror else (False,)
    try:
        with torch.inference_mode():
            # Per-image statistics once, not once per pair: each image sits in ~20 pairs.
            images = np.unique(np.concatenate([i, j]))
            slot = np.full(len(t), -1, dtype=np.int64)
            slot[images] = np.arange(images.size)
            frame = torch.empty(images.size, 3, device=dev)
            median = torch.empty(images.size, device=dev)
            for start in range(0, images.size, 16384):
                x = torch.from_numpy(t[images[start:start + 16384]]).to(dev).float()[:, None] / 255.0
                frame[start:start + len(x)] = torch.stack(_frames(_gaussian_blur(x, sigma)), dim=1)
                median[start:start + len(x)] = x.flatten(1).median(1).values
            for start in range(0, i.size, batch):
                ia, jb = i[start:start + batch], j[start:start + batch]
                sa, sb = torch.from_numpy(slot[ia]).to(dev), torch.from_numpy(slot[jb]).to(dev)
                xa = torch.from_numpy(t[ia]).to(dev).float()[:, None] / 255.0
                xb = torch.from_numpy(t[jb]).to(dev).float()[:, None] / 255.0
                ba, bb = _gaussian_blur(xa, sigma), _gaussian_blur(xb, sigma)
                ua = _unit(ba)
                best = (ua * _unit(bb)).sum(1)
                med_a, med_b = median[sa], median[sb]
                agree = _agreement_dissimilarity(xa, xb, med_a, med_b)
                if mirror:
                    best = torch.maximum(best, (ua * _unit(torch.flip(bb, dims=[3]))).sum(1))
                    agree = torch.minimum(agree, _agreement_dissimilarity(xa, torch.flip(xb, dims=[3]), med_a, med_b))
                fa, fb = frame[sa].unbind(1), frame[sb].unbind(1)
                ca = _unit(_warp(ba, *fa, 0.0, False))
                for flip in flips:
                    for theta in thetas:
                        best = torch.maximum(best, (ca * _unit(_warp(bb, *fb, theta, flip))).sum(1))
                stop = start + len(ia)
                aligned[start:stop] = ((1.0 - best.clamp(-1.0, 1.0)) / 2.0).double().cpu().numpy()
                agreement[start:stop] = agree.double().cpu().numpy()
    finally:
        torch.set_num_threads(previous)
    return aligned, agreement


def ratio_to_next_best(dissimilarity: np.ndarray, i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Each pair's dissimilarity over the next best one its ends have (geometric mean of both ends).

    For end ``i`` the reference is the smallest dissimilarity among i's *other* pairs; an end
    with no other pair uses 1 (no crowd to stand out from). 0 / 0 (exact copies among exact
    copies) counts as 0: duplicate evidence. Values above 1 mean the pair is not even its
    ends' best.
    """
    d = np.asarray(dissimilarity, dtype=np.float64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    m = d.size
    if m == 0:
        return np.zeros(0)
    node = np.concatenate([i, j])
    value = np.concatenate([d, d])
    order = np.lexsort((value, node))
    node_sorted = node[order]
    value_sorted = value[order]
    counts = np.bincount(node, minlength=n)
    starts = np.searchsorted(node_sorted, np.arange(n))
    position = np.empty(2 * m, dtype=np.int64)
    position[order] = np.arange(2 * m) - starts[node_sorted]

    def smallest(q: int) -> np.ndarray:
        out = np.ones(n)
        has = counts > q
        out[has] = value_sorted[starts[has] + q]
        return out

    first, second = smallest(0), smallest(1)
    second[counts < 2] = 1.0

    def side(end: np.ndarray, pos: np.ndarray) -> np.ndarray:
        ref = np.where(pos == 0, second[end], first[end])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = d / ref
        return np.where(ref > 0, r, np.where(d > 0, np.inf, 0.0))

    ratio_i = side(i, position[:m])
    ratio_j = side(j, position[m:])
    with np.errstate(invalid="ignore"):
        return np.sqrt(ratio_i * ratio_j)
