"""Ontology insights from the class-confusion table (given label -> suggested label of flagged
label errors), as Cleanlab Studio shows them: the most common suggested corrections, and class
pairs that may really be one class.

Merge suggestions. For two classes a and b with n_a and n_b samples, and c(a->b) flagged samples
labelled a whose suggestion is b:

    rate(a->b) = c(a->b) / n_a        rate(b->a) = c(b->a) / n_b
    merge score = sqrt(rate(a->b) * rate(b->a))

the geometric mean of the two confusion rates. It is high only when *both* directions are frequent
relative to the class sizes (the classes are used interchangeably), and 0 for a one-way confusion
(a class that absorbs another's mislabelled samples is not a synonym). A pair is suggested when each
direction has at least `min_count` samples and the score reaches `min_score`. For multi-label data
the confusion rows are per tag against its absence ("(no t)", `multi_label.absent_tag`); those rows
are corrections, never merges.

Pure pandas / NumPy: no Dagster, no DuckDB, no HTML (the bar chart's geometry is plain numbers that
the report's and the app's jinja2 templates draw as SVG).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["BarChart", "MERGE_COLUMNS", "OntologyInsights", "bar_chart", "merge_suggestions", "ontology_insights",
           "top_corrections"]

MERGE_COLUMNS = ["class_a", "class_b", "a_to_b", "b_to_a", "size_a", "size_b", "rate_a_to_b", "rate_b_to_a",
                 "score"]
NO_SUGGESTION = "(none)"


def _is_absent_tag(label: str) -> bool:
    return label.startswith("(no ") and label.endswith(")")


def _corrections(confusion: pd.DataFrame) -> pd.DataFrame:
    frame = confusion.loc[:, ["given_label", "suggested_label", "count"]].copy()
    frame = frame[frame["given_label"].notna()]
    frame["suggested_label"] = frame["suggested_label"].where(frame["suggested_label"].notna(), NO_SUGGESTION)
    frame["given_label"] = frame["given_label"].astype(str)
    frame["suggested_label"] = frame["suggested_label"].astype(str)
    frame["count"] = pd.to_numeric(frame["count"], errors="coerce").fillna(0).astype(np.int64)
    frame = frame[(frame["given_label"] != frame["suggested_label"]) & (frame["count"] > 0)]
    return frame.groupby(["given_label", "suggested_label"], as_index=False)["count"].sum()


def top_corrections(confusion: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The `limit` most common given -> suggested corrections: given_label, suggested_label, count,
    largest first (ties by given, then suggested label). A missing suggestion reads "(none)"."""
    frame = _corrections(confusion)
    frame = frame.sort_values(["count", "given_label", "suggested_label"], ascending=[False, True, True])
    return frame.head(max(0, int(limit))).reset_index(drop=True)


def merge_suggestions(confusion: pd.DataFrame, class_sizes: Mapping[str, int], *, min_count: int = 2,
                      min_score: float = 0.02, limit: int = 10) -> pd.DataFrame:
    """Class pairs confused in both directions (module docstring), best score first.

    `class_sizes`: samples per class (per tag for multi-label data). A class without a known size
    (or of size 0) takes part in no suggestion.
    """
    frame = _corrections(confusion)
    frame = frame[~frame["given_label"].map(_is_absent_tag) & ~frame["suggested_label"].map(_is_absent_tag)
                  & (frame["suggested_label"] != NO_SUGGESTION)]
    counts = {(g, s): int(c) for g, s, c in zip(frame["given_label"], frame["suggested_label"], frame["count"])}
    rows = []
    for a, b in sorted({tuple(sorted(pair)) for pair in counts}):
        ab, ba = counts.get((a, b), 0), counts.get((b, a), 0)
        size_a, size_b = int(class_sizes.get(a, 0) or 0), int(class_sizes.get(b, 0) or 0)
        if min(ab, ba) < min_count or size_a <= 0 or size_b <= 0:
            continue
        rate_ab, rate_ba = ab / size_a, ba / size_b
        score = math.sqrt(rate_ab * rate_ba)
        if score >= min_score:
            rows.append((a, b, ab, ba, size_a, size_b, rate_ab, rate_ba, score))
    out = pd.DataFrame(rows, columns=MERGE_COLUMNS)
    out = out.sort_values(["score", "class_a", "class_b"], ascending=[False, True, True])
    return out.head(max(0, int(limit))).reset_index(drop=True)


@dataclass
class Bar:
    label: str          # "given → suggested"
    count: int
    y: float            # top of the bar's row
    text_y: float       # baseline of the row's texts
    length: float       # bar length in px
    share: float        # count / largest count


@dataclass
class BarChart:
    bars: list[Bar] = field(default_factory=list)
    width: int = 0
    height: int = 0
    label_width: int = 0
    bar_height: int = 0
    plot_width: int = 0


def bar_chart(corrections: pd.DataFrame, *, width: int = 640, bar_height: int = 18, gap: int = 6,
              label_width: int = 220, count_width: int = 48) -> BarChart:
    """Geometry of a horizontal bar chart of `top_corrections` rows, in their order (largest on top);
    bar lengths are proportional to the count, the largest filling the plot width."""
    plot = max(10, width - label_width - count_width)
    peak = int(corrections["count"].max()) if len(corrections) else 0
    bars = []
    for row, (given, suggested, count) in enumerate(
            zip(corrections["given_label"], corrections["suggested_label"], corrections["count"])):
        share = int(count) / peak if peak else 0.0
        y = float(row * (bar_height + gap))
        bars.append(Bar(label=f"{given} → {suggested}", count=int(count), y=y, text_y=round(y + 0.72 * bar_height, 1),
                        length=round(max(1.0, share * plot), 1), share=round(share, 4)))
    height = len(bars) * (bar_height + gap)
    return BarChart(bars=bars, width=width, height=height, label_width=label_width, bar_height=bar_height,
                    plot_width=plot)


@dataclass
class OntologyInsights:
    corrections: pd.DataFrame           # top_corrections rows
    chart: BarChart
    merges: list[dict]                  # merge_suggestions rows, each with "examples": [example rows]

    @property
    def empty(self) -> bool:
        return not len(self.corrections)


def ontology_insights(confusion: pd.DataFrame, class_sizes: pd.DataFrame, examples: pd.DataFrame | None = None,
                      *, top: int = 10, per_direction: int = 3, **merge_options) -> OntologyInsights:
    """The corrections chart and the merge suggestions, each merge with up to `per_direction` example
    samples per direction from `examples` (rows with given_label, suggested_label and whatever the
    page shows of a sample). `class_sizes`: columns label, n."""
    corrections = top_corrections(confusion, limit=top)
    sizes = dict(zip(class_sizes["label"].astype(str), class_sizes["n"].astype(int))) if len(class_sizes) else {}
    merges = merge_suggestions(confusion, sizes, **merge_options)
    found = [] if examples is None else examples.to_dict("records")
    out = []
    for merge in merges.to_dict("records"):
        picked = []
        for given, suggested in ((merge["class_a"], merge["class_b"]), (merge["class_b"], merge["class_a"])):
            same = [e for e in found if str(e["given_label"]) == given and str(e["suggested_label"]) == suggested]
            picked.extend(same[:per_direction])
        out.append({**merge, "examples": picked})
    return OntologyInsights(corrections, bar_chart(corrections), out)
