"""Per-image transforms of the published SelfClean contamination protocol.

Source: Digital-Dermatology/SelfClean-Evaluation (commit 6ddf51a), ``src/perturbed_datasets/``.
That code is CC BY-NC; this module is our own code written from the parameters it uses, and each
parameter names the file and line it comes from. Abbreviations below:
``nd`` = ``nd_augment_dataset.py``, ``arte`` = ``artefact_augmentation_dataset.py``,
``blur`` = ``blur_augment_dataset.py``, ``pil`` = ``src/utils/utils_pil.py``,
``synth`` = ``src/evaluate_synthetic.py``, ``cfg`` = ``configs/evaluation.yaml``.

Every transform works the way the protocol does: the image is first resized so that its shorter
side is 512 px (the protocol's ``reference_image_size``), transformed there, saved as JPEG (the
protocol writes every generated sample to ``<idx>.jpg``: nd:69, arte:82, blur:66, PIL's default
quality 75) and finally resized to the dataset's native size. The protocol's evaluation transform
squashes every image to one fixed square (synth:72, ``Resize((256, 256))``), so a generated sample
never differs from the others by its size; returning the native size is the equivalent for a
service that stores files as they are.

Images are uint8 numpy arrays, HxW (grayscale) or HxWx3 (colour); the output has the input's
shape and mode, so colour data keeps colour. Randomness comes only from the ``rng`` passed in.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

REFERENCE_SIZE = 512            # nd:27, arte:43, blur:28 (reference_image_size)
JPEG_QUALITY = 75               # PIL's default for image.save("<idx>.jpg") (nd:70, arte:83, blur:67)
# AUG (near duplicates): nd:31-47
AUG_ROTATION_P = 0.5            # nd:34-37 RandomApply(p=0.5)
AUG_ROTATION_DEG = (0.0, 180.0)  # nd:35 RandomRotation(degrees=(0, 180)), fill 0, nearest
AUG_CROP_SIZE = 224             # nd:38 RandomResizedCrop(size=(224, 224))
AUG_CROP_SCALE = (0.5, 0.9)     # nd:38 scale=(0.5, 0.9)
AUG_CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default ratio (nd:38 does not set it)
AUG_PAD = 3                     # nd:39 Pad(3), fill 0
AUG_PAD_P = 0.5                 # nd:39
AUG_BLUR_KERNEL = 5             # nd:41 GaussianBlur(5)
AUG_BLUR_SIGMA = (0.1, 2.0)     # torchvision's GaussianBlur default sigma (nd:41 does not set it)
AUG_BLUR_P = 0.5                # nd:40-43
AUG_HFLIP_P = 0.5               # nd:44
AUG_VFLIP_P = 0.5               # nd:45
# ARTE (near duplicates with artefacts): arte:27-45, values from cfg:14-25
ARTE_WATERMARK_P = 0.5          # cfg:18 watermark_prob
ARTE_COLORBAR_P = 0.5           # cfg:19 colorbar_prob (arte:206 tests watermark_prob; both 0.5)
ARTE_MOSAIC_P = 0.5             # cfg:20 mosaic_prob
ARTE_WATERMARK_TEXT = "CONFIDENTIAL"  # cfg:22 watermark_text
ARTE_WATERMARK_FRAC = 0.5       # cfg:23 watermark_frac (logo scale)
ARTE_TEXT_WIDTH = 0.8           # arte:151 text spans 0.8 of the image width
ARTE_MOSAIC_TILE = 256          # arte:178 other image resized to 256 x 256
ARTE_MOSAIC_SCALE = 0.5         # cfg:25 mosaic_scale
ARTE_MOSAIC_SPACING = 10        # arte:184-185 spacing=10, black canvas (pil:5, pil:12)
# BLUR (off-topic): blur:33-44
BLUR_POSTERIZE_BITS = 2         # blur:36 RandomPosterize(bits=2), torchvision default p = 0.5
BLUR_POSTERIZE_P = 0.5
BLUR_SOLARIZE_THRESHOLD = 192   # blur:37 RandomSolarize(threshold=192.0), default p = 0.5
BLUR_SOLARIZE_P = 0.5
BLUR_RADIUS = (10.0, 100.0)     # blur:29 gaussian_radius=(10, 100), applied with p = 1.0 (blur:38-42)
# Leakage is not part of the SelfClean protocol: these are ours (a re-encode and a light crop are
# the copies a train/test audit meets most; the crop is milder than AUG's 0.5-0.9).
LEAK_CROP_SCALE = (0.85, 0.95)


def to_pil(img: np.ndarray) -> Image.Image:
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected uint8 HxW or HxWx3, got {img.dtype} {img.shape}")
    return Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")


def _resize_short_side(im: Image.Image, size: int) -> Image.Image:
    # torchvision Resize(int): the shorter side becomes `size`, the aspect ratio is kept.
    w, h = im.size
    if w <= h:
        nw, nh = size, max(1, int(size * h / w))
    else:
        nw, nh = max(1, int(size * w / h)), size
    return im.resize((nw, nh), Image.Resampling.BILINEAR)


def _jpeg(im: Image.Image, quality: int = JPEG_QUALITY) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert(im.mode)


def _finish(im: Image.Image, like: np.ndarray) -> np.ndarray:
    """JPEG as the protocol saves it, then back to the source's size and mode."""
    im = _jpeg(im.convert("RGB"))
    mode = "L" if like.ndim == 2 else "RGB"
    h, w = like.shape[:2]
    im = im.convert(mode).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(im, dtype=np.uint8).copy()


def random_resized_crop_box(
    width: int, height: int, rng: np.random.Generator, scale: tuple[float, float], ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box sampling: 10 tries of (area, log-uniform aspect), else
    the centre crop at the clamped aspect. Returns (left, top, right, bottom)."""
    area = width * height
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def _gaussian_blur_kernel5(im: Image.Image, sigma: float) -> Image.Image:
    # torchvision GaussianBlur(5): a 5-tap separable kernel with reflect padding (scipy "mirror").
    from scipy.ndimage import gaussian_filter

    a = np.asarray(im, dtype=np.float32)
    axes = (0, 1)
    out = gaussian_filter(a, sigma=sigma, radius=AUG_BLUR_KERNEL // 2, mode="mirror", axes=axes)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode=im.mode)


def aug_copy(img: np.ndarray, rng: np.random.Generator, *, record: dict | None = None) -> np.ndarray:
    """AUG near duplicate (nd:31-47): rotation, resized crop, pad, blur, flips, each as published.

    ``record`` (optional dict) receives what was applied: ``angle`` (None if not rotated),
    ``crop_box`` and ``crop_area_fraction`` (of the 512-px reference image), ``pad``, ``sigma``,
    ``hflip``, ``vflip``; the tests check the protocol's ranges with it.
    """
    im = _resize_short_side(to_pil(img).convert("RGB"), REFERENCE_SIZE)
    info: dict = {}
    info["angle"] = None
    if rng.random() < AUG_ROTATION_P:
        angle = float(rng.uniform(*AUG_ROTATION_DEG))
        info["angle"] = angle
        im = im.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0))
    box = random_resized_crop_box(im.size[0], im.size[1], rng, AUG_CROP_SCALE, AUG_CROP_RATIO)
    info["crop_box"] = box
    info["crop_area_fraction"] = (box[2] - box[0]) * (box[3] - box[1]) / float(im.size[0] * im.size[1])
    im = im.resize((AUG_CROP_SIZE, AUG_CROP_SIZE), Image.Resampling.BILINEAR, box=box)
    info["pad"] = rng.random() < AUG_PAD_P
    if info["pad"]:
        im = ImageOps.expand(im, border=AUG_PAD, fill=(0, 0, 0))
    info["sigma"] = None
    if rng.random() < AUG_BLUR_P:
        info["sigma"] = float(rng.uniform(*AUG_BLUR_SIGMA))
        im = _gaussian_blur_kernel5(im, info["sigma"])
    info["hflip"] = rng.random() < AUG_HFLIP_P
    if info["hflip"]:
        im = ImageOps.mirror(im)
    info["vflip"] = rng.random() < AUG_VFLIP_P
    if info["vflip"]:
        im = ImageOps.flip(im)
    if record is not None:
        record.update(info)
    return _finish(im, img)


@lru_cache(maxsize=1)
def _font_path() -> str | None:
    # arte:146 uses DejaVuSans.ttf; Debian ships it in fonts-dejavu-core.
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if Path(p).is_file():
            return p
    return None


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    path = _font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _text_font(text: str, width: int, ratio: float) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # arte:227-236: measure at size 100, scale so the text spans `ratio` of the width.
    probe = _font(100)
    left, _, right, _ = ImageDraw.Draw(Image.new("L", (8, 8))).textbbox((0, 0), text, font=probe)
    return _font(max(4, round(100 / ((right - left) / width) * ratio)))


def _logo(size: int) -> Image.Image:
    """An RGBA emblem standing in for the protocol's logo file (cfg:21, not published): white
    strokes on a transparent ground, as arte:188-196 turns the logo's black pixels white."""
    logo = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(logo)
    w = max(2, size // 14)
    d.ellipse((w, w, size - w, size - w), outline=(255, 255, 255, 230), width=w)
    q = size // 4
    d.rectangle((q + w, q + w, size - q - w, size - q - w), outline=(255, 255, 255, 230), width=w)
    d.line((q + w, size - q - w, size - q - w, q + w), fill=(255, 255, 255, 230), width=w)
    return logo


def _watermark(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    # arte:127-162: the logo at watermark_frac of its size at a random position, then the text in
    # the default ink (white) at a random position.
    out = im.copy()
    logo = _logo(max(8, int(min(im.size) * 0.6 * ARTE_WATERMARK_FRAC)))
    x = int(rng.integers(0, max(0, im.size[0] - logo.size[0]) + 1))
    y = int(rng.integers(0, max(0, im.size[1] - logo.size[1]) + 1))
    out.paste(logo, (x, y), logo)
    font = _text_font(ARTE_WATERMARK_TEXT, im.size[0], ARTE_TEXT_WIDTH)
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = draw.textbbox((0, 0), ARTE_WATERMARK_TEXT, font=font)
    tx = int(rng.integers(0, max(0, im.size[0] - (right - left)) + 1)) - left
    ty = int(rng.integers(0, max(0, im.size[1] - (bottom - top)) + 1)) - top
    draw.text((tx, ty), ARTE_WATERMARK_TEXT, font=font, fill=(255, 255, 255))
    return out


def _colorbar(height: int) -> Image.Image:
    """A vertical colour scale standing in for the protocol's colorbar file (cfg:24, not
    published): a jet-like ramp with white ticks, 1:12 wide."""
    width = max(4, height // 12)
    t = np.linspace(1.0, 0.0, height)[:, None]
    r = np.clip(1.5 - np.abs(4 * t - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * t - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * t - 1), 0, 1)
    ramp = (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)
    bar = np.repeat(ramp, width, axis=1)
    bar[:: max(1, height // 8), : width // 3] = 255
    return Image.fromarray(bar, mode="RGB")


def _concat_h(a: Image.Image, b: Image.Image, spacing: int = 0) -> Image.Image:
    dst = Image.new("RGB", (a.width + b.width + spacing, a.height))  # black canvas, pil:12
    dst.paste(a, (0, 0))
    dst.paste(b, (a.width + spacing, 0))
    return dst


def _concat_v(a: Image.Image, b: Image.Image, spacing: int = 0) -> Image.Image:
    dst = Image.new("RGB", (a.width, a.height + b.height + spacing))  # black canvas, pil:5
    dst.paste(a, (0, 0))
    dst.paste(b, (0, a.height + spacing))
    return dst


def arte_copy(img: np.ndarray, rng: np.random.Generator, other: np.ndarray, *,
              record: dict | None = None) -> np.ndarray:
    """ARTE near duplicate (arte:198-214): watermark, colour bar, mosaic, each with p = 0.5.

    ``other`` is a random image of the same dataset (the mosaic tile, arte:176-177). Grayscale
    data stays grayscale (the protocol sets ``grayscale=True`` for its grayscale dataset, synth:118).
    """
    im = _resize_short_side(to_pil(img).convert("RGB"), REFERENCE_SIZE)
    applied = []
    if rng.random() <= ARTE_WATERMARK_P:
        im = _watermark(im, rng)
        applied.append("watermark")
    if rng.random() <= ARTE_COLORBAR_P:
        bar = _colorbar(im.size[1])  # arte:166-172: the bar scaled to the image height
        im = _concat_h(im, bar)
        applied.append("colorbar")
    if rng.random() <= ARTE_MOSAIC_P:
        tile = to_pil(other).convert("RGB").resize((ARTE_MOSAIC_TILE, ARTE_MOSAIC_TILE), Image.Resampling.BILINEAR)
        side = int(ARTE_MOSAIC_TILE * ARTE_MOSAIC_SCALE)
        tile = tile.resize((side, side), Image.Resampling.BILINEAR)
        im = _concat_h(_concat_v(im, tile, ARTE_MOSAIC_SPACING), tile, ARTE_MOSAIC_SPACING)
        applied.append("mosaic")
    if record is not None:
        record["applied"] = applied
    return _finish(im, img)


def blur_off_topic(img: np.ndarray, rng: np.random.Generator, *, record: dict | None = None) -> np.ndarray:
    """BLUR off-topic (blur:33-44): posterise to 2 bits and solarise at 192 (each p = 0.5), then
    a Gaussian blur of radius 10-100 at the 512-px reference size."""
    im = _resize_short_side(to_pil(img).convert("RGB"), REFERENCE_SIZE)
    info = {"posterize": rng.random() < BLUR_POSTERIZE_P}
    if info["posterize"]:
        im = ImageOps.posterize(im, BLUR_POSTERIZE_BITS)
    info["solarize"] = rng.random() < BLUR_SOLARIZE_P
    if info["solarize"]:
        im = ImageOps.solarize(im, threshold=BLUR_SOLARIZE_THRESHOLD)
    info["radius"] = float(rng.uniform(*BLUR_RADIUS))
    im = im.filter(ImageFilter.GaussianBlur(radius=info["radius"]))
    if record is not None:
        record.update(info)
    return _finish(im, img)


def foreign_image(src: np.ndarray, like: np.ndarray) -> np.ndarray:
    """XR off-topic: an image of another domain at the dataset's size and mode (squashed, as the
    protocol's evaluation transform does, synth:72)."""
    mode = "L" if like.ndim == 2 else "RGB"
    h, w = like.shape[:2]
    im = to_pil(src).convert(mode).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(im, dtype=np.uint8).copy()


def jpeg_copy(img: np.ndarray) -> np.ndarray:
    """Leakage copy re-encoded as JPEG at the protocol's save quality, same size and mode."""
    return np.asarray(_jpeg(to_pil(img)), dtype=np.uint8).copy()


def light_crop_copy(img: np.ndarray, rng: np.random.Generator, *, record: dict | None = None) -> np.ndarray:
    """Leakage copy cropped lightly (85-95% of the area, aspect kept) and resized back."""
    im = to_pil(img)
    w, h = im.size
    frac = float(rng.uniform(*LEAK_CROP_SCALE))
    cw, ch = max(1, int(round(w * np.sqrt(frac)))), max(1, int(round(h * np.sqrt(frac))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    if record is not None:
        record["crop_area_fraction"] = cw * ch / float(w * h)
    out = im.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    return np.asarray(out, dtype=np.uint8).copy()
