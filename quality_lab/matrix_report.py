"""Tables of the benchmark matrix: mean and spread over seeds per dataset, the mean over datasets,
the contamination kinds split out, and the clean-data flags and gate.

Reads ``OUT/cells/*.csv`` / ``*.json`` (one per dataset and seed, written by
:mod:`quality_lab.matrix`) and writes ``OUT/results.csv``, ``OUT/clean.csv`` and ``OUT/matrix.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from quality_lab.bench.metrics import PROTOCOL_TRUTH, SOURCE_DUPLICATE_ISSUE_TYPES, WITHOUT_SOURCE_DUPLICATES
from quality_lab.source_duplicates import SOURCE_DUPLICATE_RMS

ISSUE_ORDER = ("off_topic", "near_duplicate", "label_error", "leakage")
METHOD_ORDER = (
    ("ours", "service"), ("cleanlab", "raw_pca64"), ("cleanlab", "imagenet_effnet_lite0_pca64"),
    ("fastdup", "-"), ("phash", "-"), ("lad", "dino_ssl"), ("mean_knn", "dino_ssl"), ("random", "-"),
)
METRICS = ("AP", "AUROC", "recall@n")
DATASET_ORDER = ("mnist", "animal_mnist", "openclipart", "oxygen_icons")


def _datasets(frame: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(frame.dataset))
    return [d for d in DATASET_ORDER if d in present] + sorted(set(present) - set(DATASET_ORDER))


def _label(method: str, features: str) -> str:
    names = {("ours", "service"): "**ours (service defaults)**", ("cleanlab", "raw_pca64"): "cleanlab Datalab, raw pixels",
             ("cleanlab", "imagenet_effnet_lite0_pca64"): "cleanlab Datalab, ImageNet EfficientNet-Lite0",
             ("fastdup", "-"): "fastdup", ("phash", "-"): "pHash (imagehash)",
             ("lad", "dino_ssl"): "LAD alone (our graph)", ("mean_knn", "dino_ssl"): "mean kNN distance (our graph)",
             ("random", "-"): "random order (expected)"}
    return names.get((method, features), f"{method} [{features}]")


def _cell(values: pd.Series) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if not v.size:
        return ""
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def _methods(frame: pd.DataFrame) -> list[tuple[str, str]]:
    present = set(map(tuple, frame[["method", "features"]].drop_duplicates().to_numpy()))
    ordered = [m for m in METHOD_ORDER if m in present]
    return ordered + sorted(present - set(ordered))


def _issue_table(frame: pd.DataFrame, issue_type: str, kind: str, metric: str, datasets: list[str]) -> str:
    """Rows: methods; columns: datasets (mean ± sd over seeds) and the mean over datasets."""
    sel = frame[(frame.issue_type == issue_type) & (frame.kind == kind)]
    if sel.empty:
        return ""
    head = ["method"] + datasets + ["mean over datasets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, feats in _methods(sel):
        m = sel[(sel.method == method) & (sel.features == feats)]
        if m.empty:
            continue
        cells = [_cell(m[m.dataset == ds][metric]) for ds in datasets]
        per_ds = m.groupby("dataset")[metric].mean()
        mean = f"{per_ds.mean():.3f}" if len(per_ds) == len(datasets) else (f"{per_ds.mean():.3f} ({len(per_ds)} sets)"
                                                                            if len(per_ds) else "")
        lines.append("| " + " | ".join([_label(method, feats)] + cells + [mean]) + " |")
    return "\n".join(lines)


def _kinds(frame: pd.DataFrame, issue_type: str) -> list[str]:
    return sorted(k for k in frame[frame.issue_type == issue_type].kind.unique() if k != "all")


def _clean_table(clean: pd.DataFrame) -> str:
    lines = ["| dataset | seeds | flagged near-duplicate rate on clean data (mean / max) | flagged leakage rate on "
             "clean data (mean / max) | true leakage | flagged leakage at that true leakage (mean / max) | "
             "5% leakage gate passes |", "|---|---|---|---|---|---|---|"]
    for ds in _datasets(clean):
        g = clean[clean.dataset == ds]
        lines.append(
            f"| {ds} | {len(g)} | {g.clean_near_duplicate_rate.mean():.2%} / {g.clean_near_duplicate_rate.max():.2%} | "
            f"{g.clean_leakage_rate.mean():.2%} / {g.clean_leakage_rate.max():.2%} | {g.true_leakage.mean():.2%} | "
            f"{g.flagged_leakage_at_true.mean():.2%} / {g.flagged_leakage_at_true.max():.2%} | "
            f"{int(g.leakage_gate_passes.sum())} of {len(g)} |")
    if "source_repeat_share" in clean.columns and clean["source_repeat_share"].notna().any():
        lines += ["", "The same without the source's own repeats (`quality_lab.matrix.source_repeat_groups`: one "
                  "picture under two names, RMS difference at most 8/255; real duplicates the ground truth does "
                  "not list):", "",
                  "| dataset | samples in source repeats | flagged near-duplicate rate without them (mean / max) | "
                  "flagged leakage rate without them (mean / max) | true leakage counting them |",
                  "|---|---|---|---|---|"]
        for ds in _datasets(clean):
            g = clean[clean.dataset == ds]
            nd, lk = g.clean_near_duplicate_rate_without_source_repeats, g.clean_leakage_rate_without_source_repeats
            lines.append(f"| {ds} | {g.source_repeat_share.mean():.2%} | {nd.mean():.2%} / {nd.max():.2%} | "
                         f"{lk.mean():.2%} / {lk.max():.2%} | {g.true_leakage_with_source_repeats.mean():.2%} |")
    return "\n".join(lines)


def _worst(frame: pd.DataFrame, datasets: list[str]) -> list[str]:
    ours = frame[(frame.method == "ours") & (frame.features == "service") & (frame.kind == "all")]
    out = []
    for it in ISSUE_ORDER:
        per = ours[ours.issue_type == it].groupby("dataset")["AP"].mean()
        if len(per):
            out.append(f"- {it}: mean AP {per.mean():.3f}; worst dataset {per.idxmin()} ({per.min():.3f}), "
                       f"best {per.idxmax()} ({per.max():.3f})")
    return out


def headline_table(frame: pd.DataFrame, metric: str = "AP") -> str:
    """Rows: methods; columns: each issue type and its kinds; cells: the mean over datasets of the
    per-dataset mean over seeds (a method missing on some dataset shows how many it ran on)."""
    columns = []
    for it in ISSUE_ORDER:
        if (frame.issue_type == it).any():
            columns.append((it, "all"))
            columns += [(it, k) for k in _kinds(frame, it)]
    head = ["method"] + [it if k == "all" else k for it, k in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    n_sets = frame.dataset.nunique()
    for method, feats in _methods(frame):
        m = frame[(frame.method == method) & (frame.features == feats)]
        cells = []
        for it, kind in columns:
            per = m[(m.issue_type == it) & (m.kind == kind)].groupby("dataset")[metric].mean()
            text = f"{per.mean():.3f}" if len(per) else ""
            if len(per) and len(per) < n_sets:
                text += f" ({len(per)})"
            cells.append(f"**{text}**" if method == "ours" and text else text)
        lines.append("| " + " | ".join([_label(method, feats)] + cells) + " |")
    return "\n".join(lines)


def summary_markdown(frame: pd.DataFrame, clean: pd.DataFrame, *, full: bool) -> str:
    datasets = _datasets(frame)
    parts = [f"**AP, mean over datasets** ({', '.join(datasets)}; each dataset's mean over its seeds)\n\n"
             + headline_table(frame, "AP") + "\n",
             "**AUROC, mean over datasets**\n\n" + headline_table(frame, "AUROC") + "\n",
             "**Recall at the number injected, mean over datasets**\n\n" + headline_table(frame, "recall@n") + "\n"]
    parts.append("In the per-dataset tables a value without ± comes from one seed. Pairs a method never lists "
                 "count as missed; other injected kinds are left out of each kind's ranking.\n")
    metrics = METRICS if full else ("AP",)
    for it in ISSUE_ORDER:
        for metric in metrics:
            table = _issue_table(frame, it, "all", metric, datasets)
            if table:
                unit = " (pairs)" if it == "near_duplicate" else (" (eval samples)" if it == "leakage" else "")
                parts.append(f"**{it}{unit}: {metric}**, mean ± sd over seeds\n\n{table}\n")
        kinds = _kinds(frame, it)
        if len(kinds) > 1:
            for kind in kinds:
                table = _issue_table(frame, it, kind, "AP", datasets)
                parts.append(f"**{it}, kind {kind} only: AP** (other kinds left out)\n\n{table}\n")
    if len(clean):
        parts.append("**Flags and gates on data without injected contamination** (the service's own model per "
                     "clean set; the gates read these figures; target: at most 1% each, and the 5% leakage gate "
                     "passes at 2.4% true leakage)\n\n" + _clean_table(clean) + "\n")
    worst = _worst(frame, datasets)
    if worst:
        parts.append("Ours, mean over datasets and the worst dataset per issue type:\n\n" + "\n".join(worst) + "\n")
    return "\n".join(parts)


def write_report(out: Path, *, command: str = "", unavailable: dict[str, str] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = Path(out)
    frames, clean_rows, skipped = [], [], {}
    for csv in sorted((out / "cells").glob("*.csv")):
        meta = csv.with_suffix(".json")
        if not meta.is_file():
            continue
        frames.append(pd.read_csv(csv))
        info = json.loads(meta.read_text())
        clean_rows.append(info["clean"])
        skipped.update(info.get("skipped_peers", {}))
    if not frames:
        return pd.DataFrame(), pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    # Cells from before the second truth hold the protocol's rows only.
    frame["truth"] = frame["truth"].fillna(PROTOCOL_TRUTH) if "truth" in frame.columns else PROTOCOL_TRUTH
    clean = pd.DataFrame(clean_rows)
    frame.to_csv(out / "results.csv", index=False, lineterminator="\n", float_format="%.6g")
    clean.to_csv(out / "clean.csv", index=False, lineterminator="\n", float_format="%.6g")
    seeds = sorted(frame.seed.unique().tolist())
    counts = frame[(frame.method == "ours") & (frame.kind != "all")].groupby(["dataset", "kind"])["n_injected"].mean()
    head = [f"# Benchmark matrix\n", f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}`.",
            f"Datasets: {', '.join(_datasets(frame))}; seeds: {', '.join(map(str, seeds))}.",
            "Injected per dataset (mean over seeds): " + "; ".join(
                f"{ds}: " + ", ".join(f"{k} {v:.0f}" for (d, k), v in counts.items() if d == ds)
                for ds in _datasets(frame)) + "."]
    for name, why in {**skipped, **(unavailable or {})}.items():
        head.append(f"Skipped {name}: {why}.")
    protocol = frame[frame.truth == PROTOCOL_TRUTH]
    second = source_duplicate_markdown(frame[frame.truth == WITHOUT_SOURCE_DUPLICATES])
    (out / "matrix.md").write_text("\n".join(head) + "\n\n" + summary_markdown(protocol, clean, full=True) + second)
    (out / "summary.md").write_text(summary_markdown(protocol, clean, full=False) + second)
    return frame, clean


def source_duplicate_markdown(frame: pd.DataFrame) -> str:
    """The near-duplicate and leakage tables again, by the truth without the source's own
    duplicates (:mod:`quality_lab.source_duplicates`); empty when no cell has it."""
    if frame.empty:
        return ""
    datasets = _datasets(frame)
    parts = ["\n## The same rankings without the source's own duplicates\n",
             "Pairs showing a picture the source held twice (grey 32 px thumbnails at most RMS "
             f"{SOURCE_DUPLICATE_RMS} apart under the best dihedral transform; an injected copy stands for its "
             "source), and eval images with such a twin in train, are left out as neither hits nor misses, for "
             "every method alike. The injected copies and leaks all still count.\n",
             "**AP, mean over datasets**\n\n" + headline_table(frame, "AP") + "\n"]
    for it in SOURCE_DUPLICATE_ISSUE_TYPES:
        table = _issue_table(frame, it, "all", "AP", datasets)
        if table:
            parts.append(f"**{it}: AP** without the source's own duplicates, mean ± sd over seeds\n\n{table}\n")
    return "\n".join(parts)
