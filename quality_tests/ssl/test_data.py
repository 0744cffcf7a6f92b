"""`ssl.data.decode_views` on photographs: large JPEGs decode drafted (at a reduced scale inside the
DCT) to the pixels a whole decode gives, turned by their EXIF tag; other files decode whole. Real JPEG
and PNG files made from scikit-learn's shipped sample pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from quality_assets.scores.near_exact import NEAR_EXACT_MAX_DIFF, NEAR_EXACT_MAX_RELATIVE, grid_measures
from quality_assets.ssl.data import DRAFT_MARGIN, decode_views

# What an audit on a CPU asks for: the SSL model's images, then the thumbnails with the colour grid.
SSL_VIEWS = [(64, 3, Image.BILINEAR)]
THUMBNAIL_VIEWS = [(28, 1, Image.BILINEAR), (32, 3, Image.BOX)]


def _photo(size: tuple[int, int], picture: str = "china.jpg") -> Image.Image:
    return Image.fromarray(load_sample_image(picture)[:380, :560]).resize(size, Image.BICUBIC)


def _whole(path: Path, views) -> list[np.ndarray]:
    """The views from every pixel decoded (no draft), EXIF turn applied."""
    from PIL import ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        out = []
        for size, channels, resample in views:
            view = (im.convert("L") if channels == 1 else im).resize((size, size), resample, reducing_gap=None)
            arr = np.asarray(view)
            out.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
        return out


@pytest.mark.parametrize("views", [SSL_VIEWS, THUMBNAIL_VIEWS], ids=["ssl", "thumbnails"])
def test_a_large_jpeg_decodes_drafted_to_the_pixels_of_a_whole_decode(tmp_path, views):
    path = tmp_path / "photo.jpg"
    _photo((3200, 2400)).save(path, quality=90)
    drafted, whole = decode_views(path, views), _whole(path, views)
    for d, w in zip(drafted, whole):
        assert d.shape == w.shape and d.dtype == np.uint8
        difference = np.abs(d.astype(int) - w)
        # Drafted: not the whole decode's bytes (the reduced-scale decode left its trace) ...
        assert difference.max() > 0
        # ... but within a grey level of them on average (measured 0.06-0.63 here).
        assert difference.mean() < 1.0


def test_a_small_jpeg_and_a_png_decode_whole(tmp_path):
    small = tmp_path / "small.jpg"     # under DRAFT_MARGIN times the largest view: no draft
    _photo((DRAFT_MARGIN * 64 - 8, DRAFT_MARGIN * 64 - 8)).save(small, quality=90)
    png = tmp_path / "large.png"        # PNG has no reduced-scale decode
    _photo((1600, 1200)).save(png)
    for path in (small, png):
        for d, w in zip(decode_views(path, SSL_VIEWS + THUMBNAIL_VIEWS), _whole(path, SSL_VIEWS + THUMBNAIL_VIEWS)):
            np.testing.assert_array_equal(d, w)


# Drafted to 1/2, 1/4 and 1/8 of the frame for the thumbnails (at least 8 x 32 px = 256 px a side).
@pytest.mark.parametrize("size", [(600, 520), (1200, 1040), (2100, 2060)])
def test_a_jpeg_copy_of_a_large_png_stays_a_near_exact_copy(tmp_path, size):
    """The near-exact tier judges a re-encoded copy on the colour grids: the drafted JPEG must stay near
    its (whole-decoded) PNG source, well inside the tier's limits."""
    measures = []
    for picture in ("china.jpg", "flower.jpg"):
        photo = _photo(size, picture)
        photo.save(tmp_path / "source.png", compress_level=1)
        photo.save(tmp_path / "copy.jpg", quality=75)
        grids = np.stack([decode_views(tmp_path / name, THUMBNAIL_VIEWS)[1].transpose(1, 2, 0)
                          for name in ("source.png", "copy.jpg")])
        largest, relative = grid_measures(grids, np.array([0]), np.array([1]))
        measures.append((largest[0], relative[0]))
    # Measured at most 0.043 / 0.023 (2100 px: the 1/8 draft lands just above 256 px); drafted to 2
    # times the views, 300 px pictures read 0.089 / 0.050 (docs/BENCHMARKS.md, "Decoding photographs").
    assert max(m[0] for m in measures) < NEAR_EXACT_MAX_DIFF / 2
    assert max(m[1] for m in measures) < NEAR_EXACT_MAX_RELATIVE / 2


def test_a_turned_large_jpeg_decodes_upright(tmp_path):
    photo = _photo((3200, 2400))
    exif = Image.Exif()
    exif[0x0112] = 6  # display turned 90 degrees clockwise
    turned = tmp_path / "turned.jpg"
    photo.save(turned, quality=90, exif=exif)
    upright = tmp_path / "upright.jpg"
    photo.transpose(Image.Transpose.ROTATE_270).save(upright, quality=90)
    drafted = decode_views(turned, SSL_VIEWS)[0].astype(int)
    assert np.abs(drafted - _whole(upright, SSL_VIEWS)[0]).mean() < 1.0
    # The turn matters: the same pixels unturned are far off.
    assert np.abs(drafted - decode_views(upright, SSL_VIEWS)[0].transpose(0, 2, 1)).mean() > 10.0
