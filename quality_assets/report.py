"""`qaudit report`: one static, self-contained HTML page describing the latest score run.

Everything the page needs is inside the file: CSS and JS inline, thumbnails as base64 data URIs,
no fonts, scripts or images from the network, so it can be mailed, attached to a CI run or opened
from a file share. Data comes only through the public views (`issues`, `duplicate_pairs`,
`manifest`, `latest_gate_results`, `latest_score_run`) via the `sql/queries/report_*.sql` files.

Size is bounded independently of the dataset: each gallery carries its top `max_items` rows
(the first `per_page` rendered as HTML, the rest as JSON that a small inline script renders on
"Next page"), thumbnails exist for at most `thumbs_per_type` items per gallery and within
`thumb_budget_bytes` overall, and the confusion heat-map keeps the `max_classes` busiest labels.
The complete rankings stay in the database (`SELECT * FROM issues WHERE issue_type = ...`).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from quality_assets.store import Store, run_query
from quality_assets.thumbnails import thumbnail_data_uri

__all__ = ["write_report", "GALLERY_ORDER"]

# Galleries in reading order; `image_*` types present in the run follow, sorted by name.
GALLERY_ORDER: tuple[str, ...] = ("off_topic", "label_error", "near_duplicate", "leakage", "low_value")
PAIR_GALLERY = "near_duplicate"

_TITLES = {
    "off_topic": "Off-topic samples",
    "label_error": "Possible label errors",
    "near_duplicate": "Near-duplicate pairs",
    "leakage": "Leakage: evaluation samples duplicated in train",
    "low_value": "Low-value training samples",
}
_BLURBS = {
    "off_topic": "Samples far from the rest of the data in embedding space (lower score = more isolated).",
    "label_error": "Samples whose neighbours mostly carry another label; the suggestion is the neighbours' vote.",
    "near_duplicate": "Candidate duplicate pairs from the kNN graph, flagged pairs first, then by rank "
                      "(lower score = more alike).",
    "leakage": "Validation/test samples with a flagged near-duplicate in train, shown next to that partner.",
    "low_value": "Training samples that contribute least to classifying the evaluation split (KNN-Shapley).",
}


@dataclass
class _Gallery:
    key: str
    title: str
    blurb: str
    n_scored: int
    n_flagged: int
    items: list[dict[str, Any]]


@dataclass
class _ReportData:
    run: dict[str, Any] | None
    split_counts: pd.DataFrame
    rejected: int
    gates: pd.DataFrame
    issue_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    pair_counts: tuple[int, int] = (0, 0)
    galleries: list[_Gallery] = field(default_factory=list)
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)
    sample_issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    # sample id -> (data_root, path): where its thumbnail is read from
    roots: dict[str, tuple[str, str]] = field(default_factory=dict)
    note: str | None = None


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
    data = _read(store, max_items=max_items)
    thumbs = _thumbnails(data, per_page=per_page, thumbs_per_type=thumbs_per_type,
                         budget=thumb_budget_bytes, size=thumb_size)
    page = _render(data, thumbs, per_page=per_page, thumb_size=thumb_size,
                   max_classes=max_classes, max_confusion_rows=max_confusion_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target then renamed, so a browser or web server never sees half a page.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, out)
    return out


# --------------------------------------------------------------------------- reading


def _read(store: Store, *, max_items: int) -> _ReportData:
    empty = pd.DataFrame()
    if not store.db_path.exists():
        # Creating a database just to report that it is empty would leave a stray file behind.
        return _ReportData(run=None, split_counts=empty, rejected=0, gates=empty,
                           note=f"No quality database at {store.db_path}.")
    with store.connect(read_only=True) as conn:
        runs = run_query(conn, "report_latest_run")
        data = _ReportData(
            run=_records(runs)[0] if len(runs) else None,
            split_counts=run_query(conn, "report_split_counts"),
            rejected=int(run_query(conn, "report_rejected_count")["n"].iloc[0]),
            gates=run_query(conn, "report_gates"),
        )
        if data.run is None:
            return data
        data.issue_counts = run_query(conn, "report_issue_counts")
        pairs = run_query(conn, "report_pair_counts")
        data.pair_counts = (int(pairs["n_scored"].iloc[0]), int(pairs["n_flagged"].iloc[0]))
        counts = {row["issue_type"]: row for row in _records(data.issue_counts)}
        present = list(counts)
        keys = [k for k in GALLERY_ORDER if k in present or (k == PAIR_GALLERY and data.pair_counts[0])]
        keys += sorted(k for k in present if k.startswith("image_"))
        for key in keys:
            if key == PAIR_GALLERY:
                items = [_pair_item(row, data.roots)
                         for row in _records(run_query(conn, "report_pair_items", limit=max_items))]
                n_scored, n_flagged = data.pair_counts
            else:
                rows = _records(run_query(conn, "report_gallery_items", issue_type=key, limit=max_items))
                items = [_issue_item(row, data.roots) for row in rows]
                n_scored, n_flagged = int(counts[key]["n_scored"]), int(counts[key]["n_flagged"])
            data.galleries.append(_Gallery(key, _title(key), _blurb(key), n_scored, n_flagged, items))
        data.confusion = run_query(conn, "report_confusion")
        ids = _ordered_ids(item for g in data.galleries for item in g.items)
        if ids:
            data.sample_issues = _sample_issues(run_query(conn, "report_sample_issues", sample_ids=ids))
    return data


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # NaN/NA -> None once here, so rendering never has to tell pandas' missing markers apart.
    return [{k: (None if _missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else round(number, digits)


def _issue_item(row: dict[str, Any], roots: dict[str, tuple[str, str]]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row["sample_id"], "p": row["path"], "sp": row["split"], "l": row["label"],
        "s": _num(row["score"]), "r": int(row["rank"]) if row["rank"] is not None else None,
        "f": bool(row["is_issue"]),
    }
    roots[row["sample_id"]] = (row["data_root"], row["path"])
    if row["suggested_label"] is not None:
        item["g"] = row["suggested_label"]
        item["c"] = _num(row["confidence"], 3)
    if row["partner_id"] is not None:
        item.update(id2=row["partner_id"], p2=row["partner_path"], sp2=row["partner_split"],
                    l2=row["partner_label"])
        roots[row["partner_id"]] = (row["partner_data_root"], row["partner_path"])
    return item


def _pair_item(row: dict[str, Any], roots: dict[str, tuple[str, str]]) -> dict[str, Any]:
    roots[row["sample_a"]] = (row["data_root_a"], row["path_a"])
    roots[row["sample_b"]] = (row["data_root_b"], row["path_b"])
    return {
        "id": row["sample_a"], "p": row["path_a"], "sp": row["split_a"], "l": row["label_a"],
        "id2": row["sample_b"], "p2": row["path_b"], "sp2": row["split_b"], "l2": row["label_b"],
        "s": _num(row["score"]), "r": int(row["rank"]) if row["rank"] is not None else None,
        "f": bool(row["is_issue"]), "d": _num(row["distance"]), "e": row["evidence"],
    }


def _item_ids(item: dict[str, Any]) -> list[str]:
    return [item["id"], item["id2"]] if item.get("id2") else [item["id"]]


def _ordered_ids(items: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(i for item in items for i in _item_ids(item)))


def _sample_issues(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = {}
    for row in _records(frame):
        entry = samples.setdefault(row["sample_id"], {
            "p": row["path"], "sp": row["split"], "l": row["label"], "iss": []})
        entry["iss"].append((row["issue_type"], _num(row["score"]),
                             int(row["rank"]) if row["rank"] is not None else None, bool(row["is_issue"])))
    return samples


def _title(key: str) -> str:
    return _TITLES.get(key) or "Image check: " + key.removeprefix("image_").replace("_", " ")


def _blurb(key: str) -> str:
    return _BLURBS.get(key) or f"Cheap per-image property check `{key}` (lower score = more extreme)."


# --------------------------------------------------------------------------- thumbnails


def _thumbnails(data: _ReportData, *, per_page: int, thumbs_per_type: int, budget: int,
                size: int) -> dict[str, str]:
    """Data URIs by sample id: every first-page image, then later pages round-robin within budget."""
    first = _ordered_ids(item for g in data.galleries for item in g.items[:per_page])
    later: list[dict[str, Any]] = []
    for position in range(per_page, max(per_page, thumbs_per_type)):
        later.extend(g.items[position] for g in data.galleries if position < len(g.items))
    rest = [i for i in _ordered_ids(later) if i not in set(first)]

    thumbs: dict[str, str] = {}
    used = 0
    workers = max(1, min(4, os.cpu_count() or 1))

    def make(sample_id: str) -> str | None:
        if sample_id not in data.roots:
            return None
        root, path = data.roots[sample_id]
        return thumbnail_data_uri(root, path, size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # The first pages are drawn as HTML, so they are not subject to the budget.
        for sample_id, uri in zip(first, pool.map(make, first)):
            if uri:
                thumbs[sample_id] = uri
                used += len(uri)
        chunk = 64
        for start in range(0, len(rest), chunk):
            if used >= budget:
                break
            block = rest[start:start + chunk]
            for sample_id, uri in zip(block, pool.map(make, block)):
                if uri and used + len(uri) <= budget:
                    thumbs[sample_id] = uri
                    used += len(uri)
    return thumbs


# --------------------------------------------------------------------------- rendering


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
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


def _thumb_html(sample_id: str, path: str | None, thumbs: dict[str, str]) -> str:
    uri = thumbs.get(sample_id)
    if uri is None:
        return '<div class="noimg" title="no thumbnail (unreadable or over the size budget)">no preview</div>'
    return f'<img src="{uri}" alt="{_e(path)}">'


def _side_html(sample_id: str, path: str, split: str | None, label: str | None, thumbs: dict[str, str]) -> str:
    return (f'<div class="side"><a class="thumb" href="#sample-{_e(sample_id)}">{_thumb_html(sample_id, path, thumbs)}</a>'
            f'<a class="path" href="#sample-{_e(sample_id)}" title="{_e(path)}">{_e(path)}</a>'
            f'<div class="meta">{_e(split)} · label <b>{_e(label if label is not None else "(none)")}</b></div></div>')


def _card_html(item: dict[str, Any], thumbs: dict[str, str]) -> str:
    """Server-side twin of the script's `card()`: keep both in step."""
    sides = _side_html(item["id"], item["p"], item["sp"], item["l"], thumbs)
    if item.get("id2"):
        sides += _side_html(item["id2"], item["p2"], item["sp2"], item["l2"], thumbs)
    facts = [f'score <b>{_fmt(item["s"])}</b>']
    if item.get("d") is not None:
        facts.append(f'distance {_fmt(item["d"])}')
    if item.get("e"):
        facts.append(_e(item["e"]))
    if item.get("g") is not None:
        conf = f' ({_fmt(item["c"], 2)})' if item.get("c") is not None else ""
        facts.append(f'suggested <b class="sugg">{_e(item["g"])}</b>{conf}')
    flag = '<span class="flag">flagged</span>' if item["f"] else ""
    pair = " pair" if item.get("id2") else ""
    state = " flagged" if item["f"] else ""
    return (f'<article class="card{pair}{state}" data-id="{_e(item["id"])}">'
            f'<div class="head"><span class="rank">#{_e(item["r"])}</span>{flag}</div>'
            f'<div class="sides">{sides}</div><div class="facts">{" · ".join(facts)}</div></article>')


def _sample_html(sample_id: str, sample: dict[str, Any], gallery_keys: set[str]) -> str:
    """Server-side twin of the script's `sampleHtml()`."""
    rows = []
    for issue_type, score, rank, flagged in sample["iss"]:
        name = (f'<a href="#gallery-{_e(issue_type)}">{_e(issue_type)}</a>' if issue_type in gallery_keys
                else _e(issue_type))
        rows.append(f'<tr class="{"flagged" if flagged else ""}"><td>{name}</td><td>{_fmt(score)}</td>'
                    f'<td>{_fmt(rank)}</td><td>{"flagged" if flagged else ""}</td></tr>')
    return (f'<div class="sample" id="sample-{_e(sample_id)}"><div class="shead"><code>{_e(sample["p"])}</code>'
            f' · {_e(sample["sp"])} · label <b>{_e(sample["l"] if sample["l"] is not None else "(none)")}</b></div>'
            f'<table><thead><tr><th>issue type</th><th>score</th><th>rank</th><th></th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _figure(value: Any, caption: str, key: str) -> str:
    return (f'<div class="fig"><div class="num" data-count="{_e(key)}">{_fmt(value)}</div>'
            f'<div class="cap">{_e(caption)}</div></div>')


def _summary_html(data: _ReportData) -> str:
    splits = {row["split"]: int(row["n"]) for row in _records(data.split_counts)} if len(data.split_counts) else {}
    figures = [_figure(sum(splits.values()), "samples", "samples")]
    figures += [_figure(n, f"{split} samples", f"split-{split}") for split, n in splits.items()]
    figures.append(_figure(data.rejected, "rejected files", "rejected"))
    if data.run is not None:
        figures.append(_figure(data.pair_counts[1], f"flagged duplicate pairs (of {data.pair_counts[0]:,})",
                               "pairs-flagged"))
    parts = [f'<section id="summary"><h2>Summary</h2><div class="figs">{"".join(figures)}</div>']
    if data.run is not None and len(data.issue_counts):
        gallery_keys = {g.key for g in data.galleries}
        rows = []
        for row in _records(data.issue_counts):
            key, scored, flagged = row["issue_type"], int(row["n_scored"]), int(row["n_flagged"])
            name = f'<a href="#gallery-{_e(key)}">{_e(key)}</a>' if key in gallery_keys else _e(key)
            rate = f"{100 * flagged / scored:.1f}%" if scored else "–"
            rows.append(f'<tr><td>{name}</td><td class="n" data-count="flagged-{_e(key)}">{flagged:,}</td>'
                        f'<td class="n" data-count="scored-{_e(key)}">{scored:,}</td><td class="n">{rate}</td></tr>')
        parts.append('<table class="counts"><thead><tr><th>issue type</th><th>flagged</th><th>scored</th>'
                     f'<th>flagged %</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    parts.append("</section>")
    return "".join(parts)


def _gates_html(gates: pd.DataFrame) -> str:
    if not len(gates):
        return '<section id="gates"><h2>Gates</h2><p class="muted">No gate has been evaluated yet.</p></section>'
    rows = []
    for row in _records(gates):
        status = ('<span class="pass">pass</span>' if row["passed"] else
                  '<span class="fail">FAIL</span>' if row["blocking"] is None or bool(row["blocking"]) else '<span class="warn">fail (warning)</span>')
        rows.append(f'<tr data-gate="{_e(row["gate"])}"><td>{_e(row["gate"])}</td><td>{status}</td>'
                    f'<td class="n">{_fmt(row["value"])}</td><td class="n">{_fmt(row["threshold"])}</td>'
                    f'<td>{_e(row["message"])}</td><td class="muted">{_e(row["evaluated_at"])}</td></tr>')
    return ('<section id="gates"><h2>Gates</h2><table class="gates"><thead><tr><th>gate</th><th>status</th>'
            '<th>value</th><th>threshold</th><th>message</th><th>evaluated</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _gallery_html(gallery: _Gallery, thumbs: dict[str, str], per_page: int) -> str:
    shown = gallery.items[:per_page]
    cards = "".join(_card_html(item, thumbs) for item in shown)
    unit = "pairs" if gallery.key == PAIR_GALLERY else "samples"
    cap = ("" if len(gallery.items) >= gallery.n_scored else
           f' (the report carries the top {len(gallery.items):,}; query the <code>issues</code> / '
           f'<code>duplicate_pairs</code> views for the rest)')
    more = len(gallery.items) > len(shown)
    button = (f'<button type="button" class="next" data-gallery="{_e(gallery.key)}">Next page ›</button>'
              if more else "")
    empty = '<p class="muted">Nothing scored.</p>' if not shown else ""
    return (f'<section class="gallery" id="gallery-{_e(gallery.key)}" data-gallery="{_e(gallery.key)}" '
            f'data-shown="{len(shown)}" data-total="{len(gallery.items)}">'
            f'<h2>{_e(gallery.title)} <span class="badge">{gallery.n_flagged:,} flagged / {gallery.n_scored:,} {unit}</span></h2>'
            f'<p class="blurb">{_e(gallery.blurb)}</p>{empty}<div class="cards">{cards}</div>'
            f'<div class="pager"><span class="shown">Showing 1–{len(shown):,} of {len(gallery.items):,}</span>{cap}'
            f'{button}</div></section>')


def _confusion_html(confusion: pd.DataFrame, max_classes: int, max_rows: int) -> str:
    head = '<section id="confusion"><h2>Class confusion (given → suggested)</h2>'
    if not len(confusion):
        return head + '<p class="muted">No flagged label error suggests another class.</p></section>'
    rows = _records(confusion)
    involvement: dict[str, int] = {}
    for row in rows:
        for label in (row["given_label"], row["suggested_label"]):
            involvement[str(label)] = involvement.get(str(label), 0) + int(row["count"])
    # Busiest classes only: an ImageNet-sized grid would be a million cells nobody can read.
    labels = sorted(sorted(involvement), key=lambda k: -involvement[k])[:max_classes]
    keep = set(labels)
    labels.sort()
    cells = {(str(r["given_label"]), str(r["suggested_label"])): int(r["count"]) for r in rows
             if str(r["given_label"]) in keep and str(r["suggested_label"]) in keep}
    peak = max(cells.values(), default=1)
    grid = ['<div class="corner">given ↓ suggested →</div>']
    grid += [f'<div class="colh" title="{_e(label)}"><span>{_e(label)}</span></div>' for label in labels]
    for given in labels:
        grid.append(f'<div class="rowh" title="{_e(given)}">{_e(given)}</div>')
        for suggested in labels:
            count = cells.get((given, suggested), 0)
            if given == suggested:
                grid.append('<div class="cell diag"></div>')
            elif count:
                alpha = 0.15 + 0.85 * count / peak
                ink = "#fff" if alpha > 0.55 else "#222"
                grid.append(f'<div class="cell" style="background:rgba(200,40,40,{alpha:.2f});color:{ink}" '
                            f'title="{_e(given)} → {_e(suggested)}: {count}">{count}</div>')
            else:
                grid.append(f'<div class="cell" title="{_e(given)} → {_e(suggested)}: 0"></div>')
    note = (f'<p class="muted">Grid limited to the {len(labels)} most confused of {len(involvement)} classes.</p>'
            if len(involvement) > len(labels) else "")
    table_rows = "".join(
        f'<tr><td>{_e(r["given_label"])}</td><td>{_e(r["suggested_label"])}</td><td class="n">{int(r["count"]):,}</td></tr>'
        for r in rows[:max_rows])
    more = f'<p class="muted">Top {max_rows} of {len(rows)} rows.</p>' if len(rows) > max_rows else ""
    return (head + f'<div class="heat" style="grid-template-columns:max-content repeat({len(labels)}, 2.4em)">'
            f'{"".join(grid)}</div>{note}<table class="confusion"><thead><tr><th>given</th><th>suggested</th>'
            f'<th>count</th></tr></thead><tbody>{table_rows}</tbody></table>{more}</section>')


def _json_script(payload: Any) -> str:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "</" would end the script element early; "<!--" can switch the parser into escaped mode.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _render(data: _ReportData, thumbs: dict[str, str], *, per_page: int, thumb_size: int,
            max_classes: int, max_confusion_rows: int) -> str:
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body: list[str] = []
    nav = ['<a href="#summary">Summary</a>', '<a href="#gates">Gates</a>']
    if data.run is None:
        meta = f"generated {generated}"
        reason = _e(data.note) + " " if data.note else ""
        body.append('<section id="no-run" class="notice"><h2>No score run yet</h2>'
                    f'<p>{reason}This quality home has no score run, so there are no issues to show. '
                    'Run <code>qaudit audit DATA_DIR</code> (or materialise the scoring assets in Dagster), '
                    'then <code>qaudit report</code> again.</p></section>')
        body.append(_summary_html(data))
        body.append(_gates_html(data.gates))
        payload: dict[str, Any] = {"per_page": per_page, "galleries": {}, "thumbs": {}, "samples": {}, "types": []}
    else:
        run = data.run
        model = f' · model <code>{_e(run["model_version"])}</code>' if run.get("model_version") else ""
        meta = (f'score run <code>{_e(run["score_version"])}</code> · created {_e(run["created_at"])}'
                f'{model} · generated {generated}')
        nav += [f'<a href="#gallery-{_e(g.key)}">{_e(g.key)}</a>' for g in data.galleries]
        nav += ['<a href="#confusion">Confusion</a>', '<a href="#samples">Samples</a>']
        body.append(_summary_html(data))
        body.append(_gates_html(data.gates))
        body.extend(_gallery_html(g, thumbs, per_page) for g in data.galleries)
        body.append(_confusion_html(data.confusion, max_classes, max_confusion_rows))

        gallery_keys = {g.key for g in data.galleries}
        first_ids = _ordered_ids(item for g in data.galleries for item in g.items[:per_page])
        later_ids = _ordered_ids(item for g in data.galleries for item in g.items[per_page:])
        samples_html = "".join(_sample_html(i, data.sample_issues[i], gallery_keys)
                               for i in first_ids if i in data.sample_issues)
        body.append('<section id="samples"><h2>Samples</h2><p class="blurb">Every issue type of each sample '
                    'shown above; cards link here. Samples of later pages are added as the pages open.</p>'
                    f'<div id="samples-list">{samples_html}</div></section>')

        types = sorted({t for s in data.sample_issues.values() for t, *_ in s["iss"]})
        type_index = {t: n for n, t in enumerate(types)}
        first = set(first_ids)
        payload = {
            "per_page": per_page,
            "types": types,
            "gallery_keys": sorted(gallery_keys),
            "galleries": {g.key: {"rest": g.items[per_page:]} for g in data.galleries},
            # Only what later pages need: first-page images are already inline in the HTML.
            "thumbs": {i: thumbs[i] for i in later_ids if i in thumbs},
            "samples": {i: [s["p"], s["sp"], s["l"], [[type_index[t], sc, r, int(f)] for t, sc, r, f in s["iss"]]]
                        for i in later_ids if i not in first and (s := data.sample_issues.get(i))},
        }
    return _PAGE.format(
        css=_CSS.replace("--THUMB--", f"{int(thumb_size)}px"),
        meta=meta,
        nav=" ".join(nav),
        body="\n".join(body),
        data=_json_script(payload),
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Image data-quality report</title>
<style>{css}</style>
</head>
<body>
<header><h1>Image data-quality report</h1><p class="meta">{meta}</p><nav>{nav}</nav></header>
<div id="broken-warning" class="notice" hidden></div>
<main>
{body}
</main>
<pre id="report-check" hidden>{{}}</pre>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_CSS = """
:root { --thumb: --THUMB--; --ink: #1d2330; --muted: #6b7280; --line: #e3e6eb; --bad: #c62828; --ok: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 14px 24px; position: sticky; top: 0; z-index: 2; }
header h1 { margin: 0 0 2px; font-size: 20px; }
header .meta { margin: 0 0 6px; color: #c9cfd9; font-size: 12px; }
header code { color: #fff; }
nav a { color: #9fc3ff; margin-right: 12px; text-decoration: none; font-size: 13px; }
main { padding: 8px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 16px 0; padding: 12px 16px; scroll-margin-top: 90px; }
h2 { font-size: 17px; margin: 4px 0 8px; }
.badge { font-size: 12px; font-weight: normal; background: #eef1f5; border-radius: 10px; padding: 2px 8px; color: var(--muted); }
.blurb, .muted { color: var(--muted); }
.notice { background: #fff8e1; border: 1px solid #f0c36d; border-radius: 8px; padding: 12px 16px; margin: 16px 24px; }
.figs { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 12px; }
.fig { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.fig .num { font-size: 22px; font-weight: 600; }
.fig .cap { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: var(--ok); font-weight: 600; } .fail { color: var(--bad); font-weight: 700; } .warn { color: #b26a00; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px; width: calc(var(--thumb) + 150px); background: #fff; }
.card.pair { width: calc(2 * var(--thumb) + 190px); }
.card.flagged { border-color: #e9a0a0; box-shadow: inset 3px 0 0 var(--bad); }
.card .head { display: flex; justify-content: space-between; font-size: 12px; color: var(--muted); }
.flag { color: var(--bad); font-weight: 600; }
.sides { display: flex; gap: 8px; }
.side { flex: 1; min-width: 0; }
.thumb { display: block; width: var(--thumb); height: var(--thumb); }
.thumb img { width: var(--thumb); height: var(--thumb); object-fit: contain; image-rendering: pixelated; background: #eee; border-radius: 4px; }
.noimg { width: var(--thumb); height: var(--thumb); display: flex; align-items: center; justify-content: center; background: #eee; color: var(--muted); font-size: 10px; border-radius: 4px; text-align: center; }
.path { display: block; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; color: #1a56c4; text-decoration: none; }
.meta { font-size: 12px; color: var(--muted); }
.facts { font-size: 12px; margin-top: 4px; }
.sugg { color: var(--bad); }
.pager { margin-top: 10px; color: var(--muted); font-size: 13px; }
.pager button { margin-left: 12px; padding: 4px 12px; border: 1px solid #9aa4b2; border-radius: 6px; background: #fff; cursor: pointer; }
.heat { display: grid; gap: 2px; margin: 8px 0 14px; align-items: end; overflow-x: auto; padding: 0 90px 4px 0; width: max-content; max-width: 100%; }
.heat .corner { font-size: 11px; color: var(--muted); padding-right: 8px; }
.heat .colh { height: 120px; position: relative; }
.heat .colh span { position: absolute; left: 50%; bottom: 2px; transform-origin: left bottom; transform: rotate(-60deg); white-space: nowrap; font-size: 11px; max-width: 130px; overflow: hidden; text-overflow: ellipsis; }
.heat .rowh { font-size: 11px; padding-right: 8px; text-align: right; white-space: nowrap; max-width: 160px; overflow: hidden; text-overflow: ellipsis; }
.heat .cell { height: 2.4em; background: #f3f4f6; font-size: 11px; display: flex; align-items: center; justify-content: center; border-radius: 2px; }
.heat .cell.diag { background: repeating-linear-gradient(45deg, #e5e7eb, #e5e7eb 3px, #f3f4f6 3px, #f3f4f6 6px); }
#samples-list { display: flex; flex-wrap: wrap; gap: 10px; }
.sample { border: 1px solid var(--line); border-radius: 8px; padding: 6px 10px; font-size: 12px; min-width: 280px; scroll-margin-top: 110px; }
.sample:target { outline: 3px solid #f0c36d; }
.sample tr.flagged td { color: var(--bad); }
"""

# Renders later pages from #report-data; `card()` and `sampleHtml()` mirror _card_html/_sample_html.
# On load and whenever an image settles it records what a reader sees into #report-check (image and
# card counts) and warns visibly if any thumbnail failed to decode.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var perPage = data.per_page;
  var galleryKeys = {};
  (data.gallery_keys || []).forEach(function (k) { galleryKeys[k] = true; });
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"};
  function esc(v) { return (v === null || v === undefined ? "" : String(v)).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function fmt(v, digits) {
    if (v === null || v === undefined) return "\u2013";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    var s = v.toFixed(digits === undefined ? 4 : digits).replace(/0+$/, "").replace(/\.$/, "");
    return s === "" || s === "-0" ? "0" : s;
  }
  function thumb(id, path) {
    var uri = data.thumbs[id];
    if (!uri) return '<div class="noimg" title="no thumbnail (unreadable or over the size budget)">no preview</div>';
    return '<img src="' + uri + '" alt="' + esc(path) + '">';
  }
  function side(id, path, split, label) {
    return '<div class="side"><a class="thumb" href="#sample-' + esc(id) + '">' + thumb(id, path) + '</a>' +
      '<a class="path" href="#sample-' + esc(id) + '" title="' + esc(path) + '">' + esc(path) + '</a>' +
      '<div class="meta">' + esc(split) + ' \u00b7 label <b>' + esc(label === null ? "(none)" : label) + '</b></div></div>';
  }
  function card(it) {
    var sides = side(it.id, it.p, it.sp, it.l);
    if (it.id2) sides += side(it.id2, it.p2, it.sp2, it.l2);
    var facts = ['score <b>' + fmt(it.s) + '</b>'];
    if (it.d !== undefined && it.d !== null) facts.push('distance ' + fmt(it.d));
    if (it.e) facts.push(esc(it.e));
    if (it.g !== undefined && it.g !== null) {
      facts.push('suggested <b class="sugg">' + esc(it.g) + '</b>' + (it.c !== undefined && it.c !== null ? ' (' + fmt(it.c, 2) + ')' : ''));
    }
    return '<article class="card' + (it.id2 ? ' pair' : '') + (it.f ? ' flagged' : '') + '" data-id="' + esc(it.id) + '">' +
      '<div class="head"><span class="rank">#' + esc(it.r) + '</span>' + (it.f ? '<span class="flag">flagged</span>' : '') + '</div>' +
      '<div class="sides">' + sides + '</div><div class="facts">' + facts.join(' \u00b7 ') + '</div></article>';
  }
  function sampleHtml(id, s) {
    var rows = s[3].map(function (row) {
      var type = data.types[row[0]];
      var name = galleryKeys[type] ? '<a href="#gallery-' + esc(type) + '">' + esc(type) + '</a>' : esc(type);
      return '<tr class="' + (row[3] ? 'flagged' : '') + '"><td>' + name + '</td><td>' + fmt(row[1]) + '</td><td>' +
        fmt(row[2]) + '</td><td>' + (row[3] ? 'flagged' : '') + '</td></tr>';
    }).join('');
    return '<div class="sample" id="sample-' + esc(id) + '"><div class="shead"><code>' + esc(s[0]) + '</code> \u00b7 ' +
      esc(s[1]) + ' \u00b7 label <b>' + esc(s[2] === null ? "(none)" : s[2]) + '</b></div>' +
      '<table><thead><tr><th>issue type</th><th>score</th><th>rank</th><th></th></tr></thead><tbody>' + rows + '</tbody></table></div>';
  }
  function addSample(id) {
    if (!id || document.getElementById("sample-" + id) || !data.samples[id]) return;
    document.getElementById("samples-list").insertAdjacentHTML("beforeend", sampleHtml(id, data.samples[id]));
  }
  function nextPage(key) {
    var section = document.getElementById("gallery-" + key);
    var shown = parseInt(section.dataset.shown, 10);
    var total = parseInt(section.dataset.total, 10);
    var rest = data.galleries[key].rest;
    var page = rest.slice(shown - perPage, shown - perPage + perPage);
    section.querySelector(".cards").insertAdjacentHTML("beforeend", page.map(card).join(""));
    page.forEach(function (it) { addSample(it.id); addSample(it.id2); });
    shown += page.length;
    section.dataset.shown = String(shown);
    section.querySelector(".shown").textContent = "Showing 1\u2013" + shown.toLocaleString("en-US") + " of " + total.toLocaleString("en-US");
    if (shown >= total) { var b = section.querySelector("button.next"); if (b) b.remove(); }
    check();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.next");
    if (button) nextPage(button.dataset.gallery);
  });
  function check() {
    var images = Array.prototype.slice.call(document.querySelectorAll("img"));
    var broken = images.filter(function (i) { return i.complete && i.naturalWidth === 0; });
    var cards = {};
    document.querySelectorAll("section.gallery").forEach(function (s) { cards[s.dataset.gallery] = s.querySelectorAll(".card").length; });
    document.getElementById("report-check").textContent = JSON.stringify({
      images: images.length,
      decoded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
      pending: images.filter(function (i) { return !i.complete; }).length,
      broken: broken.length,
      min_natural_width: images.reduce(function (m, i) { return Math.min(m, i.naturalWidth); }, images.length ? Infinity : 0),
      cards: cards,
      samples: document.querySelectorAll("#samples-list .sample").length
    });
    var warning = document.getElementById("broken-warning");
    warning.hidden = broken.length === 0;
    warning.textContent = broken.length ? broken.length + " thumbnail(s) failed to decode." : "";
  }
  window.addEventListener("load", check);
  document.addEventListener("load", function (e) { if (e.target.tagName === "IMG") check(); }, true);
  document.addEventListener("error", function (e) { if (e.target.tagName === "IMG") check(); }, true);
  check();
})();
"""
