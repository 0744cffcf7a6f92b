"""A matrix cell with many repeats added: does the near-duplicate ranking of the protocol's copies
hold when the data also holds exact or near-exact repeats of other images?

    python benchmarks/repeats_stress.py CELL_DIR OUT_DIR K [exact|jpeg]

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`, as for
`rescore_cell.py`). OUT_DIR becomes a copy of it (hard links) with K more images: byte-identical
copies (`exact`, the default) or JPEG re-encodes at quality 90 stored as PNG (`jpeg`: near-exact
pairs, not byte-identical) of K random images that the protocol did not touch, each in its source's
split and class. They are listed in OUT_DIR's `ground_truth.csv` as their own issue type, so the
matrix's metric leaves their pairs out (as it leaves out every other injected kind's) and the pair
AP reads only how the protocol's copies rank among everything else. Their SSL vectors: the source's
for an exact copy, the cell's own DINO model's for a re-encode. The cell is then scored once with
the service's code on its own checkpoint (`pair_fusion.capture_pairs`, the label-error pixel
classifier off: it does not touch the pairs) and the service's ranking is measured as
`pair_fusion.py` measures it. Compare with `pair_fusion.py CELL_DIR '{}'` on the cell itself.

Measured (docs/benchmarks/matrix.md "Update 2026-12-06 (3)" and "(4)"): MNIST s1, 300 exact copies,
pair AP 0.543 -> 0.376 while the exact matches took part in the views' p-values, 0.584 since; 300
JPEG re-encodes, 0.380 while the near-exact matches did, 0.595 since (0.556 without repeats).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402

KINDS = ("exact", "jpeg")


def add_repeats(cell: Path, out: Path, k: int, kind: str = "exact", seed: int = 1) -> int:
    """Write OUT: the cell plus `k` repeats of untouched images (see the module docstring); returns
    how many images the cell had."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    data, vectors = load_cell(cell)
    n, truth = data.n, data.truth
    touched = set(truth["index"]) | set(truth["partner_index"])
    untouched = np.array([i for i in range(n) if i not in touched])
    if k > untouched.size:
        raise ValueError(f"the cell has {untouched.size} untouched images, asked for {k} repeats")
    sources = np.sort(np.random.default_rng(seed).choice(untouched, k, replace=False))
    if out.exists():
        shutil.rmtree(out)
    for p in data.paths:
        target = out / "images" / p
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(data.image_dir / p, target)
    rows, written = [], []
    for q, s in enumerate(sources):
        split, label = data.paths[s].split("/")[:2]
        rel = f"{split}/{label}/img_{n + q:06d}.png"   # after the cell's images: their positions stay
        target = out / "images" / rel
        if kind == "exact":
            shutil.copyfile(data.image_dir / data.paths[s], target)
        else:
            buffer = io.BytesIO()
            Image.open(data.image_dir / data.paths[s]).save(buffer, format="JPEG", quality=90)
            Image.open(io.BytesIO(buffer.getvalue())).save(target)
        written.append(str(target))
        rows.append({"issue_type": f"repeat_{kind}", "kind": kind.upper(), "detail": kind.upper(), "index": n + q,
                     "partner_index": int(s), "given_label": label, "true_label": label, "path": rel,
                     "partner_path": data.paths[s]})
    pd.concat([truth, pd.DataFrame(rows)], ignore_index=True).to_csv(out / "ground_truth.csv", index=False)
    os.symlink((cell / "ssl_checkpoint.pt").resolve(), out / "ssl_checkpoint.pt")
    if kind == "exact":
        extra = vectors[sources]
    else:
        from quality_assets.embedders import SSLCheckpointEmbedder

        extra = SSLCheckpointEmbedder(cell / "ssl_checkpoint.pt").embed(written)
    np.save(out / "vectors.npy", np.vstack([vectors, extra]).astype(np.float32))
    return n


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    from quality_lab.source_duplicates import source_duplicates

    cell, out, k = Path(argv[0]), Path(argv[1]), int(argv[2])
    kind = argv[3] if len(argv) > 3 else "exact"
    n = add_repeats(cell, out, k, kind)
    pairs = capture_pairs(out)
    data, _ = load_cell(out)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    print(f"{out}: {n} images + {k} {kind} repeats, {len(pairs)} pairs; the service's ranking: "
          f"{ap_summary(pair_ap(pairs, data, excluded))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
