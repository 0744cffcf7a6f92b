"""Re-register one benchmark-matrix cell's registered pairs under other registration settings and
re-rank its pair table, in a minute instead of a scoring run per variant.

    python benchmarks/registration_variants.py CELL_DIR '{}' '{"COARSE_KEEP": 3}' '{"POLISH_STEPS": 6, "POLISH_LR": 0.03}'

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`, as for
`rescore_cell.py`); its pair table is captured once by `pair_fusion.capture_pairs` (cached in the
folder). Each argument is a JSON object of `quality_assets.scores.registration` module constants
(`COARSE_ANGLES`, `COARSE_ZOOMS`, `FINE_ANGLES`, `FINE_ZOOMS`, `COARSE_KEEP`, `POLISH_STEPS`,
`POLISH_LR`, `FINE_BLUR_PX`) set for that variant and reset after it. The pairs the service
registered are registered again with `registered_similarity` on the service's thumbnails, their
ratio to the next best recomputed as `pair_evidence` computes it, and the table re-ranked by
`pair_fusion.fused_order`. Which pairs are registered stays the capture's. The first argument should
be `'{}'`: with the service's settings the ratios must reproduce the captured ones (printed as
`reproduces`), or the registration or the ratio changed since the capture.

Prints per variant the registration's seconds and pairs per second (one process, the machine's
load included: compare variants of one call, not across calls) and the protocol's pair AP, all kinds
and by kind, under the protocol's truth and without the source's own duplicates.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

import quality_assets.scores.registration as registration
from quality_assets.scores.pair_evidence import ratio_ends
from quality_assets.scores.pixel_copies import ratio_to_next_best

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pair_fusion import ap_summary, capture_pairs, pair_ap  # noqa: E402
from rescore_cell import load_cell  # noqa: E402

SETTINGS = ("COARSE_ANGLES", "COARSE_ZOOMS", "FINE_ANGLES", "FINE_ZOOMS", "COARSE_KEEP", "POLISH_STEPS", "POLISH_LR",
            "FINE_BLUR_PX")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    from quality_lab.bench.methods import thumbnails_for
    from quality_lab.source_duplicates import source_duplicates

    root, variants = Path(argv[0]), [json.loads(v) for v in argv[1:]] or [{}]
    unknown = sorted({k for v in variants for k in v} - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown registration settings {unknown}; known: {', '.join(SETTINGS)}")
    pairs = capture_pairs(root)
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    thumbnails = thumbnails_for(data)
    registered = pairs["registered_ratio"].notna().to_numpy()
    i, j = pairs["i"].to_numpy()[registered], pairs["j"].to_numpy()[registered]
    captured = pairs["registered_ratio"].to_numpy()[registered]
    print(f"{root}: {len(pairs)} pairs, {int(registered.sum())} registered")
    defaults = {name: getattr(registration, name) for name in SETTINGS}
    for variant in variants:
        for name, value in variant.items():
            setattr(registration, name, tuple(value) if isinstance(value, list) else value)
        try:
            start = time.perf_counter()
            correlation = registration.registered_similarity(thumbnails, i, j, mirror=True)
            seconds = time.perf_counter() - start
        finally:
            for name, value in defaults.items():
                setattr(registration, name, value)
        ratio = ratio_to_next_best((1.0 - correlation) / 2.0, i, j, data.n, ends=ratio_ends("registered_ratio"))
        table = pairs.copy()
        table.loc[registered, "registered_ratio"] = ratio
        ap = pair_ap(table, data, excluded)
        reproduces = bool(np.allclose(ratio, captured, rtol=1e-4, equal_nan=True))
        print(f"{json.dumps(variant)}: {seconds:.1f} s, {i.size / seconds:.0f} pairs/s, reproduces {reproduces}; "
              f"{ap_summary(ap)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
