"""Render the report: the data from `data.py` through the jinja2 templates in `templates/`.

The page is self-contained: CSS and JS inline, thumbnails as base64 data URIs, no fonts, scripts
or images from the network, so it can be mailed, attached to a CI run or opened from a file share.
Size is bounded independently of the dataset: each gallery carries its top `max_items` rows (the
first `per_page` rendered as HTML, the rest as JSON that the page's script renders on "Next
page"), thumbnails exist for at most `thumbs_per_type` items per gallery and within
`thumb_budget_bytes` overall, and the confusion heat-map keeps the `max_classes` busiest labels
(the ontology insights chart shows the top corrections, the merge suggestions a few examples each).
The complete rankings stay in the database (`SELECT * FROM issues WHERE issue_type = ...`).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from quality_assets.consumer_results import EVAL_SETS
from quality_assets.report.data import (
    confusion_grid,
    ordered_ids,
    page_payload,
    read_report_data,
    thumbnails,
)
from quality_assets.store import Store


def fmt(value: Any, digits: int = 4) -> str:
    """A figure as people read it: thousands separators, trailing zeros dropped, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)


def json_script(payload: Any) -> Markup:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "</" would end the script element early; "<!--" can switch the parser into escaped mode.
    return Markup(text.replace("</", "<\\/").replace("<!--", "<\\!--"))


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("quality_assets.report", "templates"),
                      autoescape=select_autoescape(["html"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["num"] = fmt
    env.filters["json_script"] = json_script
    return env


def write_report(
    store: Store,
    out_path: Path | None = None,
    *,
    per_page: int = 50,
    thumb_size: int = 64,
    max_items: int = 1000,
    thumbs_per_type: int = 500,
    thumb_budget_bytes: int = 8_000_000,
    max_classes: int = 30,
    max_confusion_rows: int = 200,
) -> Path:
    """Write the report for the store's latest score run and return the HTML file's path.

    Default location: `<store.home>/report/index.html`. Nothing else is written next to it.
    """
    if per_page < 1 or max_items < 1:
        raise ValueError("per_page and max_items must be >= 1")
    out = Path(out_path) if out_path is not None else store.home / "report" / "index.html"
    data = read_report_data(store, max_items=max_items)
    thumbs = thumbnails(data, per_page=per_page, thumbs_per_type=thumbs_per_type,
                        budget=thumb_budget_bytes, size=thumb_size)
    page = environment().get_template("report.html").render(
        run=data.run, note=data.note,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        n_samples=sum(data.split_counts.values()), split_counts=data.split_counts, rejected=data.rejected,
        pair_counts=data.pair_counts, issue_counts=data.issue_counts, gates=data.gates,
        galleries=data.galleries, gallery_keys={g.key for g in data.galleries}, per_page=per_page,
        thumbs=thumbs, thumb_px=f"{int(thumb_size)}px",
        confusion=confusion_grid(data.confusion, max_classes, max_confusion_rows) if data.run else None,
        ontology=data.ontology,
        consumer=data.consumer, eval_sets=EVAL_SETS,
        first_ids=ordered_ids(item for g in data.galleries for item in g.items[:per_page]),
        sample_issues=data.sample_issues,
        payload=page_payload(data, thumbs, per_page),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target then renamed, so a browser or web server never sees half a page.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, out)
    return out
