"""The score run's image loader for the pixel classifier (`score_run._image_loader`): rows by
position from each sample's data root, the same whether the set is kept in memory or read per
request, and a clear error naming the option when a file has gone."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from quality_assets import score_run


def _manifest(root, n=6):
    rows = []
    for i in range(n):
        path = f"train/c{i % 2}/img_{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 24, 3), 40 * i, dtype=np.uint8)).save(root / path)
        rows.append({"sample_id": f"s{i}", "data_root": str(root), "path": path, "width": 24, "height": 20})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_loader_returns_the_rows_asked_for(tmp_path, monkeypatch, in_memory):
    if not in_memory:
        monkeypatch.setattr(score_run, "_IMAGES_IN_MEMORY", 0)
    load = score_run._image_loader(_manifest(tmp_path))
    out = load(np.array([4, 1, 4]))
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8   # 24 px clipped up to the CNN's 32
    assert list(out[:, 0, 0, 0]) == [160, 40, 160]


@pytest.mark.parametrize("damage", ["gone", "corrupt", "truncated"])
def test_a_file_gone_or_damaged_since_ingest_is_a_clear_error(tmp_path, damage):
    manifest = _manifest(tmp_path)
    path = tmp_path / manifest.path[3]
    if damage == "gone":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"not an image at all")
    else:
        path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="label_error.pixel_classifier, near_duplicate.copy_descriptor\\) need every image"):
        score_run._image_loader(manifest)(np.arange(6))
