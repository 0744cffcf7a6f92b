"""Diagnosis: how much of a matrix cell's near-duplicate and leakage AP is lost to the source's own
near duplicates. The protocol's ground truth lists only the copies it injected, so every pair of the
source that is itself a near duplicate, ranked above a true copy, counts as a false positive, and so
does every eval image whose source duplicate landed in train (a real leak the truth does not list).

Source near duplicates: pairs of images the protocol did not inject whose 32 x 32 grey thumbnails
differ by at most RMS T (default 0.03 of the grey range) under the best of the 8 dihedral
transforms, computed over every pair, independently of every detector. Prints their count, the
service's near-duplicate pair AP and leakage AP as the protocol counts them, and the same APs with
those pairs, and the eval images with a source duplicate in train, left out of the rankings
(neither hits nor misses).

    .venv/bin/python benchmarks/diagnose_source_duplicates.py CELL/contaminated [T]

CELL is a matrix cell kept with `--keep-images` (read as `benchmarks/rescore_cell.py` reads it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import load_cell  # noqa: E402

from quality_lab.bench.methods import selfclean_rankings, thumbnails_for  # noqa: E402
from quality_lab.bench.metrics import ranking_metrics  # noqa: E402


def dihedral_rms(images: list[np.ndarray], side: int = 32) -> np.ndarray:
    """[n, n] RMS difference of the grey thumbnails under the best of the 8 dihedral transforms."""
    thumbs = np.stack([np.asarray(Image.fromarray(np.asarray(im)).convert("L").resize((side, side), Image.BILINEAR),
                                  np.float32) / 255.0 for im in images])
    base = thumbs.reshape(len(images), -1)
    norms = (base ** 2).sum(1)
    best = np.full((len(images), len(images)), np.inf, np.float32)
    for k in range(8):
        moved = np.rot90(thumbs, k % 4, axes=(1, 2))
        moved = (moved[:, :, ::-1] if k >= 4 else moved).reshape(len(images), -1)
        squared = norms[:, None] + (moved ** 2).sum(1)[None, :] - 2 * base @ moved.T
        best = np.minimum(best, np.sqrt(np.maximum(squared, 0) / base.shape[1]))
    return best


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    root, threshold = Path(argv[0]), float(argv[1]) if len(argv) > 1 else 0.03
    data, vectors = load_cell(root)
    n, truth = data.n, data.truth
    injected = np.zeros(n, bool)
    injected[truth["index"]] = True
    injected[truth.loc[truth.partner_index >= 0, "partner_index"]] = True
    upper = np.triu_indices(n, 1)
    rms = dihedral_rms(data.images)
    source = (rms[upper] <= threshold) & ~injected[upper[0]] & ~injected[upper[1]]
    source_keys = upper[0][source] * n + upper[1][source]
    in_pairs = np.union1d(upper[0][source], upper[1][source]).size
    print(f"{root.parent.name}: {source_keys.size} source near-duplicate pairs at RMS <= {threshold} "
          f"({in_pairs} of {int((~injected).sum())} source images)")
    rankings, _, _ = selfclean_rankings(vectors, data.manifest, k=16, thumbnails=thumbnails_for(data))
    a, b = (np.asarray(x) for x in rankings["near_duplicate"])
    copies = truth[truth.issue_type == "near_duplicate"]
    positive = np.unique(np.minimum(copies["index"], copies.partner_index) * n
                         + np.maximum(copies["index"], copies.partner_index))
    other = np.zeros(n, bool)
    other[truth.loc[truth.issue_type != "near_duplicate", "index"]] = True
    kept = ~(other[a] | other[b])
    keys = np.minimum(a, b)[kept] * n + np.maximum(a, b)[kept]
    hits = np.isin(keys, positive)
    dropped = np.isin(keys, source_keys)
    print(f"  near-duplicate pair AP, protocol: {ranking_metrics(hits, positive.size)['AP']:.3f}")
    print(f"  without the source near-duplicate pairs: {ranking_metrics(hits[~dropped], positive.size)['AP']:.3f} "
          f"({int(dropped.sum())} listed pairs left out, {int(dropped[:50].sum())} of them in the top 50)")

    leaks = truth[truth.issue_type == "leakage"]
    train = (data.splits == "train") & ~injected
    source_leak = ~injected & (data.splits != "train") & (rms[:, train] <= threshold).any(1)
    order = np.asarray(rankings["leakage"])
    leak_other = np.zeros(n, bool)
    leak_other[truth.loc[truth.issue_type != "leakage", "index"]] = True
    order = order[~leak_other[order]]
    hits = np.isin(order, leaks["index"])
    dropped = source_leak[order]
    print(f"  leakage AP, protocol: {ranking_metrics(hits, len(leaks))['AP']:.3f}")
    print(f"  without the {int(source_leak.sum())} eval images with a source duplicate in train: "
          f"{ranking_metrics(hits[~dropped], len(leaks))['AP']:.3f} ({int(dropped[:30].sum())} of them in the top 30)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
