"""Synthetic contamination following the SelfClean protocol (Gröger et al., NeurIPS 2024 D&B).

Works on in-memory datasets: ``images`` (list of uint8 arrays, HxW grayscale or HxWx3),
``labels`` and ``splits`` (string arrays, one entry per image). Every generator takes a
``np.random.Generator`` and returns a :class:`Contaminated` with *new* arrays plus ground-truth rows;
inputs are never modified, so one clean dataset can be contaminated many ways in a benchmark.

Kinds (``issue_type`` / ``kind``):

- ``off_topic`` / ``XR``: images from another domain, appended, converted to the dataset's mode and size.
- ``off_topic`` / ``BLUR``: an in-domain image replaced in place by posterize + solarize + heavy blur.
- ``near_duplicate`` / ``AUG``: appended copy under a random mix of small geometric/photometric changes.
- ``near_duplicate`` / ``ARTE``: appended copy with an artefact (watermark text, bar, mosaic).
- ``label_error`` / ``LBL``: label flipped uniformly to another class, in place.
- ``label_error`` / ``LBLC``: label flipped along a fixed class map (a -> b), in place.
- ``leakage`` / ``LEAK``: appended copy (exact or lightly augmented) of a train image, in the eval split.

Off-topic images get a random label of the dataset (somebody mis-filed them).

Ground truth columns: ``issue_type, kind, index, partner_index, given_label, true_label``.
``index`` is the contaminated sample's position in the returned arrays; ``partner_index`` is the
source of a copy (near_duplicate, leakage) else -1; ``true_label`` is ``""`` for off-topic samples
(they belong to no class) and the correct class otherwise (equal to ``given_label`` except for
label errors).
"""

from __future__ import annotations

import io
import string
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

OFF_TOPIC = "off_topic"
NEAR_DUPLICATE = "near_duplicate"
LABEL_ERROR = "label_error"
LEAKAGE = "leakage"

KIND_ISSUE: dict[str, str] = {
    "XR": OFF_TOPIC,
    "BLUR": OFF_TOPIC,
    "AUG": NEAR_DUPLICATE,
    "ARTE": NEAR_DUPLICATE,
    "LBL": LABEL_ERROR,
    "LBLC": LABEL_ERROR,
    "LEAK": LEAKAGE,
}
KINDS: tuple[str, ...] = tuple(KIND_ISSUE)
GROUND_TRUTH_COLUMNS: tuple[str, ...] = (
    "issue_type",
    "kind",
    "index",
    "partner_index",
    "given_label",
    "true_label",
)


@dataclass(frozen=True)
class ContaminationRates:
    """How much of each kind to inject, as fractions of the clean dataset size.

    A positive rate always yields at least one sample, so tiny test datasets still exercise
    every kind. ``leak_exact_fraction`` is the share of leakage copies that are byte-exact (the
    rest are lightly augmented, which hash-based leakage checks miss).
    """

    xr: float = 0.0
    blur: float = 0.0
    aug: float = 0.0
    arte: float = 0.0
    lbl: float = 0.0
    lblc: float = 0.0
    leak: float = 0.0
    leak_exact_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ContaminationRates.{f.name} must be in [0, 1], got {value}")

    def counts(self, n: int) -> dict[str, int]:
        """Number of samples per kind for a clean dataset of ``n`` images."""
        out = {}
        for kind in KINDS:
            rate = getattr(self, kind.lower())
            out[kind] = max(1, int(round(rate * n))) if rate > 0 else 0
        return out

    @classmethod
    def from_counts(cls, n: int, leak_exact_fraction: float = 0.5, **counts: int) -> "ContaminationRates":
        """Rates that give ``counts`` (keyed by kind, any case) on a dataset of ``n`` images."""
        kwargs: dict[str, float] = {}
        for kind, count in counts.items():
            if kind.upper() not in KIND_ISSUE:
                raise ValueError(f"unknown contamination kind {kind!r}; expected one of {KINDS}")
            kwargs[kind.lower()] = count / n
        return cls(leak_exact_fraction=leak_exact_fraction, **kwargs)


@dataclass
class Contaminated:
    """A dataset after contamination, plus one ground-truth row per injected issue."""

    images: list[np.ndarray]
    labels: np.ndarray
    splits: np.ndarray
    ground_truth: pd.DataFrame


# --------------------------------------------------------------------------------------------
# image helpers (numpy <-> PIL)


def _pil(img: np.ndarray) -> Image.Image:
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"expected uint8 HxW or HxWx3, got {img.dtype} {img.shape}")
    return Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")


def _background(im: Image.Image) -> int | tuple[int, ...]:
    # Fill exposed areas with the border colour: black for MNIST-like data, so a rotated copy does
    # not gain tell-tale corners that would make it trivially separable from its source.
    a = np.asarray(im)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]], axis=0)
    med = np.median(border, axis=0).astype(int)
    return int(med) if med.ndim == 0 else tuple(int(v) for v in med)


def conform_image(img: np.ndarray, like_shape: tuple[int, ...]) -> np.ndarray:
    """Convert ``img`` to the mode (gray/RGB) and size of an image with shape ``like_shape``.

    Centre-crops to the target aspect ratio first so foreign content is not squashed.
    """
    im = _pil(img)
    im = im.convert("L" if len(like_shape) == 2 else "RGB")
    h, w = like_shape[0], like_shape[1]
    sw, sh = im.size
    if sw * h > sh * w:  # source is wider than the target: trim the sides
        cw, ch = sh * w / h, float(sh)
    else:
        cw, ch = float(sw), sw * h / w
    box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
    im = im.resize((w, h), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    return np.asarray(im, dtype=np.uint8).copy()


def _random_resized_crop(im: Image.Image, rng: np.random.Generator, scale: tuple[float, float]) -> Image.Image:
    w, h = im.size
    s = np.sqrt(rng.uniform(*scale))
    cw, ch = max(1, int(round(w * s))), max(1, int(round(h * s)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return im.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))


def _rotate(im: Image.Image, rng: np.random.Generator, max_deg: float) -> Image.Image:
    angle = float(rng.uniform(2.0, max_deg)) * (1 if rng.random() < 0.5 else -1)
    return im.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=_background(im))


def _pad(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    p = max(1, int(round(min(w, h) * rng.uniform(0.04, 0.12))))
    padded = ImageOps.expand(im, border=p, fill=_background(im))
    return padded.resize((w, h), Image.Resampling.BILINEAR)


def _light_blur(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(radius=min(im.size) * float(rng.uniform(0.015, 0.035))))


def _jpeg(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    # A re-encode is the most common "copy" in the wild: pixels move, content does not.
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(rng.integers(70, 95)))
    buf.seek(0)
    return Image.open(buf).convert(im.mode)


_AUG_OPS: tuple[Callable[[Image.Image, np.random.Generator], Image.Image], ...] = (
    lambda im, rng: _rotate(im, rng, 10.0),
    lambda im, rng: _random_resized_crop(im, rng, (0.8, 0.95)),
    _pad,
    _light_blur,
    lambda im, rng: ImageOps.mirror(im),
)


def _ensure_changed(out: np.ndarray, src: np.ndarray, im: Image.Image, rng: np.random.Generator) -> np.ndarray:
    # A copy identical to its source would be an exact duplicate, a different (easier) issue.
    for _ in range(5):
        if not np.array_equal(out, src):
            return out
        out = np.asarray(_rotate(im, rng, 10.0), dtype=np.uint8).copy()
    if np.array_equal(out, src):  # flat image: no geometric change shows, so nudge one pixel
        out = out.copy()
        pos = tuple(int(rng.integers(d)) for d in out.shape)
        out[pos] ^= 1
    return out


def aug_copy(img: np.ndarray, rng: np.random.Generator, *, allow_flip: bool = True) -> np.ndarray:
    """Near-duplicate copy: a random non-empty mix of small rotation, resized crop, padding,
    light blur and horizontal flip, applied in random order.

    ``allow_flip=False`` is for domains where a mirror image reads as another thing (a flipped
    digit 9 looks like a "P") and the benchmark should not count it as a copy.
    """
    im = _pil(img)
    ops = _AUG_OPS if allow_flip else _AUG_OPS[:-1]
    chosen = [op for op in ops if rng.random() < 0.5]
    if not chosen:
        chosen = [ops[int(rng.integers(len(ops)))]]
    for i in rng.permutation(len(chosen)):
        im = chosen[int(i)](im, rng)
    return _ensure_changed(np.asarray(im, dtype=np.uint8).copy(), img, _pil(img), rng)


def _watermark(im: Image.Image, rng: np.random.Generator, _other: Image.Image) -> Image.Image:
    w, h = im.size
    size = max(6, int(min(w, h) * rng.uniform(0.25, 0.4)))
    font = ImageFont.load_default(size=size)
    alphabet = string.ascii_uppercase + "©"
    text = "".join(rng.choice(list(alphabet), size=int(rng.integers(1, 4))))
    layer = Image.new("L", im.size, 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    x = int(rng.integers(0, max(1, w - tw) + 1)) - left
    y = int(rng.integers(0, max(1, h - th) + 1)) - top
    draw.text((x, y), text, fill=int(rng.integers(130, 230)), font=font)
    colour = Image.new(im.mode, im.size, 255 if im.mode == "L" else (255, 255, 255))
    return Image.composite(colour, im, layer)


def _bar(im: Image.Image, rng: np.random.Generator, _other: Image.Image) -> Image.Image:
    w, h = im.size
    out = im.copy()
    t = max(1, int(round(min(w, h) * rng.uniform(0.08, 0.18))))
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    fill = colour if im.mode == "RGB" else int(rng.integers(90, 256))
    box = {
        0: (0, 0, w, t),
        1: (0, h - t, w, h),
        2: (0, 0, t, h),
        3: (w - t, 0, w, h),
    }[int(rng.integers(4))]
    ImageDraw.Draw(out).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=fill)
    return out


def _mosaic(im: Image.Image, rng: np.random.Generator, other: Image.Image) -> Image.Image:
    w, h = im.size
    s = float(rng.uniform(0.3, 0.45))
    tile = other.convert(im.mode).resize((max(1, int(w * s)), max(1, int(h * s))), Image.Resampling.BILINEAR)
    corner = int(rng.integers(4))
    x = 0 if corner in (0, 2) else w - tile.size[0]
    y = 0 if corner in (0, 1) else h - tile.size[1]
    out = im.copy()
    out.paste(tile, (x, y))
    return out


_ARTE_OPS = (_watermark, _bar, _mosaic)


def arte_copy(img: np.ndarray, rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """Near-duplicate copy with one artefact: watermark text, a grey/colour bar along an edge,
    or a mosaic tile of ``other`` in a corner."""
    op = _ARTE_OPS[int(rng.integers(len(_ARTE_OPS)))]
    out = np.asarray(op(_pil(img), rng, _pil(other)), dtype=np.uint8).copy()
    return _ensure_changed(out, img, _pil(img), rng)


def blur_corrupt(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Off-topic ``BLUR``: posterize, solarize, then a blur heavy enough to erase the content."""
    im = _pil(img)
    im = ImageOps.posterize(im, int(rng.integers(1, 4)))
    im = ImageOps.solarize(im, threshold=int(rng.integers(64, 192)))
    im = im.filter(ImageFilter.GaussianBlur(radius=min(im.size) * float(rng.uniform(0.08, 0.15))))
    return np.asarray(im, dtype=np.uint8).copy()


def light_copy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Leakage copy that is not byte-exact: one light change (re-encode, tiny blur/shift/rotation)."""
    im = _pil(img)
    ops = (
        _jpeg,
        _light_blur,
        lambda im, rng: _random_resized_crop(im, rng, (0.9, 0.97)),
        lambda im, rng: _rotate(im, rng, 4.0),
    )
    out = np.asarray(ops[int(rng.integers(len(ops)))](im, rng), dtype=np.uint8).copy()
    return _ensure_changed(out, img, im, rng)


# --------------------------------------------------------------------------------------------
# generators


def _check(
    images: Sequence[np.ndarray], labels: np.ndarray, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(str)
    splits = np.asarray(splits).astype(str)
    if not (len(images) == len(labels) == len(splits)):
        raise ValueError(f"images/labels/splits lengths differ: {len(images)}, {len(labels)}, {len(splits)}")
    return labels, splits


def _pick(candidates: np.ndarray, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if n > len(candidates):
        raise ValueError(f"{what}: need {n} eligible samples, only {len(candidates)} available")
    return np.sort(rng.choice(candidates, size=n, replace=False)) if n else np.empty(0, dtype=np.int64)


def _candidates(n_images: int, candidates: np.ndarray | None) -> np.ndarray:
    return np.arange(n_images) if candidates is None else np.asarray(candidates, dtype=np.int64)


def _rows(
    kind: str, index: Sequence[int], partner: Sequence[int], given: Sequence[str], true: Sequence[str]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "issue_type": [KIND_ISSUE[kind]] * len(index),
            "kind": [kind] * len(index),
            "index": np.asarray(index, dtype=np.int64),
            "partner_index": np.asarray(partner, dtype=np.int64),
            "given_label": pd.Series(list(given), dtype=object),
            "true_label": pd.Series(list(true), dtype=object),
        },
        columns=list(GROUND_TRUTH_COLUMNS),
    )


def _append(
    kind: str,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    new_images: list[np.ndarray],
    new_labels: list[str],
    new_splits: list[str],
    partners: Sequence[int],
    true_labels: Sequence[str],
) -> Contaminated:
    start = len(images)
    idx = np.arange(start, start + len(new_images))
    return Contaminated(
        images=list(images) + new_images,
        labels=np.array(list(labels) + list(new_labels), dtype=str),
        splits=np.array(list(splits) + list(new_splits), dtype=str),
        ground_truth=_rows(kind, idx, partners, new_labels, true_labels),
    )


def add_off_topic_xr(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    pool: Sequence[np.ndarray],
) -> Contaminated:
    """Append ``n`` images from ``pool`` (another domain), each conformed to the mode and size of a
    random in-domain image, with a random label and a split drawn like the existing ones.

    Pool images are used without replacement first; further rounds take random crops so no two
    off-topic samples are exact duplicates of each other.
    """
    labels, splits = _check(images, labels, splits)
    if n and not pool:
        raise ValueError("XR: the off-topic pool is empty")
    classes = np.unique(labels)
    rounds = -(-n // max(1, len(pool)))
    order = np.concatenate([rng.permutation(len(pool)) for _ in range(rounds)]) if n else []
    new_images, new_labels, new_splits = [], [], []
    for j in range(n):
        src = pool[int(order[j])]
        if j >= len(pool):
            src = np.asarray(_random_resized_crop(_pil(src), rng, (0.4, 0.8)), dtype=np.uint8)
        like = images[int(rng.integers(len(images)))]
        new_images.append(conform_image(src, like.shape))
        new_labels.append(str(rng.choice(classes)))
        new_splits.append(str(splits[int(rng.integers(len(splits)))]))
    return _append("XR", images, labels, splits, new_images, new_labels, new_splits, [-1] * n, [""] * n)


def replace_off_topic_blur(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Replace ``n`` in-domain images in place by :func:`blur_corrupt` versions with a random label.

    In place rather than appended, so no recognisable source remains next to the off-topic image.
    """
    labels, splits = _check(images, labels, splits)
    targets = _pick(_candidates(len(images), candidates), n, rng, "BLUR")
    classes = np.unique(labels)
    out_images, out_labels = list(images), labels.copy()
    for i in targets:
        out_images[i] = blur_corrupt(images[i], rng)
        out_labels[i] = str(rng.choice(classes))
    gt = _rows("BLUR", targets, [-1] * n, out_labels[targets], [""] * n)
    return Contaminated(out_images, out_labels, splits.copy(), gt)


def _add_copies(
    kind: str,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    candidates: np.ndarray | None,
    make: Callable[[int], np.ndarray],
    split_of: Callable[[int], str],
) -> Contaminated:
    labels, splits = _check(images, labels, splits)
    sources = _pick(_candidates(len(images), candidates), n, rng, kind)
    new_images = [make(int(i)) for i in sources]
    new_labels = [str(labels[i]) for i in sources]
    new_splits = [split_of(int(i)) for i in sources]
    return _append(kind, images, labels, splits, new_images, new_labels, new_splits, sources, new_labels)


def add_near_duplicates_aug(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    allow_flip: bool = True,
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Append an :func:`aug_copy` of ``n`` distinct sources, same label and split as the source."""
    splits_s = np.asarray(splits).astype(str)
    return _add_copies(
        "AUG", images, labels, splits, rng, n, candidates,
        lambda i: aug_copy(images[i], rng, allow_flip=allow_flip), lambda i: str(splits_s[i]),
    )


def add_near_duplicates_arte(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Append an :func:`arte_copy` of ``n`` distinct sources, same label and split as the source.
    Mosaic tiles come from other random images of the input."""
    splits_s = np.asarray(splits).astype(str)

    def make(i: int) -> np.ndarray:
        other = int(rng.integers(len(images) - 1)) if len(images) > 1 else i
        other += int(other >= i) if len(images) > 1 else 0
        return arte_copy(images[i], rng, images[other])

    return _add_copies("ARTE", images, labels, splits, rng, n, candidates, make, lambda i: str(splits_s[i]))


def add_leakage(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    exact_fraction: float = 0.5,
    source_split: str = "train",
    eval_split: str = "test",
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Append copies of ``n`` distinct ``source_split`` images into ``eval_split``.

    ``round(n * exact_fraction)`` copies are byte-identical in pixels; the rest get one light change
    (:func:`light_copy`), which exact-hash leakage checks cannot see.
    """
    labels, splits = _check(images, labels, splits)
    pool = _candidates(len(images), candidates)
    pool = pool[splits[pool] == source_split]
    n_exact = int(round(n * exact_fraction))
    exact = set(rng.permutation(n)[:n_exact].tolist())
    counter = iter(range(n))

    def make(i: int) -> np.ndarray:
        return images[i].copy() if next(counter) in exact else light_copy(images[i], rng)

    return _add_copies("LEAK", images, labels, splits, rng, n, pool, make, lambda i: eval_split)


def flip_labels_uniform(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Flip the labels of ``n`` samples, each to a uniformly chosen *other* class (``LBL``)."""
    labels, splits = _check(images, labels, splits)
    classes = np.unique(labels)
    if n and len(classes) < 2:
        raise ValueError("LBL: need at least two classes")
    targets = _pick(_candidates(len(images), candidates), n, rng, "LBL")
    out = labels.copy()
    for i in targets:
        others = classes[classes != labels[i]]
        out[i] = str(rng.choice(others))
    gt = _rows("LBL", targets, [-1] * n, out[targets], labels[targets])
    return Contaminated(list(images), out, splits.copy(), gt)


def flip_labels_per_class(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    n_pairs: int = 3,
    candidates: np.ndarray | None = None,
) -> Contaminated:
    """Class-dependent flips (``LBLC``): ``n_pairs`` random source classes a each get a fixed
    target class b != a, and ``n`` samples of those source classes are relabelled a -> b.

    Concentrating the noise on a few pairs is what a systematic annotator confusion looks like,
    and it shows up as hot cells in a class-confusion table.
    """
    labels, splits = _check(images, labels, splits)
    classes = np.unique(labels)
    if n and len(classes) < 2:
        raise ValueError("LBLC: need at least two classes")
    pool = _candidates(len(images), candidates)
    n_pairs = max(1, min(n_pairs, len(classes)))
    sources = rng.choice(classes, size=n_pairs, replace=False)
    mapping = {str(a): str(rng.choice(classes[classes != a])) for a in sources}
    eligible = pool[np.isin(labels[pool], sources)]
    targets = _pick(eligible, n, rng, f"LBLC (source classes {sorted(mapping)})")
    out = labels.copy()
    for i in targets:
        out[i] = mapping[str(labels[i])]
    gt = _rows("LBLC", targets, [-1] * n, out[targets], labels[targets])
    return Contaminated(list(images), out, splits.copy(), gt)


def contaminate(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    rng: np.random.Generator,
    rates: ContaminationRates,
    *,
    off_topic_pool: Sequence[np.ndarray] = (),
    lblc_pairs: int = 3,
    aug_flip: bool = True,
    source_split: str = "train",
    eval_split: str = "test",
) -> Contaminated:
    """Apply every kind in ``rates`` without overlap.

    Each original sample is used at most once, as a target (BLUR, LBL, LBLC) or as a copy source
    (AUG, ARTE, LEAK): so a sample carries at most one injected issue, sources of copies keep their
    clean label, and every copy has exactly one clean partner. Appended samples (copies, XR) are
    never targets or sources. Counts are relative to ``len(images)``.
    """
    labels, splits = _check(images, labels, splits)
    counts = rates.counts(len(images))
    free = np.ones(len(images), dtype=bool)
    state = Contaminated(list(images), labels.copy(), splits.copy(), _rows("XR", [], [], [], []))
    parts: list[pd.DataFrame] = []

    def step(fn: Callable[..., Contaminated], n: int, **kw: object) -> None:
        nonlocal state
        if n == 0:
            return
        res = fn(state.images, state.labels, state.splits, rng, n, candidates=np.flatnonzero(free), **kw)
        gt = res.ground_truth
        # Mark originals touched either as the contaminated sample or as the copy source.
        for col in ("index", "partner_index"):
            used = gt[col].to_numpy()
            free[used[(used >= 0) & (used < len(free))]] = False
        parts.append(gt)
        state = res

    # Constrained kinds draw first so they are not starved by unconstrained ones.
    step(add_leakage, counts["LEAK"], exact_fraction=rates.leak_exact_fraction,
         source_split=source_split, eval_split=eval_split)
    step(flip_labels_per_class, counts["LBLC"], n_pairs=lblc_pairs)
    step(add_near_duplicates_aug, counts["AUG"], allow_flip=aug_flip)
    step(add_near_duplicates_arte, counts["ARTE"])
    step(replace_off_topic_blur, counts["BLUR"])
    step(flip_labels_uniform, counts["LBL"])
    if counts["XR"]:
        res = add_off_topic_xr(state.images, state.labels, state.splits, rng, counts["XR"], off_topic_pool)
        parts.append(res.ground_truth)
        state = res
    gt = pd.concat(parts, ignore_index=True) if parts else state.ground_truth
    state.ground_truth = gt.sort_values("index", kind="stable").reset_index(drop=True)
    return state
