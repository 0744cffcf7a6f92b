"""Re-fuse one benchmark-matrix cell's near-duplicate evidence under other fusion weights, in
seconds instead of a scoring run per variant.

    python benchmarks/pair_fusion.py CELL_DIR '{}' '{"crop": 0.2}' '{"registered": 0.35}'

CELL_DIR is a cell's `contaminated` folder (`quality_lab.matrix --keep-images`, as for
`rescore_cell.py`). The first run scores the cell once with the service's code on its own DINO
checkpoint (the label-error pixel classifier off: it does not touch the pairs) and keeps the
near-duplicate issue type's whole pair table, every evidence column included, in
`CELL_DIR/near_duplicate_pairs.pkl`; later runs read it. Each argument is a JSON object of fusion
weights laid over `pair_evidence.DEFAULT_FUSION_WEIGHTS`; the pairs are re-ranked with
`pair_evidence.fuse_p_values` as the service ranks them (exact copies first, near-exact ones
lifted) and scored with the matrix's metrics: pair AP per kind under the protocol's truth and
without the source's own duplicates. The service's own ranking is checked first: re-fused with the
default weights it must give the captured scores exactly, or the script stops (the service's
ranking changed and this script must follow it).

Only the weights move; what each view measures (and which pairs are registered) is fixed by the
capture. Leakage is not re-ranked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import quality_assets.scores.near_duplicate as near_duplicate_scores
from quality_assets.scores.near_duplicate import lift_near_exact, pair_order
from quality_assets.scores.pair_evidence import DEFAULT_FUSION_WEIGHTS, empirical_p_values, fuse_p_values

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rescore_cell import load_cell  # noqa: E402

PAIR_FILE = "near_duplicate_pairs.pkl"
VIEW_COLUMNS = ("aligned_ratio", "agreement_ratio", "registered_ratio", "crop_ratio", "recoloured", "embedding_score")


def capture_pairs(root: Path) -> pd.DataFrame:
    """The near-duplicate issue type's pair table of one scoring run on the cell (cached)."""
    cached = root / PAIR_FILE
    if cached.exists():
        return pd.read_pickle(cached)
    from quality_assets.knn import build_knn_graph
    from quality_assets.scoring import ScoreConfig, compute_scores
    from quality_lab.bench.methods import colour_grids_for, pixel_image_loader, thumbnails_for

    data, vectors = load_cell(root)
    captured: list[pd.DataFrame] = []
    service_pairs = near_duplicate_scores.near_duplicate_pairs

    def keep_table(*args, **kwargs):  # the issue type stores only some columns of its table
        table = service_pairs(*args, **kwargs)
        captured.append(table)
        return table

    near_duplicate_scores.near_duplicate_pairs = keep_table
    try:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        compute_scores(list(data.manifest["sample_id"]), build_knn_graph(vectors, k=16), data.manifest,
                       ScoreConfig({"label_error": {"pixel_classifier": "off"}}), vectors=vectors,
                       thumbnails=thumbnails_for(data), images=pixel_image_loader(data),
                       colour_grids=colour_grids_for(data))
    finally:
        near_duplicate_scores.near_duplicate_pairs = service_pairs
    table = captured[-1][["i", "j", "distance", "score", "evidence", *VIEW_COLUMNS]]
    table.to_pickle(cached)
    return table


def fused_order(pairs: pd.DataFrame, weights: dict[str, float],
                extra_view: tuple[np.ndarray, float] | None = None,
                near_exact_apart: bool = True, lifted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The service's final score under `weights`, and the pairs' ranking by it (best first).

    `extra_view` = (the copy descriptor's view, `pair_evidence.descriptor_ratio`: lower = likelier a
    copy, NaN = no evidence; and its share w of the fusion): fused by `fuse_p_values` as the
    service's `descriptor` view (masked on recoloured pairs, as the pixel views are), the other views
    keeping their ratios within 1 - w. `near_exact_apart=False` counts the near-exact pairs in the
    other pairs' p-values, as the service did before 2026-12-06 (4) (a comparison only). `lifted`
    (a boolean mask): more pairs lifted into the near-exact tier, after the exact matches and in
    their fused order (a candidate tier measured, e.g. `exact_pixel_tier.py`)."""
    columns = {c: pairs[c].to_numpy() for c in VIEW_COLUMNS}
    weights = {**DEFAULT_FUSION_WEIGHTS, **weights}
    if extra_view is not None:
        values, w = extra_view
        if not 0.0 < w < 1.0:
            raise ValueError(f"the extra view's share must lie strictly between 0 and 1, got {w}")
        others = sum(weight for name, weight in weights.items() if name != "descriptor")
        columns["descriptor_ratio"] = np.asarray(values, dtype=float)
        weights["descriptor"] = w / (1.0 - w) * others
    evidence = pairs["evidence"].astype(str)
    near = evidence.str.contains("near_exact").to_numpy()
    score = fuse_p_values(columns, weights, exact=evidence.str.contains("sha256").to_numpy(),
                          near_exact=near if near_exact_apart else None)
    if lifted is not None:
        near = near | (np.asarray(lifted, dtype=bool) & ~evidence.str.contains("sha256").to_numpy())
    score[near] = lift_near_exact(score[near])
    return score, pair_order(pairs["i"].to_numpy(), pairs["j"].to_numpy(), pairs["distance"].to_numpy(dtype=float),
                             score)


def pair_ap(pairs: pd.DataFrame, data, excluded, weights: dict[str, float] | None = None,
            extra_view: tuple[np.ndarray, float] | None = None,
            near_exact_apart: bool = True, lifted: np.ndarray | None = None) -> dict[tuple[str, str], float]:
    """Pair AP of the table ranked by `fused_order` under `weights` (and `extra_view`, `lifted`), per
    (truth, kind): the protocol's truth and the one without the source's own duplicates (`excluded`)."""
    from quality_lab.bench.methods import MethodResult
    from quality_lab.bench.metrics import evaluate_method

    _, order = fused_order(pairs, weights or {}, extra_view, near_exact_apart, lifted)
    ranking = (pairs["i"].to_numpy()[order], pairs["j"].to_numpy()[order])
    result = MethodResult("ours", json.dumps(weights or {}), {"near_duplicate": ranking}, 0.0)
    rows = pd.DataFrame(evaluate_method(result, data) + evaluate_method(result, data, excluded))
    rows = rows[rows["issue_type"] == "near_duplicate"]
    return {(t, k): a for t, k, a in zip(rows["truth"], rows["kind"], rows["AP"])}


def ap_summary(ap: dict[tuple[str, str], float]) -> str:
    return (f"pair AP {ap[('protocol', 'all')]:.3f} (ARTE {ap[('protocol', 'ARTE')]:.3f}, "
            f"AUG {ap[('protocol', 'AUG')]:.3f}), without the source's duplicates "
            f"{ap[('without_source_duplicates', 'all')]:.3f}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    from quality_lab.source_duplicates import source_duplicates

    root, configs = Path(argv[0]), argv[1:] or ["{}"]
    pairs = capture_pairs(root)
    score, _ = fused_order(pairs, {})
    if not np.array_equal(score, pairs["score"].to_numpy()):
        raise SystemExit("re-fused with the default weights, the pairs do not get the service's scores: "
                         "the service's ranking changed; update fused_order")
    data, _ = load_cell(root)
    excluded = source_duplicates(data.images, data.splits, data.truth)
    print(f"{root}: {len(pairs)} pairs, {int(pairs['registered_ratio'].notna().sum())} registered")
    for config in configs:
        print(f"{config}: {ap_summary(pair_ap(pairs, data, excluded, json.loads(config)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
