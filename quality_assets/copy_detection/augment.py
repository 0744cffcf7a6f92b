"""Copy augmentations (SSCD's "strong blur" set, adapted to small images) as batched tensor ops.

A copy detector learns exactly the invariances its training views span, so the views here span
what people do to an image when they copy it: crops down to 40% of the area and zoom-outs
onto a black canvas (mosaics, pads), rotations with black corners, aspect squashes, colour jitter
and grayscale, blur, text and logo overlays, distractor tiles of other images (mosaic / cutmix),
and JPEG re-encoding. Rotations stop at +-45 degrees and flips are off by default because the
matching tries the 8 dihedral transforms of every image (see ``CopyAugmentParams``).

Everything but JPEG runs on whole batches on the training device: random parameters are drawn
first, then one ``grid_sample`` does all geometry, and the rest is masked per-sample arithmetic
(the conventions of :mod:`quality_assets.ssl.augment`, whose blur and normalisation are reused).
JPEG has no tensor form; it is applied with PIL to the share of views that draws it, which at
copy-descriptor input sizes (32-64 px) costs well under a millisecond per view.

Overlays come from a bank of masks rendered once with PIL (random letters and simple emblems), so
the training loop never draws text per image. No overlay is the protocol's own watermark: the
detector must generalise to marks it has not seen.
"""

from __future__ import annotations

import io
import math
import string
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from quality_assets.ssl.augment import gaussian_blur, normalize
from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD


@dataclass(frozen=True)
class CopyAugmentParams:
    """Ranges of the copy augmentations; fractions are of the image side or area."""

    crop_area: tuple[float, float] = (0.4, 1.0)
    # A zoom-out puts the whole image into a part of a black canvas, as mosaics and pads do.
    zoom_out_p: float = 0.2
    zoom_out_area: tuple[float, float] = (0.45, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    # Rotations within +-45 degrees and no flips: matching tries the 8 dihedral transforms of every
    # image (matching.py), and any rotation, mirrored or not, is one of them composed with a turn of
    # at most 45 degrees. Learning the remaining invariance only is far easier for a small model in a
    # short run (own-view top-1 after 40 steps on 512 digits: see docs/benchmarks/copy_detection.md).
    rotate_p: float = 0.6
    rotation_deg: float = 45.0
    hflip_p: float = 0.0
    vflip_p: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.3
    blur_sigma_rel: tuple[float, float] = (0.005, 0.04)  # sigma as a share of the image side
    overlay_p: float = 0.25
    tile_p: float = 0.2
    tile_side: tuple[float, float] = (0.2, 0.45)
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 95)
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD


_OVERLAY_BANK = 48


def _overlay_bank(size: int, count: int, seed: int) -> torch.Tensor:
    """Alpha masks ``[count, 1, size, size]`` in [0, 1]: short random strings and emblems."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, 1, size, size), dtype=np.float32)
    letters = string.ascii_letters + string.digits
    for k in range(count):
        im = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(im)
        if k % 2 == 0:
            text = "".join(rng.choice(list(letters), size=int(rng.integers(3, 12))))
            try:
                font = ImageFont.load_default(size=max(6, int(size * rng.uniform(0.12, 0.3))))
            except TypeError:  # Pillow without FreeType sizing: the bitmap font, still text
                font = ImageFont.load_default()
            d.text((int(rng.integers(0, size // 3)), int(rng.integers(0, size * 2 // 3))), text, fill=255, font=font)
        else:
            w = max(1, size // 24)
            for _ in range(int(rng.integers(1, 4))):
                x0, y0 = rng.integers(0, size * 2 // 3, size=2)
                s = int(rng.integers(size // 6, size // 2))
                box = (int(x0), int(y0), int(x0) + s, int(y0) + s)
                shape = int(rng.integers(3))
                if shape == 0:
                    d.ellipse(box, outline=255, width=w)
                elif shape == 1:
                    d.rectangle(box, outline=255, width=w)
                else:
                    d.line(box, fill=255, width=w)
        out[k, 0] = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(out)


def _uniform(n: int, lo: float, hi: float, dev: torch.device, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, device=dev, generator=g) * (hi - lo) + lo


def _coin(n: int, p: float, dev: torch.device, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, device=dev, generator=g) < p


def _luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _affine(n: int, p: CopyAugmentParams, dev: torch.device, g: torch.Generator | None) -> torch.Tensor:
    """Output->input affine maps (``affine_grid`` convention) for crop/zoom-out, rotation, flips."""
    zoom = _coin(n, p.zoom_out_p, dev, g)
    crop_area = _uniform(n, *p.crop_area, dev, g)
    # zoom-out: the image covers `a` of the canvas, so the sampled window is 1/a of the image
    zoom_area = _uniform(n, *p.zoom_out_area, dev, g)
    area = torch.where(zoom, 1.0 / zoom_area, crop_area)
    r = torch.exp(_uniform(n, math.log(p.ratio[0]), math.log(p.ratio[1]), dev, g))
    w, h = torch.sqrt(area * r), torch.sqrt(area / r)
    # Crops stay inside the image; zoom-outs keep the image inside the canvas.
    cx = (torch.rand(n, device=dev, generator=g) * 2 - 1) * (1 - w).abs()
    cy = (torch.rand(n, device=dev, generator=g) * 2 - 1) * (1 - h).abs()
    rad = p.rotation_deg * math.pi / 180.0
    ang = torch.where(_coin(n, p.rotate_p, dev, g), _uniform(n, -rad, rad, dev, g), torch.zeros(n, device=dev))
    fx = torch.where(_coin(n, p.hflip_p, dev, g), -1.0, 1.0)
    fy = torch.where(_coin(n, p.vflip_p, dev, g), -1.0, 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    # x_in = R(ang) @ diag(w fx, h fy) @ x_out + c
    return torch.stack([
        torch.stack([cos * w * fx, -sin * h * fy, cx], dim=1),
        torch.stack([sin * w * fx, cos * h * fy, cy], dim=1),
    ], dim=1)


def jpeg_views(x: torch.Tensor, mask: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Re-encode the masked views of a float batch in [0, 1] as JPEG (PIL, on the CPU)."""
    idx = torch.nonzero(mask).flatten().tolist()
    if not idx:
        return x
    sub = (x[idx].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(sub)
    for k, (img, q) in enumerate(zip(sub, quality[idx].tolist())):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(q))
        buf.seek(0)
        with Image.open(buf) as im:
            out[k] = np.asarray(im.convert("RGB"))
    x = x.clone()
    x[idx] = torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255.0
    return x


class CopyAugment:
    """Two (or more) copy views of a uint8 batch ``[B, 3, S, S]``, normalised, at ``size`` px.

    ``grayscale_data`` skips the colour-only steps (they are no-ops on gray images and a coloured
    view of a gray dataset would teach an invariance the data never needs).
    """

    def __init__(self, size: int, params: CopyAugmentParams | None = None, *, grayscale_data: bool = False,
                 seed: int = 0) -> None:
        self.size = int(size)
        self.params = params or CopyAugmentParams()
        self.grayscale_data = grayscale_data
        self.overlays = _overlay_bank(self.size, _OVERLAY_BANK, seed)

    def view(self, images: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        p, s = self.params, self.size
        x = images.float().div(255.0)
        n, dev = x.shape[0], x.device
        grid = F.affine_grid(_affine(n, p, dev, g), [n, 3, s, s], align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Distractor tiles of other images of the batch (a mosaic or a cutmix that keeps identity).
        tile = _coin(n, p.tile_p, dev, g)
        if bool(tile.any()):
            side = int(round(s * float(_uniform(1, *p.tile_side, dev, g))))
            side = max(2, min(s - 1, side))
            other = F.interpolate(x[torch.roll(torch.arange(n, device=dev), 1)], size=(side, side), mode="bilinear",
                                  antialias=True, align_corners=False)
            ox, oy = (int(v) for v in torch.randint(0, s - side + 1, (2,), device=dev, generator=g).tolist())
            patch = y[:, :, oy:oy + side, ox:ox + side]
            y = y.clone()
            y[:, :, oy:oy + side, ox:ox + side] = torch.where(tile.view(n, 1, 1, 1), other, patch)

        def col(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, 1, 1, 1)

        jit = _coin(n, p.jitter_p, dev, g)
        one = torch.ones(n, device=dev)

        def factor(strength: float) -> torch.Tensor:
            return torch.where(jit, _uniform(n, max(0.0, 1 - strength), 1 + strength, dev, g), one)

        y = (y * col(factor(p.brightness))).clamp(0, 1)
        m = _luma(y).mean(dim=(1, 2, 3), keepdim=True)
        y = ((y - m) * col(factor(p.contrast)) + m).clamp(0, 1)
        if not self.grayscale_data:
            gray = _luma(y)
            y = ((y - gray) * col(factor(p.saturation)) + gray).clamp(0, 1)
            # Hue: a cyclic shift of the channels mixed in by the drawn amount (cheap and batched).
            h = torch.where(jit, _uniform(n, -p.hue, p.hue, dev, g), torch.zeros(n, device=dev)).abs() * 3
            y = (y * col(1 - h) + y.roll(1, dims=1) * col(h)).clamp(0, 1)
            tg = col(_coin(n, p.grayscale_p, dev, g).float())
            y = y * (1 - tg) + _luma(y) * tg

        # Overlays: a mask from the bank at a random place, in white, black or a random colour.
        ov = _coin(n, p.overlay_p, dev, g)
        if bool(ov.any()):
            bank = self.overlays.to(dev)
            pick = torch.randint(0, bank.shape[0], (n,), device=dev, generator=g)
            shift = torch.randint(-s // 4, s // 4 + 1, (2,), device=dev, generator=g).tolist()
            alpha = torch.roll(bank[pick], shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            alpha = alpha * col(ov.float()) * col(_uniform(n, 0.6, 1.0, dev, g))
            ink = torch.rand(n, 3, 1, 1, device=dev, generator=g)
            ink = torch.where(col(_coin(n, 0.5, dev, g)), ink.round(), ink)  # half pure black/white
            if self.grayscale_data:
                ink = ink.mean(dim=1, keepdim=True).expand(n, 3, 1, 1)
            y = y * (1 - alpha) + ink * alpha

        lo, hi = (r * s for r in p.blur_sigma_rel)
        bl = col(_coin(n, p.blur_p, dev, g).float())
        y = y * (1 - bl) + gaussian_blur(y, _uniform(n, max(lo, 0.1), max(hi, 0.3), dev, g), max(hi, 0.3)) * bl

        jpg = _coin(n, p.jpeg_p, dev, g)
        q = torch.randint(p.jpeg_quality[0], p.jpeg_quality[1] + 1, (n,), device=dev, generator=g)
        y = jpeg_views(y, jpg, q)
        return normalize(y, p.mean, p.std)

    def __call__(self, images: torch.Tensor, n_views: int = 2, g: torch.Generator | None = None) -> list[torch.Tensor]:
        return [self.view(images, g) for _ in range(n_views)]
