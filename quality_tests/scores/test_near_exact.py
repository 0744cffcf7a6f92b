"""Near-exact copies from the colour grids: a JPEG re-encoded copy is one, a recoloured variant and two
near-blank images with different small marks are not; the lower bound drops no pair the full
comparison keeps; and through the scoring, a JPEG leak of a clip-art drawing leads the leakage
ranking and is flagged where its recoloured variants are not."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from quality_assets.scores.near_exact import (
    COLOUR_GRID_SIZE, NEAR_EXACT_MAX_DIFF, check_colour_grids, compared_grids, crop_differences, grid_differences,
)

SIDE = 64


def drawing(seed: int, fill: tuple[int, int, int] | None = None) -> Image.Image:
    """Clip art: a few filled shapes with dark outlines on white, distinct per seed."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (SIDE, SIDE), "white")
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.integers(2, 34, size=2)
        x1, y1 = x0 + rng.integers(14, 28), y0 + rng.integers(14, 28)
        colour = fill or tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x0), int(y0), int(x1), int(y1)), fill=colour, outline=(20, 20, 20), width=2)
    return im


def jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def grid(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB").resize((COLOUR_GRID_SIZE, COLOUR_GRID_SIZE), Image.BOX))


def differences(*images: Image.Image) -> np.ndarray:
    """The difference of image 0 to each other image."""
    grids = np.stack([grid(im) for im in images])
    others = np.arange(1, len(images))
    return grid_differences(grids, None, np.zeros(others.size, np.int64), others)


def test_a_jpeg_copy_is_near_exact_and_a_recoloured_variant_is_not():
    original = drawing(1, fill=(200, 40, 40))
    d = differences(original, jpeg(original), jpeg(original, quality=50), drawing(1, fill=(40, 160, 40)),
                    drawing(2))
    assert np.isfinite(d[:2]).all() and (d[:2] <= NEAR_EXACT_MAX_DIFF).all()
    assert np.isnan(d[2:]).all()


def test_near_blank_images_with_different_small_marks_are_not_near_exact():
    def mark(x: int, y: int, colour) -> Image.Image:
        im = Image.new("RGB", (SIDE, SIDE), "white")
        ImageDraw.Draw(im).rectangle((x, y, x + 1, y), fill=colour)
        return im

    a, b = mark(10, 12, (230, 160, 60)), mark(44, 40, (220, 90, 90))
    # Every compared cell is close: the cell-wise limit alone would call them copies ...
    cells = compared_grids(np.stack([grid(a), grid(b)]))
    assert np.abs(cells[0] - cells[1]).max() / 255 <= NEAR_EXACT_MAX_DIFF
    # ... but they differ by as much as they vary at all.
    assert np.isnan(differences(a, b)).all()


def _reference(grids: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from quality_assets.scores.near_exact import NEAR_EXACT_MAX_RELATIVE

    cells = compared_grids(grids).astype(np.float64)
    x = cells[i].reshape(i.size, -1)
    y = cells[j].reshape(j.size, -1)
    full = np.abs(x - y).max(axis=1) / 255
    rel = np.sqrt(((x - y) ** 2).mean(axis=1)) / np.maximum(np.sqrt((x.var(axis=1) + y.var(axis=1)) / 2), 1e-6)
    return np.where((full <= NEAR_EXACT_MAX_DIFF + 1e-9) & (rel <= NEAR_EXACT_MAX_RELATIVE + 1e-6), full, np.nan)


def test_the_lower_bound_drops_no_pair_the_full_comparison_keeps():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(40, COLOUR_GRID_SIZE, COLOUR_GRID_SIZE, 3))
    # Copies with noise of every size around the limit, and unrelated grids.
    noise = rng.integers(-45, 46, size=base.shape) * (rng.random((40, 1, 1, 1)) ** 2)
    grids = np.clip(np.concatenate([base, base + noise]), 0, 255).astype(np.uint8)
    i, j = np.triu_indices(len(grids), k=1)
    got = grid_differences(grids, None, i, j)
    want = _reference(grids, i, j)
    assert np.isfinite(want).sum() >= 10 and np.isnan(want).sum() > 0
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=1e-6)


def test_the_measures_come_from_the_given_function_for_the_pairs_within_the_bound_only():
    from quality_assets.scores.near_exact import grid_measures
    from quality_assets.scores.pixel_copies import VerifiedPairMemo

    rng = np.random.default_rng(1)
    # Pictures of large blocks (unrelated ones differ at the coarse bound's scale), then copies with noise.
    blocks = rng.integers(0, 256, size=(30, 4, 4, 3))
    base = np.repeat(np.repeat(blocks, COLOUR_GRID_SIZE // 4, axis=1), COLOUR_GRID_SIZE // 4, axis=2)
    noise = rng.integers(-30, 31, size=base.shape) * (rng.random((30, 1, 1, 1)) ** 2)
    grids = np.clip(np.concatenate([base, base + noise]), 0, 255).astype(np.uint8)
    i, j = np.triu_indices(len(grids), k=1)
    asked = []

    def counted(a, b):
        asked.append(a.size)
        return grid_measures(grids, a, b)

    plain = grid_differences(grids, None, i, j)
    np.testing.assert_array_equal(grid_differences(grids, None, i, j, measures=counted), plain)
    # The coarse bound leaves the measures only the pairs that could be near-exact: the copies and few else.
    assert 10 <= np.isfinite(plain).sum() <= asked[0] < i.size // 10
    # Through the verdict memo, as the service asks: a later run measures nothing it already has.
    ids = np.asarray([f"s{k:03d}" for k in range(len(grids))], dtype=object)
    memo = VerifiedPairMemo(ids)
    remembered = lambda a, b: memo.remembered(("grid_difference", "grid_relative"), a, b, counted)  # noqa: E731
    np.testing.assert_array_equal(grid_differences(grids, None, i, j, measures=remembered), plain)
    later = VerifiedPairMemo(ids, memo.new_rows())
    again = lambda a, b: later.remembered(("grid_difference", "grid_relative"), a, b, counted)  # noqa: E731
    np.testing.assert_array_equal(grid_differences(grids, None, j, i, measures=again), plain)
    assert len(asked) == 2 and sum(later.n_measured.values()) == 0


def test_unknown_grids_and_bad_shapes():
    grids = np.stack([grid(drawing(3)), grid(jpeg(drawing(3)))])
    assert np.isfinite(grid_differences(grids, np.array([True, True]), [0], [1])).all()
    assert np.isnan(grid_differences(grids, np.array([True, False]), [0], [1])).all()
    with pytest.raises(ValueError, match="uint8"):
        check_colour_grids(grids.astype(np.float32), 2)
    with pytest.raises(ValueError, match=r"\[2, G, G, 3\]"):
        check_colour_grids(grids[..., :1], 2)


def _clip_art_leaks(tmp_path):
    """Clip-art drawings on disk, scored as the service scores them (ingest statistics, thumbnails,
    colour grids): 60 train drawings; in test, a JPEG copy (quality 40) of train drawing 7, a light crop
    (90% of the area) of train drawing 15, and train drawings 3, 11, 19, 27 and 35 with a dark 2 x 2 px
    mark added (other pictures, nearly the same pixels)."""
    from quality_assets.imaging import inspect_image
    from quality_assets.knn import build_knn_graph
    from quality_assets.pixel_view import search_vectors
    from quality_assets.scoring import ScoreConfig, compute_scores
    from quality_lab.bench.data import BenchData
    from quality_lab.bench.methods import colour_grids_for, thumbnails_for

    images = [drawing(100 + seed) for seed in range(60)]
    splits = ["train"] * 60
    images.append(jpeg(images[7], quality=40))
    splits.append("test")
    images.append(light_crop(images[15], 0.9, (0.3, 0.8)))
    splits.append("test")
    for s in (3, 11, 19, 27, 35):
        marked = images[s].copy()
        ImageDraw.Draw(marked).rectangle((48, 4, 49, 5), fill=(10, 10, 10))
        images.append(marked)
        splits.append("test")
    paths = []
    for k, (im, split) in enumerate(zip(images, splits)):
        rel = f"{split}/shapes/img_{k:06d}.png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(tmp_path / rel)
        paths.append(rel)
    manifest = pd.DataFrame.from_records([inspect_image(tmp_path / p) for p in paths])
    for at, (column, values) in enumerate((("sample_id", paths), ("path", paths), ("label", "shapes"),
                                           ("split", splits))):
        manifest.insert(at, column, values)
    manifest["phash"] = manifest["phash"].astype(np.int64)
    data = BenchData("clip", tmp_path, tmp_path, np.asarray(paths, dtype=object),
                     [np.asarray(im) for im in images], manifest["label"].to_numpy(), np.asarray(splits),
                     pd.DataFrame(), manifest)
    thumbs = thumbnails_for(data)
    vectors = search_vectors(thumbs, size=8)
    graph = build_knn_graph(np.ascontiguousarray(vectors, dtype=np.float32), k=8)

    def leakage(colour_grids, config=None, pair_verifier=None):
        out = compute_scores(paths, graph, manifest, ScoreConfig(config or {}), vectors=vectors, thumbnails=thumbs,
                             colour_grids=colour_grids, pair_verifier=pair_verifier)
        rows = out.issue_rows[out.issue_rows.issue_type == "leakage"].sort_values("rank")
        return rows.reset_index(drop=True), out.pair_rows

    return paths, leakage, colour_grids_for(data)


def test_a_jpeg_leak_of_clip_art_leads_the_leakage_ranking_with_the_colour_grids(tmp_path):
    paths, leakage, grids = _clip_art_leaks(tmp_path)
    leak_id, source_id = paths[60], paths[7]
    rows, pairs = leakage(grids)
    assert list(rows.sample_id[:1]) == [leak_id] and rows.partner_id.iloc[0] == source_id
    leak_pair = pairs[(pairs.sample_a == source_id) & (pairs.sample_b == leak_id)]
    assert "near_exact" in str(leak_pair.evidence.iloc[0])
    # The marked drawings are other pictures: no near-exact evidence, ranked after the leak.
    assert not pairs.evidence.astype(str).str.contains("near_exact").drop(leak_pair.index).any()
    # Without the grids nothing tells the leak from the marked drawings (pixel-perfect but for the
    # mark): no pair has near-exact evidence, and where the leak lands among them is a tie's order.
    marked_ids = paths[-5:]
    rows_grey, pairs_grey = leakage(None)
    assert not pairs_grey.evidence.astype(str).str.contains("near_exact").any()
    assert set(rows_grey.sample_id[:6]) == {leak_id, *marked_ids}


def test_a_later_run_reads_the_grid_and_crop_measures_back_and_scores_the_same(tmp_path):
    from quality_assets.scores.pixel_copies import VerifiedPairMemo

    paths, leakage, grids = _clip_art_leaks(tmp_path)
    rows, pairs = leakage(grids)
    first = VerifiedPairMemo(paths)
    rows_memo, pairs_memo = leakage(grids, pair_verifier=first)
    # (The memo verifies each pair in sample-id order, which moves the aligned verifier's float sums
    # a little against plain `verify_pairs`: ties deep in the pair list may swap; the leaks lead both.)
    assert list(rows_memo.sample_id[:2]) == list(rows.sample_id[:2]) == [paths[60], paths[61]]
    # Every kept measure was taken, the near-exact check's and leakage's crop search's included.
    assert set(first.n_measured) == {("crop_distance", "whole_distance"), ("crop_difference",),
                                     ("grid_difference", "grid_relative")}
    assert all(count > 0 for count in first.n_measured.values())
    later = VerifiedPairMemo(paths, first.new_rows())
    rows_later, pairs_later = leakage(grids, pair_verifier=later)
    pd.testing.assert_frame_equal(rows_later, rows_memo)
    pd.testing.assert_frame_equal(pairs_later, pairs_memo)
    assert sum(later.n_measured.values()) == 0 and later.n_verified == 0 and later.new_rows().empty


def test_a_lightly_cropped_leak_ranks_right_after_the_near_exact_one(tmp_path):
    paths, leakage, grids = _clip_art_leaks(tmp_path)
    crop_id, source_id = paths[61], paths[15]
    rows, _ = leakage(grids)
    assert list(rows.sample_id[:2]) == [paths[60], crop_id] and rows.partner_id.iloc[1] == source_id
    rows_off, _ = leakage(grids, {"leakage": {"crop_partners": 0}})
    assert rows_off.index[rows_off.sample_id == crop_id][0] > 1


def light_crop(im: Image.Image, area: float, corner: tuple[float, float]) -> Image.Image:
    """The protocol's LEAK-crop: a box of `area` of the picture, at `corner` (0..1 of the free room),
    resized back to the picture's size."""
    side = np.sqrt(area) * SIDE
    x0, y0 = corner[0] * (SIDE - side), corner[1] * (SIDE - side)
    return im.resize((SIDE, SIDE), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))


def test_a_lightly_cropped_copy_is_found_by_the_crop_search_and_other_pictures_are_not():
    originals = [drawing(seed) for seed in (21, 22, 23, 24)]
    crops = [light_crop(originals[0], 0.9, (0.2, 0.7)), light_crop(jpeg(originals[1]), 0.86, (1.0, 0.0)),
             light_crop(originals[2], 0.94, (0.5, 0.5))]
    others = [drawing(25), drawing(21, fill=(30, 200, 90))]     # another drawing; the first recoloured
    grids = np.stack([grid(im) for im in originals + crops + others])
    source = np.array([0, 1, 2, 0, 0, 3])
    copy = np.array([4, 5, 6, 7, 8, 4])
    d = crop_differences(grids, None, source, copy)
    assert np.isfinite(d[:3]).all(), d                      # the three crops
    assert np.isnan(d[3:]).all(), d                         # other pictures, a crop of another source
    # The crops moved every cell: the plain comparison does not see them.
    assert np.isnan(grid_differences(grids, None, source[:3], copy[:3])).all()
    assert np.isnan(crop_differences(grids, np.array([True] * 4 + [False] * 5), source[:1], copy[:1])).all()
