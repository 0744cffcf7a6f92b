"""The multi-label label-error flag: the confident rule against SelfClean's fraction cut.

    python benchmarks/bench_multi_label_flags.py [--settings 240:6 600:60 ...] [--seeds 0 1 2]

Data: the tests' multi-label image set (`quality_lab.multilabel_images`: PNG files and a CSV of
'|'-separated tags, five tags drawn in the pixels, a share of the samples with one tag added or
removed), ingested by `scan_drop`, embedded by plain pixels, scored by `compute_scores` with the
default configuration and with `flag_rule: cut`. Per setting n:flipped and seed: flips flagged of
all, and clean samples flagged. Prints one markdown table (sums over the seeds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from quality_assets.knn import build_knn_graph
from quality_assets.scan import scan_drop
from quality_assets.scoring import ScoreConfig, compute_scores
from quality_lab.multilabel_images import pixel_vectors, write_multilabel_drop

RULES = {"confident (default)": None, "fraction cut": ScoreConfig({"label_error": {"flag_rule": "cut"}})}


def flags_per_rule(n: int, n_flipped: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drop = write_multilabel_drop(root, n=n, n_flipped=n_flipped, seed=seed)
        manifest = scan_drop(root, root, "d").accepted.set_index("path").loc[drop.paths].reset_index()
        vectors = pixel_vectors(root, drop.paths)
    graph = build_knn_graph(vectors, 10)
    flipped = manifest["path"].isin(list(drop.flipped)).to_numpy()
    out = {}
    for rule, config in RULES.items():
        scored = compute_scores(manifest["sample_id"].tolist(), graph, manifest, config, vectors=vectors)
        rows = scored.issue_rows[scored.issue_rows["issue_type"] == "label_error"].set_index("sample_id")
        out[rule] = rows["is_issue"].reindex(manifest["sample_id"]).fillna(False).to_numpy(bool)
    return flipped, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+",
                        default=["240:0", "240:6", "240:24", "600:15", "600:60", "1200:30", "1200:240"],
                        help="n:flipped pairs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    lines = ["| n | flipped | " + " | ".join(f"{r}: flips flagged / clean flagged" for r in RULES) + " |",
             "|---|---|" + "---|" * len(RULES)]
    for setting in args.settings:
        n, n_flipped = (int(v) for v in setting.split(":"))
        hits = {r: 0 for r in RULES}
        alarms = {r: 0 for r in RULES}
        per_seed = {r: [] for r in RULES}
        for seed in args.seeds:
            flipped, flags = flags_per_rule(n, n_flipped, seed)
            for rule, flag in flags.items():
                hits[rule] += int((flag & flipped).sum())
                alarms[rule] += int((flag & ~flipped).sum())
                per_seed[rule].append(int((flag & flipped).sum()))
        total = n_flipped * len(args.seeds)
        clean = (n - n_flipped) * len(args.seeds)
        cells = [f"{hits[r]} / {total} ({', '.join(map(str, per_seed[r]))}); {alarms[r]} of {clean}" for r in RULES]
        lines.append(f"| {n} | {n_flipped} ({n_flipped / n:.1%}) | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
