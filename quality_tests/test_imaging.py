"""inspect_image on real files: hashes, properties, and every way a file gets rejected."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from quality_assets.imaging import (
    INSPECT_KEYS,
    ImageRejected,
    hamming_distance,
    hamming_distances,
    inspect_image,
)
from quality_tests.imagefolders import (
    blurred_copy,
    distinct_image,
    write_corrupt_png,
    write_image,
    write_png,
    write_png_bomb,
    write_text_as_image,
    write_truncated,
    write_zero_byte,
)


def _reason(path: Path, **limits: int) -> str:
    with pytest.raises(ImageRejected) as caught:
        inspect_image(path, **limits)
    assert caught.value.detail, "a rejection must say why"
    return caught.value.reason


def _noise(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def test_good_png_has_exactly_the_documented_keys_and_types(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", seed=1, size=(40, 20))
    info = inspect_image(path)

    assert tuple(info) == INSPECT_KEYS
    assert info["bytes"] == path.stat().st_size
    assert (info["width"], info["height"]) == (40, 20)
    assert info["aspect_ratio"] == pytest.approx(2.0)
    assert info["mode"] == "RGB"
    assert len(info["file_sha256"]) == 64 and len(info["pixel_sha256"]) == 64
    int(info["file_sha256"], 16), int(info["pixel_sha256"], 16)
    for key in ("brightness_p05", "brightness_p50", "brightness_p95", "edge_strength"):
        assert 0.0 <= info[key] <= 1.0, key
    assert info["brightness_p05"] <= info["brightness_p50"] <= info["brightness_p95"]
    assert 0.0 < info["entropy"] <= 8.0
    for key in ("phash", "dhash"):
        assert isinstance(info[key], int) and -(2**63) <= info[key] < 2**63
    assert info["is_grayscale"] is False


def test_pixel_hash_matches_across_lossless_reencodes_file_hash_does_not(tmp_path: Path) -> None:
    pixels = distinct_image(7, (30, 24))
    png = inspect_image(write_image(tmp_path / "a.png", pixels, "PNG"))
    bmp = inspect_image(write_image(tmp_path / "a.bmp", pixels, "BMP"))
    tiff = inspect_image(write_image(tmp_path / "a.tif", pixels, "TIFF"))
    other = inspect_image(write_image(tmp_path / "b.png", distinct_image(8, (30, 24)), "PNG"))

    assert png["pixel_sha256"] == bmp["pixel_sha256"] == tiff["pixel_sha256"]
    assert len({png["file_sha256"], bmp["file_sha256"], tiff["file_sha256"]}) == 3
    assert png["phash"] == bmp["phash"]
    assert other["pixel_sha256"] != png["pixel_sha256"]


def test_pixel_hash_ignores_storage_mode_but_not_real_transparency(tmp_path: Path) -> None:
    gray = distinct_image(3, (16, 16), gray=True)
    as_l = inspect_image(write_image(tmp_path / "l.png", gray, "PNG"))
    as_rgb = inspect_image(write_image(tmp_path / "rgb.png", np.stack([gray] * 3, -1), "PNG"))
    assert (as_l["mode"], as_rgb["mode"]) == ("L", "RGB")
    assert as_l["pixel_sha256"] == as_rgb["pixel_sha256"]
    assert as_l["is_grayscale"] and as_rgb["is_grayscale"]

    rgb = distinct_image(4, (16, 16))
    opaque = np.dstack([rgb, np.full((16, 16), 255, np.uint8)])
    holed = opaque.copy()
    holed[0, 0, 3] = 0
    plain = inspect_image(write_image(tmp_path / "plain.png", rgb, "PNG"))
    assert inspect_image(write_image(tmp_path / "opaque.png", opaque, "PNG"))["pixel_sha256"] == plain["pixel_sha256"]
    assert inspect_image(write_image(tmp_path / "holed.png", holed, "PNG"))["pixel_sha256"] != plain["pixel_sha256"]


def test_phash_close_for_blurred_copy_and_far_for_unrelated_image(tmp_path: Path) -> None:
    for seed in range(4):
        source = write_png(tmp_path / f"s{seed}.png", seed, (64, 64))
        copy = blurred_copy(source, tmp_path / f"blur{seed}.png", radius=1.0)
        unrelated = write_png(tmp_path / f"u{seed}.png", seed + 500, (64, 64))
        a, b, c = (inspect_image(p) for p in (source, copy, unrelated))
        assert hamming_distance(a["phash"], b["phash"]) <= 6
        assert hamming_distance(a["dhash"], b["dhash"]) <= 8
        assert hamming_distance(a["phash"], c["phash"]) >= 16


def test_brightness_separates_dark_and_light_images(tmp_path: Path) -> None:
    base = distinct_image(5, (32, 32)).astype(np.float32)
    dark = inspect_image(write_image(tmp_path / "dark.png", (base * 0.08).astype(np.uint8), "PNG"))
    light = inspect_image(write_image(tmp_path / "light.png", (235 + base * 0.07).astype(np.uint8), "PNG"))
    assert dark["brightness_p95"] < 0.1
    assert light["brightness_p05"] > 0.9


def test_blur_edges_and_entropy_respond_to_content(tmp_path: Path) -> None:
    sharp_path = write_image(tmp_path / "sharp.png", _noise(1), "PNG")
    with Image.open(sharp_path) as sharp_image:
        blurred = np.asarray(sharp_image.filter(ImageFilter.GaussianBlur(2)))
    sharp = inspect_image(sharp_path)
    soft = inspect_image(write_image(tmp_path / "soft.png", blurred, "PNG"))
    flat = inspect_image(write_image(tmp_path / "flat.png", np.full((32, 32, 3), 128, np.uint8), "PNG"))

    assert soft["blur_score"] < sharp["blur_score"] / 10
    assert soft["edge_strength"] < sharp["edge_strength"] / 2
    assert flat["blur_score"] == 0.0 and flat["edge_strength"] == 0.0
    assert flat["entropy"] == 0.0
    assert sharp["entropy"] > 7.0


def test_blur_score_is_comparable_across_image_sizes(tmp_path: Path) -> None:
    # The same scene at 1024 px and at 256 px: properties come from a <=256 px copy.
    large = inspect_image(write_image(tmp_path / "large.png", distinct_image(5, (1024, 768)), "PNG"))
    small = inspect_image(write_image(tmp_path / "small.png", distinct_image(5, (256, 192)), "PNG"))
    assert (large["width"], large["height"]) == (1024, 768)
    assert large["blur_score"] == pytest.approx(small["blur_score"], rel=0.5)
    assert large["edge_strength"] == pytest.approx(small["edge_strength"], rel=0.2)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = distinct_image(9, (40, 20))  # 40 wide, 20 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    rotated_path = tmp_path / "rotated.png"
    Image.fromarray(pixels).save(rotated_path, format="PNG", exif=exif)
    upright = np.asarray(Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270))

    info = inspect_image(rotated_path)
    assert (info["width"], info["height"]) == (20, 40)
    assert info["pixel_sha256"] == inspect_image(write_image(tmp_path / "upright.png", upright, "PNG"))["pixel_sha256"]


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = (distinct_image(2, (16, 16), gray=True).astype(np.uint16) * 257)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path, format="PNG")
    info = inspect_image(path)
    assert info["mode"].startswith("I")
    assert info["is_grayscale"]
    assert 0.05 < info["brightness_p50"] < 0.95


@pytest.mark.parametrize(
    ("writer", "reason"),
    [
        (write_zero_byte, "empty_file"),
        (write_text_as_image, "not_an_image"),
        (write_corrupt_png, "corrupt"),
        (lambda p: write_truncated(p, "PNG"), "truncated"),
        (lambda p: write_truncated(p, "JPEG"), "truncated"),
        (write_png_bomb, "decompression_bomb"),
    ],
    ids=["zero-byte", "text-named-png", "corrupt", "truncated-png", "truncated-jpeg", "bomb-header"],
)
def test_bad_files_are_rejected_with_their_reason(tmp_path: Path, writer, reason: str) -> None:
    path = tmp_path / "bad.png"
    writer(path)
    assert _reason(path) == reason


@pytest.mark.parametrize(("name", "content", "says"), [
    ("phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIF/HEIC or AVIF"),
    ("icon.avif", b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + bytes(64), "HEIF/HEIC or AVIF"),
    ("logo.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>', "SVG"),
    ("scan.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64), "JPEG 2000"),
    ("notes.png", b"just some text", "not a recognised raster image format (read here: PNG, JPEG"),
])
def test_a_format_no_decoder_here_reads_is_rejected_saying_what_it_is(tmp_path: Path, name, content, says) -> None:
    """Phone photos (HEIC), vector art and JPEG 2000 scans are images to their owner: the rejection
    names the format and what to convert it to, not just "not an image"."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageRejected) as caught:
        inspect_image(path)
    assert caught.value.reason == "not_an_image" and says in caught.value.detail


def test_png_missing_its_end_chunk_is_truncated(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(distinct_image(1, (32, 32))).save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:-12])  # drop exactly the IEND chunk
    assert _reason(path) == "truncated"


def test_moderate_bomb_under_pil_limit_is_rejected_by_our_limit(tmp_path: Path) -> None:
    # 48 Mpx: over the default 40 Mpx limit but below PIL's own warning threshold (~89 Mpx),
    # so only our max_pixels stops it.
    assert _reason(write_png_bomb(tmp_path / "bomb.png", 8000, 6000)) == "decompression_bomb"
    assert _reason(write_png(tmp_path / "real.png", 1, (64, 64)), max_pixels=1000) == "decompression_bomb"


def test_pil_warning_range_bomb_is_rejected_even_with_high_limit(tmp_path: Path) -> None:
    # 100 Mpx: PIL only warns here; the warning must still become a rejection.
    path = write_png_bomb(tmp_path / "bomb.png", 10_000, 10_000)
    assert _reason(path, max_pixels=10**12) == "decompression_bomb"


def test_file_over_byte_limit_is_rejected_before_decoding(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", 1, (64, 64))
    assert _reason(path, max_bytes=100) == "file_too_large"
    assert inspect_image(path, max_bytes=path.stat().st_size)["bytes"] == path.stat().st_size


def test_missing_path_and_directory_are_rejected(tmp_path: Path) -> None:
    assert _reason(tmp_path / "nope.png") == "missing_file"
    (tmp_path / "dir.png").mkdir()
    assert _reason(tmp_path / "dir.png") == "not_a_file"


def test_image_rejected_survives_pickling_for_process_pools() -> None:
    clone = pickle.loads(pickle.dumps(ImageRejected("corrupt", "bad zlib stream")))
    assert (clone.reason, clone.detail) == ("corrupt", "bad zlib stream")
    assert str(clone) == "corrupt: bad zlib stream"


def test_hamming_distance_on_signed_hashes() -> None:
    assert hamming_distance(0, 0) == 0
    assert hamming_distance(-1, 0) == 64
    assert hamming_distance(1, 3) == 1
    assert hamming_distance(-(2**63), 2**63 - 1) == 64
    assert hamming_distance(-(2**63), 0) == 1


def test_hamming_distances_matches_scalar_version_and_broadcasts() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(-(2**63), 2**63 - 1, size=200, dtype=np.int64)
    b = rng.integers(-(2**63), 2**63 - 1, size=200, dtype=np.int64)
    vectorised = hamming_distances(a, b)
    assert vectorised.dtype == np.int64
    assert vectorised.tolist() == [hamming_distance(int(x), int(y)) for x, y in zip(a, b)]

    matrix = hamming_distances(a[:5, None], a[None, :7])
    assert matrix.shape == (5, 7)
    assert (np.diag(matrix[:, :5]) == 0).all()
    assert matrix[2, 6] == hamming_distance(int(a[2]), int(a[6]))


# --- One normalisation for the statistics, the model input and the thumbnails, per storage mode ---

_RAMP = np.tile(np.arange(32, dtype=np.float64) / 31.0, (32, 1))  # 0..1 left to right
_RAMP8 = np.round(_RAMP * 255).astype(np.uint8)
_HALF_TRANSPARENT = np.repeat(np.array([255, 0] * 16, dtype=np.uint8)[:, None], 32, axis=1)


def _sixteen_bit(path: Path) -> np.ndarray:
    Image.fromarray(np.round(_RAMP * 65535).astype(np.uint16)).save(path.with_suffix(".png"))
    return _RAMP8


def _float32(path: Path) -> np.ndarray:
    Image.fromarray(_RAMP.astype(np.float32), mode="F").save(path.with_suffix(".tif"))
    return _RAMP8


def _palette(path: Path) -> np.ndarray:
    Image.fromarray(_RAMP8).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE).save(
        path.with_suffix(".png"))
    return _RAMP8


def _cmyk(path: Path) -> np.ndarray:
    Image.fromarray(_RAMP8).convert("RGB").convert("CMYK").save(path.with_suffix(".tif"))
    return _RAMP8


def _gray_alpha(path: Path) -> np.ndarray:
    Image.merge("LA", [Image.fromarray(_RAMP8), Image.fromarray(_HALF_TRANSPARENT)]).save(
        path.with_suffix(".png"))
    return np.where(_HALF_TRANSPARENT == 255, _RAMP8, 0).astype(np.uint8)  # on black


def _one_bit(path: Path) -> np.ndarray:
    Image.fromarray(_RAMP > 0.5).convert("1").save(path.with_suffix(".png"))
    return np.where(_RAMP > 0.5, 255, 0).astype(np.uint8)


def _histogram_percentiles(gray: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    return np.searchsorted(cdf, np.array([0.05, 0.5, 0.95]) * gray.size) / 255.0


@pytest.mark.parametrize(
    ("write", "stored_mode"),
    [(_sixteen_bit, "I"), (_float32, "F"), (_palette, "P"), (_cmyk, "CMYK"), (_gray_alpha, "LA"),
     (_one_bit, "1")],
    ids=["16-bit", "float", "palette", "cmyk", "gray+alpha", "1-bit"],
)
def test_every_storage_mode_reaches_model_thumbnails_and_statistics_as_the_same_pixels(
    tmp_path: Path, write, stored_mode: str
) -> None:
    from quality_assets.ssl.data import _decode

    expected = write(tmp_path / "image")
    path = next(tmp_path.iterdir())
    info = inspect_image(path)
    assert info["mode"].startswith(stored_mode)

    model_input = _decode(path, 32, 3)
    thumbnail = _decode(path, 32, 1)[0]
    for channel in model_input:
        assert np.abs(channel.astype(int) - expected).max() <= 1
    assert np.abs(thumbnail.astype(int) - expected).max() <= 1
    assert info["is_grayscale"]
    np.testing.assert_allclose(
        [info["brightness_p05"], info["brightness_p50"], info["brightness_p95"]],
        _histogram_percentiles(expected), atol=1.5 / 255)
    # From open binary files (the verified-bytes path) the pixels are the same.
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(_decode(io.BytesIO(handle.read()), 32, 3), model_input)


def test_hue_histogram_keeps_hues_under_flips_and_crops_and_moves_with_recolouring():
    from quality_assets.imaging import HUE_BINS, hue_histogram

    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 255, dtype=np.uint8)
    image[10:40, 10:50] = (220, 30, 30)                      # a red block
    image[45:60, 20:30] = (30, 30, 220)                      # a blue one
    noise = rng.integers(-3, 4, image.shape)
    hist = np.asarray(hue_histogram(image))
    assert hist.size == HUE_BINS + 1 and hist.sum() == pytest.approx(1.0, abs=1e-3)
    assert hist[0] == pytest.approx(1.0 - (30 * 40 + 15 * 10) / 64 ** 2, abs=1e-3)
    flipped_crop = np.clip(image[::-1, 5:60].astype(int) + noise[::-1, 5:60], 0, 255)
    moved = np.asarray(hue_histogram(flipped_crop))
    coloured = lambda h: h[1:] / h[1:].sum()  # noqa: E731
    assert 0.5 * np.abs(coloured(hist) - coloured(moved)).sum() < 0.05
    recoloured = image.copy()
    recoloured[10:40, 10:50] = (30, 200, 30)                 # the red block turned green
    assert 0.5 * np.abs(coloured(hist) - coloured(np.asarray(hue_histogram(recoloured)))).sum() > 0.5
    gray = np.repeat(image.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert hue_histogram(gray)[0] == 1.0
