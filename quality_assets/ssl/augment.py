"""DINO multi-crop augmentations as batched tensor ops.

Everything runs on whole batches on the training device (CPU or GPU). Random choices are drawn first
as small per-view parameter tensors (`sample_view_params`); a pure function (`apply_views`) then does
random-resized-crop + horizontal flip + small rotation for all views of a group in one `grid_sample`
(the views' sampling grids are stacked, so the source image is never copied per view), followed by
colour jitter, grayscale, Gaussian blur and solarization as masked per-sample arithmetic. Being pure,
`apply_views` can be `torch.compile`d, which fuses the per-pixel work on a GPU. Per-image PIL work
would dominate the step at small image sizes and could not keep a GPU fed at 224 px.

Differences from the paper's torchvision pipeline, on purpose:
- the jitter ops run in a fixed order (brightness, contrast, saturation, hue) rather than a random one;
- hue is shifted by rotating the chroma plane in YIQ space (a linear map, so batched and cheap);
- blur sigma is given for a 224 px crop and scaled to the crop size, so small images get the same
  relative blur rather than an image-destroying one;
- hue/saturation jitter and random grayscale are skipped when the data is grayscale (they are no-ops
  there and only cost time);
- crops are clamped inside the image instead of torchvision's ten-try rejection loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from quality_assets.ssl.data import DEFAULT_MEAN, DEFAULT_STD


@dataclass(frozen=True)
class AugmentParams:
    """Photometric/geometric settings shared by all views (DINO paper values by default)."""

    flip_p: float = 0.5
    rotation_deg: float = 10.0
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_sigma_224: tuple[float, float] = (0.1, 2.0)
    # Paper: global view 1 always blurred, view 2 rarely (and sometimes solarized), local views half the time.
    blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5)
    solarize_p: float = 0.2
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD


@dataclass(frozen=True)
class ViewGroup:
    """Views produced together: same output size and crop-area range, per-view blur/solarize chances."""

    size: int
    scale: tuple[float, float]
    blur_p: tuple[float, ...]
    solarize_p: tuple[float, ...]

    @property
    def n_views(self) -> int:
        return len(self.blur_p)


@dataclass
class MultiCrop:
    """DINO's 2 global + n local crops. Call it on a uint8 batch `[B, 3, S, S]`.

    Returns `(global_views, local_views)`: float tensors `[2*B, 3, G, G]` and `[n_local*B, 3, L, L]`
    (or None when n_local == 0), normalised, ordered view-major (all images' first view, then all
    images' second view, ...), which is the order the DINO loss chunks them in.

    Random parameters are drawn first (small tensors, from `generator`), then applied by a pure
    function of (images, parameters); `compile=True` runs that function through `torch.compile`, which
    fuses the per-pixel colour ops into a few kernels on a GPU.
    """

    global_size: int
    local_size: int
    n_local: int
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    params: AugmentParams = field(default_factory=AugmentParams)
    grayscale_data: bool = False
    out_dtype: torch.dtype = torch.float32
    compile: bool = False

    def __post_init__(self) -> None:
        self._apply = apply_views
        if self.compile:
            self._apply = torch.compile(apply_views, dynamic=False)

    def groups(self) -> list[ViewGroup]:
        p = self.params
        out = [ViewGroup(self.global_size, tuple(self.global_scale), (p.blur_p[0], p.blur_p[1]), (0.0, p.solarize_p))]
        if self.n_local:
            out.append(ViewGroup(self.local_size, tuple(self.local_scale), (p.blur_p[2],) * self.n_local,
                                 (0.0,) * self.n_local))
        return out

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = images.float().div_(255.0)
        outs = []
        for group in self.groups():
            prm = sample_view_params(x.shape[0], group, self.params, self.grayscale_data, x.device, generator)
            max_sigma = self.params.blur_sigma_224[1] * group.size / 224.0
            outs.append(self._apply(
                x, prm, size=group.size, n_views=group.n_views, max_sigma=max_sigma,
                color=not self.grayscale_data and x.shape[1] == 3, mean=tuple(self.params.mean),
                std=tuple(self.params.std), out_dtype=self.out_dtype,
            ))
        return outs[0], (outs[1] if len(outs) > 1 else None)


def _uniform(n: int, lo: float, hi: float, device: torch.device, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, device=device, generator=g) * (hi - lo) + lo


def _per_view(probs: tuple[float, ...], batch: int, device: torch.device) -> torch.Tensor:
    return torch.tensor(probs, device=device, dtype=torch.float32).repeat_interleave(batch)


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
# Inverted once here: torch.linalg.inv on a GPU would check for singularity and stall the stream.
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ).float()
_RGB2YIQ = _RGB2YIQ.float()


def sample_view_params(
    batch: int, group: ViewGroup, p: AugmentParams, grayscale_data: bool, device: torch.device,
    g: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """Draw every random choice for `group.n_views` views of `batch` images (view-major order)."""
    n = batch * group.n_views
    dev = device
    # Random resized crop: area and log aspect ratio, then a centre that keeps the crop inside.
    area = _uniform(n, group.scale[0], group.scale[1], dev, g)
    r = torch.exp(_uniform(n, math.log(p.ratio[0]), math.log(p.ratio[1]), dev, g))
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n, device=dev, generator=g) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, device=dev, generator=g) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, device=dev, generator=g) < p.flip_p, -1.0, 1.0)
    ang = _uniform(n, -p.rotation_deg, p.rotation_deg, dev, g) * (math.pi / 180.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([
        torch.stack([w * cos * flip, -w * sin, cx], dim=1),
        torch.stack([h * sin * flip, h * cos, cy], dim=1),
    ], dim=1)

    jitter = torch.rand(n, device=dev, generator=g) < p.jitter_p
    one = torch.ones(n, device=dev)

    def factor(strength: float) -> torch.Tensor:
        return torch.where(jitter, _uniform(n, max(0.0, 1 - strength), 1 + strength, dev, g), one)

    prm = {"theta": theta, "brightness": factor(p.brightness), "contrast": factor(p.contrast)}
    if not grayscale_data:
        prm["saturation"] = factor(p.saturation)
        hue = torch.where(jitter, _uniform(n, -p.hue, p.hue, dev, g), torch.zeros(n, device=dev)) * (2 * math.pi)
        rot = torch.zeros(n, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = torch.cos(hue), -torch.sin(hue), torch.sin(hue), torch.cos(hue)
        prm["hue_matrix"] = _YIQ2RGB.to(dev) @ rot @ _RGB2YIQ.to(dev)
        prm["to_gray"] = (torch.rand(n, device=dev, generator=g) < p.grayscale_p).float()
    lo, hi = (s_ * group.size / 224.0 for s_ in p.blur_sigma_224)
    prm["blur"] = (torch.rand(n, device=dev, generator=g) < _per_view(group.blur_p, batch, dev)).float()
    prm["sigma"] = _uniform(n, lo, hi, dev, g)
    prm["solarize"] = (torch.rand(n, device=dev, generator=g) < _per_view(group.solarize_p, batch, dev)).float()
    return prm


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) if x.shape[1] == 3 else x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (pixels, <= max_sigma), reflect padding.

    Written as weighted sums of shifted slices rather than grouped convolutions: depthwise convs with
    one group per (sample, channel) are a slow path on GPUs, while the shifted sums are plain
    elementwise work that `torch.compile` fuses into one kernel per direction.
    """
    n, c, hgt, wid = x.shape
    # The radius comes from the known upper bound, not sigma.max(): reading a GPU value would stall.
    radius = max(1, min(int(math.ceil(3 * max_sigma)), (min(hgt, wid) - 1) // 2))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    ker = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None].float() ** 2))
    ker = (ker / ker.sum(dim=1, keepdim=True)).to(x.dtype).view(n, 1, 1, 1, -1)
    xp = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = sum(ker[..., i] * xp[..., i:i + wid] for i in range(2 * radius + 1))
    yp = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return sum(ker[..., i] * yp[..., i:i + hgt, :] for i in range(2 * radius + 1))


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel for a float batch in [0, 1]."""
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def apply_views(
    x: torch.Tensor, prm: dict[str, torch.Tensor], *, size: int, n_views: int, max_sigma: float, color: bool,
    mean: tuple[float, ...], std: tuple[float, ...], out_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Apply drawn parameters to a float batch in [0, 1]: returns normalised `[n_views*B, C, size, size]`.

    Pure function of its inputs (no random draws), so it can be compiled.
    """
    b, c = x.shape[0], x.shape[1]
    n = b * n_views
    grid = F.affine_grid(prm["theta"], [n, c, size, size], align_corners=False)
    # All views of an image are sampled in one call by stacking their grids along the output height:
    # the source image is read in place rather than copied once per view.
    grid = grid.view(n_views, b, size, size, 2).transpose(0, 1).reshape(b, n_views * size, size, 2)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = y.view(b, c, n_views, size, size).permute(2, 0, 1, 3, 4).reshape(n, c, size, size)

    def col(t: torch.Tensor) -> torch.Tensor:
        return t.view(n, 1, 1, 1)

    y = (y * col(prm["brightness"])).clamp(0, 1)
    m = _luma(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - m) * col(prm["contrast"]) + m).clamp(0, 1)
    if color:
        gray = _luma(y)
        y = ((y - gray) * col(prm["saturation"]) + gray).clamp(0, 1)
        y = torch.einsum("nij,njhw->nihw", prm["hue_matrix"], y).clamp(0, 1)
        tg = col(prm["to_gray"])
        y = y * (1 - tg) + _luma(y) * tg
    bl = col(prm["blur"])
    y = y * (1 - bl) + gaussian_blur(y, prm["sigma"], max_sigma) * bl
    sol = col(prm["solarize"]) * (y >= 0.5).to(y.dtype)
    y = y + sol * (1 - 2 * y)
    return normalize(y, mean, std).to(out_dtype)
