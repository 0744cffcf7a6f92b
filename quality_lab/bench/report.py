"""The detection benchmark's tables: markdown per dataset, best value per column in bold, and the
verdict of the service against the best peer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from quality_lab.bench.data import ISSUE_TYPES


_METHOD_ORDER = [
    "ours", "ours_distance_pairs", "ours_fused", "cleanlab", "phash", "isolation_forest", "mean_knn", "random",
]
# What the service runs: the SSL embedding plus the pixel view (thumbnails).
SERVICE_FEATURES = "dino_ssl+pixels"
_FEATURE_ORDER = ["dino_ssl+pixels", "dino_ssl", "raw_pixels", "random_init", "dino_ssl+raw_pixels", "raw_pca64", "-"]


def _label(method: str, features: str) -> str:
    return method if features == "-" else f"{method} [{features}]"


def _sorted_methods(frame: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = frame[["method", "features"]].drop_duplicates().itertuples(index=False)
    key = lambda mf: (_METHOD_ORDER.index(mf[0]) if mf[0] in _METHOD_ORDER else 99,  # noqa: E731
                      _FEATURE_ORDER.index(mf[1]) if mf[1] in _FEATURE_ORDER else 99)
    return sorted({(m, f) for m, f in pairs}, key=key)


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if metric == "effort90":
        return "inf" if math.isinf(value) else f"{value:,.0f}"
    return f"{value:.3f}"


def _pivot_table(frame: pd.DataFrame, metric: str, columns: list[tuple[str, str]], best: str) -> str:
    """Markdown table: one row per method, one column per (issue_type, kind); best peer-or-ours
    value per column in bold (the random row never counts)."""
    methods = _sorted_methods(frame)
    head = ["method"] + [it if kind == "all" else f"{it}: {kind}" for it, kind in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for rec in frame.to_dict("records"):
        cells.setdefault((rec["method"], rec["features"]), {})[(rec["issue_type"], rec["kind"])] = rec.get(metric)
    best_val: dict[tuple[str, str], float] = {}
    for col in columns:
        vals = [cells[mf].get(col) for mf in methods if mf[0] != "random" and cells[mf].get(col) is not None]
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            best_val[col] = max(vals) if best == "max" else min(vals)
    for mf in methods:
        row_cells = [_label(*mf)]
        for col in columns:
            v = cells[mf].get(col)
            text = _fmt(v, metric) if v is not None else ""
            if text and mf[0] != "random" and col in best_val and np.isclose(v, best_val[col]):
                text = f"**{text}**"
            row_cells.append(text)
        lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines)


def markdown_report(frame: pd.DataFrame, *, kinds: bool = True) -> str:
    """Tables per dataset: AP and effort90 per issue type, and (with ``kinds``) AP per kind,
    plus a verdict line per issue type: ours vs the best peer on AP."""
    if frame.empty:
        return ""
    parts = []
    for ds in frame["dataset"].unique():
        f = frame[frame["dataset"] == ds]
        cols = [(it, "all") for it in ISSUE_TYPES if ((f.issue_type == it) & (f.kind == "all")).any()]
        n_inj = {it: int(f[(f.issue_type == it) & (f.kind == "all")]["n_injected"].iloc[0]) for it, _ in cols}
        parts.append(f"### {ds}\n")
        parts.append("Injected: " + ", ".join(f"{it} {n_inj[it]}" for it, _ in cols)
                     + " (near_duplicate counted in pairs).\n")
        parts.append("**Average precision** (higher is better; best non-random in bold)\n")
        parts.append(_pivot_table(f, "AP", cols, "max") + "\n")
        parts.append("**Inspection effort: items reviewed to find 90% of the issue** (pairs for "
                     "near_duplicate, eval samples for leakage; lower is better)\n")
        parts.append(_pivot_table(f, "effort90", cols, "min") + "\n")
        parts.append("**AUROC**\n")
        parts.append(_pivot_table(f, "AUROC", cols, "max") + "\n")
        if kinds:
            kcols = [(r.issue_type, r.kind) for r in
                     f[f.kind != "all"][["issue_type", "kind"]].drop_duplicates().itertuples(index=False)]
            kcols.sort(key=lambda c: (ISSUE_TYPES.index(c[0]), c[1]))
            parts.append("**AP per contamination kind** (other kinds of the same issue type left out)\n")
            parts.append(_pivot_table(f, "AP", kcols, "max") + "\n")
        verdict = []
        for it, _ in cols:
            sel = f[(f.issue_type == it) & (f.kind == "all")]
            ours = sel[(sel.method == "ours") & (sel.features == SERVICE_FEATURES)]
            peer = sel[~sel.method.isin(["ours", "ours_distance_pairs", "ours_fused", "random"])]
            if ours.empty or peer.empty:
                continue
            best = peer.sort_values("AP", ascending=False).iloc[0]
            o = float(ours["AP"].iloc[0])
            word = "ahead of" if o > best.AP else ("tied with" if np.isclose(o, best.AP) else "BEHIND")
            line = (f"- {it}: ours {o:.3f} {word} best peer {_label(best.method, best.features)} "
                    f"{best.AP:.3f} (difference {o - best.AP:+.3f})")
            variants = sel[sel.method.isin(["ours", "ours_distance_pairs", "ours_fused"])]
            top = variants.sort_values("AP", ascending=False).iloc[0]
            if (top.method, top.features) != ("ours", SERVICE_FEATURES):
                line += f"; best of our variants: {_label(top.method, top.features)} {top.AP:.3f}"
            verdict.append(line)
        if verdict:
            parts.append(f"Ours [{SERVICE_FEATURES}] (the service) vs the best peer on AP:\n\n" + "\n".join(verdict) + "\n")
    return "\n".join(parts)


def _write_outputs(out_dir: Path, frame: pd.DataFrame, timings: pd.DataFrame) -> None:
    if frame.empty:
        return
    frame.to_csv(out_dir / "results.csv", index=False, lineterminator="\n", float_format="%.6g")
    timings.to_csv(out_dir / "timings.csv", index=False, lineterminator="\n", float_format="%.2f")
    text = markdown_report(frame)
    if len(timings):
        lines = ["### Timings (seconds, 2 CPU cores)\n", "| dataset | step | seconds |", "|---|---|---|"]
        for r in timings.itertuples(index=False):
            lines.append(f"| {r.dataset} | {r.step} | {r.seconds:.1f} |")
        text += "\n" + "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(text)
