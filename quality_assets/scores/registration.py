"""Copies under any rotation, both flips, crops and zoom: registration of candidate pairs.

Why: the published SelfClean AUG copies rotate by 0-180 degrees half of the time, crop 50-90% of
the area (a 1.05-1.4x zoom with a shift), pad, blur and flip; ARTE copies shrink the source to
~80% beside foreign tiles or squeeze it beside a colour bar. The canonical-frame verifier of
:mod:`quality_assets.scores.pixel_copies` searches +-12 degrees only, and a natural twin of an
upright digit beats a copy turned by 90 degrees there. Here the pair is *registered*: the
similarity transform (mirror, angle, zoom, shift) that best maps one thumbnail onto the other is
searched, and the pair's evidence is the correlation it reaches.

Registration is coarse to fine, all of it batched tensor code:

1. coarse: the query at half the thumbnail size is warped by every (mirror x 16 angles x 5 zooms,
   0.75-1.33) transform; the best shift of each against the reference comes from one
   cross-correlation (shifts up to a quarter of the side; a grouped convolution per batch);
2. fine: around the best two coarse transforms, 5 angles x 3 zooms at the full thumbnail size,
   again with the shift search, both ways (a zoomed-in crop matches its source when the
   source is zoomed in onto it, not the other way round; the inverse transforms are refined);
3. polish: 12 steps of gradient ascent (Adam) on turn, zoom, aspect and shift from the better
   way's best grid transform. The aspect (x and y zoomed apart) is free here only: the protocol's
   crops draw their aspect from 3/4-4/3, and real copies get resized to other aspects; freeing it
   took the service's pair AP on the MNIST set from 0.306 to 0.334 (AUG 0.42 -> 0.49) and on
   Animal-MNIST from 0.231 to 0.245. The grid leaves up to ~3 degrees, 4% zoom and half a pixel of error,
   which costs a thin-stroked copy more correlation than a natural twin: on the MNIST set below,
   polishing took the AUG pair AP from 0.11 to 0.24 with every candidate registered (20 steps,
   both ways; 12 steps one way rank the service's pairs the same: pair AP 0.306 vs 0.306).

A natural twin also registers well when it may be turned and zoomed freely (two "1"s); what
separates a copy is that it registers much better than anything else its ends meet, which the
ratio to the next best in ``pair_evidence`` reads. On the SelfClean protocol (MNIST, 2.5k images
+ 25 AUG + 25 ARTE copies + 25 leaks, every one of the 71k candidate pairs registered) that ratio
alone ranks the copies at pair AP 0.40 (AUG 0.54, leakage 1.0), where the other verifiers' fusion
reached 0.08.

Cost: about 20 times `verify_pairs` per pair on CPU (`benchmarks/bench_registration.py`), hence
only a few pairs per image are registered (``pair_evidence.REGISTER_*_PER_IMAGE``) and the
verdicts are kept across runs (``pixel_copies.VerifiedPairMemo.register``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from quality_assets.pixel_view import (
    THUMBNAIL_SIZE, border_median, check_thumbnails, fill_to_background, gaussian_blur,
)
from quality_assets.side_by_side import map_side_by_side

__all__ = ["COARSE_ANGLES", "COARSE_ZOOMS", "registered_similarity"]

COARSE_ANGLES = 16
COARSE_ZOOMS = (0.75, 0.87, 1.0, 1.15, 1.33)
FINE_ANGLES = 5   # spanning one coarse angle step, centred on the coarse angle
FINE_ZOOMS = 3    # spanning one coarse zoom step
COARSE_KEEP = 2   # coarse hypotheses refined per pair and direction
POLISH_STEPS = 12
POLISH_LR = 0.015
# Light blur at the fine level: tolerates JPEG and the protocol's blur without washing out strokes.
FINE_BLUR_PX = 0.4


def _theta(mirror, angle, log_zoom, tx, ty, log_aspect=None) -> torch.Tensor:
    """[..., 2, 3] output->input maps for the sampling grid: mirror (+-1), then turn, then zoom
    about the centre (x and y apart by `log_aspect`), then a shift (tx, ty) in [-1, 1] image
    coordinates."""
    c, s = torch.cos(angle), torch.sin(angle)
    half = 0.0 if log_aspect is None else log_aspect / 2
    zx, zy = torch.exp(-log_zoom - half), torch.exp(-log_zoom + half)
    return torch.stack([torch.stack([mirror * c * zx, -s * zy, tx], -1),
                        torch.stack([mirror * s * zx, c * zy, ty], -1)], -2)


def _affine(mirror: torch.Tensor, angle: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """:func:`_theta` without a shift, the zoom as a factor."""
    zero = torch.zeros_like(angle)
    return _theta(mirror, angle, torch.log(zoom), zero, zero)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-norm images over the last two axes (a flat image stays zero)."""
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return x / x.flatten(-2).norm(dim=-1).clamp_min(1e-6)[..., None, None]


def _sampling_grid(theta: torch.Tensor, s: int) -> torch.Tensor:
    """theta [..., 2, 3] -> sampling grids [..., S, S, 2] of an S-pixel image (align_corners=False)."""
    # By broadcasting: affine_grid's batched matmul cost more than the sampling.
    lin = (torch.arange(s, dtype=torch.float32) * 2 + 1) / s - 1
    gx, gy = lin[None, :], lin[:, None]
    th = theta.flatten(-2)[..., None, None]
    if theta.requires_grad:   # the polish differentiates through the grid, and out= has no gradient
        return torch.stack([th[..., 0, :, :] * gx + th[..., 1, :, :] * gy + th[..., 2, :, :],
                            th[..., 3, :, :] * gx + th[..., 4, :, :] * gy + th[..., 5, :, :]], -1)
    # The same sums in the same order, written in place: the fine level's grids (30 warps a pair)
    # were built 2.2-2.5x slower through two full-size temporaries and a stack.
    grid = torch.empty(*theta.shape[:-2], s, s, 2, dtype=theta.dtype, device=theta.device)
    for axis in range(2):
        torch.add(th[..., 3 * axis, :, :] * gx, th[..., 3 * axis + 1, :, :] * gy, out=grid[..., axis])
        grid[..., axis].add_(th[..., 3 * axis + 2, :, :])
    return grid


def _warp_each(x: torch.Tensor, background: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x [B, S, S] warped by theta [B, T, 2, 3] -> [B, T, S, S]; outside the image = its background."""
    b, t = theta.shape[:2]
    s = x.shape[-1]
    # The T warps of an image are sampled as one tall output image, so the image is not copied T times.
    grid = _sampling_grid(theta, s).view(b, t * s, s, 2)
    out = F.grid_sample((x - background[:, None, None])[:, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.view(b, t, s, s) + background[:, None, None, None]


def _warp_all(x: torch.Tensor, background: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x [B, S, S] warped by the same transforms theta [T, 2, 3] -> [B, T, S, S] (what
    :func:`_warp_each` gives for theta repeated per row, 6x faster: the images are the channels of
    one sampling per transform)."""
    t, (b, s) = theta.shape[0], (x.shape[0], x.shape[-1])
    src = (x - background[:, None, None])[None].expand(t, b, s, s)
    out = F.grid_sample(src, _sampling_grid(theta, s), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.transpose(0, 1) + background[:, None, None, None]


def _shift_correlations(ref: torch.Tensor, warped: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Correlations of unit references [B, S, S] with unit warped queries [B, T, S, S] at every
    shift up to max_shift -> [B, T, 2m+1, 2m+1], shift (dy, dx) at index (dy + m, dx + m): the
    reference matches the query moved by (dy, dx); what a shift moves out of the frame counts as 0.

    One grouped convolution (a reference per group, its pair's T warps the filters): at these sizes
    (12 and 24 px, shifts of 3 and 6) it is 7-35x faster on CPU than the zero-padded FFT
    cross-correlation it replaced, and the same to 1e-6 (`benchmarks/bench_registration.py`)."""
    b, t, s = warped.shape[0], warped.shape[1], warped.shape[-1]
    m = max_shift
    padded = F.pad(ref, (m, m, m, m))[None]                      # [1, B, S + 2m, S + 2m]
    corr = F.conv2d(padded, _unit(warped).reshape(b * t, 1, s, s), groups=b)
    return corr.view(b, t, 2 * m + 1, 2 * m + 1)


def _best_shift_correlation(ref: torch.Tensor, warped: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Best correlation over shifts up to max_shift -> [B, T]."""
    return _shift_correlations(ref, warped, max_shift).flatten(2).max(2).values


class _Pyramid:
    """Per-image tensors the registration reads: fine and coarse images, their backgrounds, and
    their zero-mean unit-norm versions (the references)."""

    def __init__(self, thumbs: np.ndarray, images: np.ndarray):
        x = torch.from_numpy(thumbs[images]).float() / 255.0
        s = x.shape[-1]
        self.fine = gaussian_blur(x, FINE_BLUR_PX * s / THUMBNAIL_SIZE) if s >= 8 else x
        half = max(4, s // 2)
        coarse = F.interpolate(x[:, None], size=(half, half), mode="area")[:, 0]
        self.coarse = gaussian_blur(coarse, 0.8) if half >= 8 else coarse
        self.fine_bg, self.coarse_bg = border_median(self.fine), border_median(self.coarse)
        # The shift search reaches a quarter of the side.
        self.fine_shift, self.coarse_shift = max(1, s // 4), max(1, half // 4)
        self.fine_unit, self.coarse_unit = _unit(self.fine), _unit(self.coarse)


def _coarse_grid(mirror: bool) -> torch.Tensor:
    mirrors = (1.0, -1.0) if mirror else (1.0,)
    m, a, z = np.meshgrid(mirrors, np.arange(COARSE_ANGLES) * 2 * np.pi / COARSE_ANGLES, COARSE_ZOOMS, indexing="ij")
    return torch.tensor(np.stack([m.ravel(), a.ravel(), z.ravel()], 1), dtype=torch.float32)


def _fine_grid(hyp: torch.Tensor) -> torch.Tensor:
    """[B, K, 3] coarse (mirror, angle, zoom) hypotheses -> [B, K * FINE_ANGLES * FINE_ZOOMS, 2, 3]."""
    b = hyp.shape[0]
    angle_step = 2 * math.pi / COARSE_ANGLES
    zoom_step = math.log(COARSE_ZOOMS[1] / COARSE_ZOOMS[0])
    d_angle = torch.linspace(-angle_step / 2, angle_step / 2, FINE_ANGLES)
    d_zoom = torch.exp(torch.linspace(-zoom_step / 2, zoom_step / 2, FINE_ZOOMS))
    mirror = hyp[..., 0, None, None].expand(-1, -1, FINE_ANGLES, FINE_ZOOMS)
    angle = (hyp[..., 1, None, None] + d_angle[:, None]).expand(-1, -1, FINE_ANGLES, FINE_ZOOMS)
    zoom = (hyp[..., 2, None, None] * d_zoom[None, :]).expand(-1, -1, FINE_ANGLES, FINE_ZOOMS)
    return _affine(mirror.reshape(b, -1), angle.reshape(b, -1), zoom.reshape(b, -1))


def _fine(p: _Pyramid, ref: torch.Tensor, query: torch.Tensor, hyp: torch.Tensor):
    """Fine search around hypotheses [B, K, 3] -> (best correlation [B], its transform as
    (mirror, angle, log zoom, tx, ty), each [B])."""
    b = ref.numel()
    theta = _fine_grid(hyp)  # [B, T, 2, 3]
    side, m = p.fine.shape[-1], p.fine_shift
    corr = _shift_correlations(p.fine_unit[ref], _warp_each(p.fine[query], p.fine_bg[query], theta), m)
    value, at = corr.flatten(1).max(1)
    per_t = (2 * m + 1) ** 2
    t, rest = at // per_t, at % per_t
    dy, dx = (rest // (2 * m + 1) - m).float(), (rest % (2 * m + 1) - m).float()
    rows = torch.arange(b)
    th = theta[rows, t]  # [B, 2, 3]
    # The reference matches the warped query moved by (dy, dx) pixels: fold the move into the map.
    move = torch.stack([2 * dx / side, 2 * dy / side], -1)
    tx_ty = th[:, :, 2] - (th[:, :, :2] @ move[:, :, None])[..., 0]
    k = FINE_ANGLES * FINE_ZOOMS
    h = hyp[rows, t // k]
    fa, fz = (t % k) // FINE_ZOOMS, t % FINE_ZOOMS
    angle_step = 2 * math.pi / COARSE_ANGLES
    zoom_step = math.log(COARSE_ZOOMS[1] / COARSE_ZOOMS[0])
    angle = h[:, 1] + (fa.float() / (FINE_ANGLES - 1) - 0.5) * angle_step
    log_zoom = torch.log(h[:, 2]) + (fz.float() / (FINE_ZOOMS - 1) - 0.5) * zoom_step
    return value, (h[:, 0], angle, log_zoom, tx_ty[:, 0], tx_ty[:, 1])


def _polish(p: _Pyramid, ref: torch.Tensor, query: torch.Tensor, start) -> torch.Tensor:
    """Gradient ascent of the correlation over turn, zoom, aspect and shift from the grid's best transform:
    the grid leaves up to ~3 degrees, 4% zoom and half a pixel, which costs a thin-stroked copy
    more correlation than a natural twin loses."""
    mirror = start[0]
    params = [x.clone().requires_grad_(True) for x in start[1:]] + [torch.zeros_like(start[1]).requires_grad_(True)]
    target, images, background = p.fine_unit[ref], p.fine[query], p.fine_bg[query]
    opt = torch.optim.Adam(params, lr=POLISH_LR)
    best = torch.full((ref.numel(),), -1.0)
    for step in range(POLISH_STEPS + 1):
        theta = _theta(mirror, *params)[:, None]
        warped = _unit(_warp_each(images, background, theta)[:, 0])
        corr = (warped * target).sum((-2, -1))
        best = torch.maximum(best, corr.detach())
        if step == POLISH_STEPS:   # a last gradient step would move nothing that is measured again
            break
        opt.zero_grad()
        (-corr.sum()).backward()
        opt.step()
    return best


def _register(p: _Pyramid, ref: torch.Tensor, query: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Best correlation of each pair registered either way -> [B].

    The coarse search runs one way (query onto reference); the other way refines the inverse
    transforms: mirror m, turn a, zoom z is undone by mirror m, turn -m*a, zoom 1/z.
    """
    scores = _best_shift_correlation(
        p.coarse_unit[ref], _warp_all(p.coarse[query], p.coarse_bg[query], _affine(*grid.T)), p.coarse_shift)
    hyp = grid[scores.topk(min(COARSE_KEEP, grid.shape[0]), dim=1).indices]  # [B, K, 3]
    inverse = torch.stack([hyp[..., 0], -hyp[..., 0] * hyp[..., 1], 1.0 / hyp[..., 2]], -1)
    forward, f_start = _fine(p, ref, query, hyp)
    backward, b_start = _fine(p, query, ref, inverse)
    if POLISH_STEPS <= 0:
        return torch.maximum(forward, backward)
    # Only the better way round is polished (polishing is most of the cost).
    use_forward = forward >= backward
    start = [torch.where(use_forward, f, b).clone() for f, b in zip(f_start, b_start)]
    a, b = torch.where(use_forward, ref, query), torch.where(use_forward, query, ref)
    with torch.enable_grad():
        return torch.maximum(torch.maximum(forward, backward), _polish(p, a, b, start))


def registered_similarity(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray, *, mirror: bool = True,
                          batch: int = 128, threads: int | None = None) -> np.ndarray:
    """Best correlation in [-1, 1] of each pair's thumbnails (uint8 [N, S, S]) over mirror, turn,
    zoom and shift, registered both ways (see the module docstring).

    A pair with an end that has black fill on a light background (rotation corners, a pad, a
    letterbox, a canvas: ``pixel_view.fill_to_background``) is registered a second time with the
    fill painted as background, and keeps the better correlation: the fill is where the copy has
    no pixels, and on white clip art it weighed more than the drawing (the protocol's mosaics, a
    copy on a black canvas, registered at a median 0.74 to their sources before, 0.96 after).
    Painting alone is not safe: a dark picture touching a light border is painted too, and a
    crop of it touches the border elsewhere (on Animal-MNIST that cost near-duplicate AP 0.25 ->
    0.16 and leakage AP 0.98 -> 0.92).

    `threads` (default: torch's thread count) batches run at once, each on one torch thread. A
    batch's tensors are small (128 pairs of 28 px images): torch's own threads would split each small
    operation and meet at a barrier after it, and with other work on the cores those meetings wait.
    On 2,048 kNN pairs of digits on 2 cores (`benchmarks/bench_registration.py --threads-compare`),
    one batch at a time on 2 torch threads registered 512 pairs/s quiet and 52 beside another
    process's 2-thread torch work; two batches at once, one thread each, 647 and 327. The scores
    are the same to the bit: a pair's result does not depend on its batch or on the thread.
    """
    t = check_thumbnails(thumbs)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.shape != j.shape:
        raise ValueError("i and j must have the same shape")
    out = np.full(i.size, -1.0, dtype=np.float64)
    if i.size == 0:
        return out
    workers = max(1, int(threads) if threads else torch.get_num_threads())
    out[:] = _register_pairs(t, i, j, mirror, batch, workers)
    images = np.unique(np.concatenate([i, j]))
    filled, changed = fill_to_background(t[images])
    slot_i, slot_j = np.searchsorted(images, i), np.searchsorted(images, j)
    again = np.flatnonzero(changed[slot_i] | changed[slot_j])
    if again.size:
        # The pairs' own images painted, not a copy of every thumbnail (784 MB at 1M images).
        painted = t[images]
        painted[changed] = filled[changed]
        out[again] = np.maximum(out[again], _register_pairs(painted, slot_i[again], slot_j[again], mirror, batch,
                                                            workers))
    return out


def _register_pairs(t: np.ndarray, i: np.ndarray, j: np.ndarray, mirror: bool, batch: int,
                    workers: int = 1) -> np.ndarray:
    # `registered_similarity`'s default of 128 pairs a batch keeps a batch's fine warps (30 per pair
    # and way at 24 px) near 9 MB; at 256 the same scores took 1.13-1.24x longer (three runs in one
    # process on 4k-20k MNIST pairs, docs/benchmarks/matrix.md "Update 2026-12-05 (4)"). A pair's
    # result does not depend on its batch.
    out = np.empty(i.size, dtype=np.float64)
    images = np.unique(np.concatenate([i, j]))
    p = _Pyramid(t, images)
    slot_i = torch.from_numpy(np.searchsorted(images, i))
    slot_j = torch.from_numpy(np.searchsorted(images, j))
    grid = _coarse_grid(mirror)
    starts = range(0, i.size, batch)

    def one_batch(start: int) -> None:
        a, b = slot_i[start:start + batch], slot_j[start:start + batch]
        # Grad mode is per thread. no_grad, not inference_mode: the polish needs autograd on tensors made here.
        with torch.no_grad():
            out[start:start + a.numel()] = _register(p, a, b, grid).clamp(-1.0, 1.0).double().numpy()

    map_side_by_side(one_batch, starts, workers, name="register")
    return out
