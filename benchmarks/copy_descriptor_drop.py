"""What a drop costs with the copy descriptor's fit kept (`copy_detection.fits.kept_descriptors`, the
service's `near_duplicate.copy_descriptor: on` path), against fine-tuning it again, and whether the
kept network serves the drop's images as well (#12).

    python benchmarks/copy_descriptor_drop.py CELL_DIR [--drop-fraction 0.05] [--weight 0.2]

CELL_DIR is a benchmark-matrix cell's `contaminated` folder (`quality_lab.matrix --keep-images`), with
its DINO model (`ssl_checkpoint.pt`). A seeded `--drop-fraction` of the cell's images is held back as
the drop (copies and sources land on either side, as they would in a real drop). Three runs, timed in
this process:

1. the base: the descriptor fine-tuned from the DINO backbone on the other images, every image of
   the base embedded (what the first audit does);
2. the drop with the base's fit kept: only the drop's images embedded by the kept network;
3. the drop without a kept fit: fine-tuned again on all images, all embedded.

Then the service's captured pair table (`pair_fusion.capture_pairs`) is re-ranked with the descriptor
view at `--weight` from run 2's descriptors and from run 3's (protocol pair AP, both truths), so the
kept network's descriptors of images it never trained on are compared with a network that did.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cell", type=Path)
    parser.add_argument("--drop-fraction", type=float, default=0.05)
    parser.add_argument("--weight", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0.0 < args.drop_fraction < 1.0:
        parser.error(f"--drop-fraction must lie strictly between 0 and 1, got {args.drop_fraction}")

    from quality_assets.copy_detection.fits import kept_descriptors
    from quality_assets.scores.pair_evidence import descriptor_ratio
    from quality_assets.scores.pixel_classifier import key_digests
    from quality_assets.ssl.checkpoints import load_checkpoint
    from quality_lab.bench.methods import pixel_image_loader
    from quality_lab.source_duplicates import source_duplicates

    data, _ = load_cell(args.cell)
    n = len(data.images)
    load = pixel_image_loader(data)
    backbone, meta = load_checkpoint(args.cell / "ssl_checkpoint.pt")
    keys = key_digests(np.array([f"{args.cell}/{k}" for k in range(n)], dtype=object))
    in_drop = np.zeros(n, bool)
    in_drop[np.random.default_rng(args.seed).choice(n, int(round(args.drop_fraction * n)), replace=False)] = True
    base_rows = np.flatnonzero(~in_drop)

    started = time.perf_counter()
    base = kept_descriptors(lambda rows: load(base_rows[rows]), keys[base_rows], backbone, meta)
    base_s = time.perf_counter() - started
    started = time.perf_counter()
    kept = kept_descriptors(load, keys, backbone, meta, previous=base.fit)
    kept_s = time.perf_counter() - started
    started = time.perf_counter()
    fresh = kept_descriptors(load, keys, backbone, meta)
    fresh_s = time.perf_counter() - started
    print(f"{n} images, drop of {int(in_drop.sum())} ({args.drop_fraction:.0%})")
    print(f"base: trained {base.fit.steps} steps, {base.n_embedded} embedded, {base_s:.1f} s")
    print(f"drop, fit kept: trained={kept.trained} ({kept.reason}), {kept.n_embedded} embedded, {kept_s:.1f} s")
    print(f"drop, fine-tuned again: trained={fresh.trained}, {fresh.n_embedded} embedded, {fresh_s:.1f} s "
          f"({fresh_s / max(kept_s, 1e-9):.0f}x the kept fit's time)")

    pairs = capture_pairs(args.cell)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    touches_drop = in_drop[i] | in_drop[j]
    print(f"service: {ap_summary(pair_ap(pairs, data, excluded))}")
    for name, found in (("kept fit", kept), ("fine-tuned again", fresh)):
        view = descriptor_ratio(found.descriptors, i, j, n)
        print(f"+ view at {args.weight} from the {name}: "
              f"{ap_summary(pair_ap(pairs, data, excluded, extra_view=(view, args.weight)))}")
    truth = data.truth[data.truth["kind"].isin(["AUG", "ARTE"])]
    crossing = int((in_drop[truth["index"].to_numpy()] | in_drop[truth["partner_index"].to_numpy()]).sum())
    print(f"{crossing} of {len(truth)} AUG/ARTE copy pairs have an end in the drop; "
          f"{int(touches_drop.sum())} of {len(pairs)} candidate pairs do")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
