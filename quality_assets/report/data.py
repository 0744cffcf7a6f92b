"""The report's data: read the public views (`sql/queries/report_*.sql`) and shape them for the page.

Everything here is plain Python (dicts, lists, numbers); `render.py` turns it into HTML through
the jinja2 templates. Item dicts use short keys because the same dicts travel as the page's JSON
for later gallery pages (`id`/`p`/`sp`/`l` sample id, path, split, label; `id2`/... the partner;
`s` score, `r` rank, `f` flagged, `g`/`c` suggestion and confidence, `d` distance, `e` evidence).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quality_assets.consumer_results import ConsumerSummary, read_latest_consumer_result
from quality_assets.report.sections import Section, sections_for
from quality_assets.scores.ontology import OntologyInsights, ontology_insights
from quality_assets.store import Store, run_query
from quality_assets.thumbnails import thumbnail_data_uri


@dataclass
class Gallery:
    section: Section
    items: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return self.section.name


@dataclass
class ReportData:
    run: dict[str, Any] | None
    split_counts: dict[str, int]
    rejected: int
    gates: list[dict[str, Any]]
    issue_counts: list[dict[str, Any]] = field(default_factory=list)
    pair_counts: tuple[int, int] = (0, 0)
    galleries: list[Gallery] = field(default_factory=list)
    confusion: list[dict[str, Any]] = field(default_factory=list)
    ontology: OntologyInsights | None = None
    sample_issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    # sample id -> (data_root, path): where its thumbnail is read from
    roots: dict[str, tuple[str, str]] = field(default_factory=dict)
    note: str | None = None
    consumer: ConsumerSummary | None = None   # the newest training consumer run


def read_report_data(store: Store, *, max_items: int) -> ReportData:
    if not store.db_path.exists():
        # Creating a database just to report that it is empty would leave a stray file behind.
        return ReportData(run=None, split_counts={}, rejected=0, gates=[],
                          note=f"No quality database at {store.db_path}.")
    with store.connect(read_only=True) as conn:
        runs = records(run_query(conn, "report_latest_run"))
        data = ReportData(
            run=runs[0] if runs else None,
            split_counts={r["split"]: int(r["n"]) for r in records(run_query(conn, "report_split_counts"))},
            rejected=int(run_query(conn, "report_rejected_count")["n"].iloc[0]),
            gates=records(run_query(conn, "report_gates")),
            consumer=read_latest_consumer_result(conn),
        )
        if data.run is None:
            return data
        data.issue_counts = records(run_query(conn, "report_issue_counts"))
        pairs = run_query(conn, "report_pair_counts")
        data.pair_counts = (int(pairs["n_scored"].iloc[0]), int(pairs["n_flagged"].iloc[0]))
        counts = {r["issue_type"]: (int(r["n_scored"]), int(r["n_flagged"])) for r in data.issue_counts}
        for section in sections_for(counts, pair_counts=data.pair_counts):
            if section.gallery == "pairs":
                rows = records(run_query(conn, "report_pair_items", limit=max_items))
                items = [pair_item(row, data.roots) for row in rows]
            else:
                rows = records(run_query(conn, "report_gallery_items", issue_type=section.name, limit=max_items))
                items = [issue_item(row, data.roots) for row in rows]
            if items:
                data.galleries.append(Gallery(section, items))
        data.confusion = records(run_query(conn, "report_confusion"))
        data.ontology = read_ontology(conn, data.confusion, data.roots)
        ids = ordered_ids(item for g in data.galleries for item in g.items)
        if ids:
            data.sample_issues = _sample_issues(run_query(conn, "report_sample_issues", sample_ids=ids))
    return data


ONTOLOGY_TOP = 10          # bars in the corrections chart
ONTOLOGY_EXAMPLES = 3      # example samples per direction of a merge suggestion


def read_ontology(conn: Any, confusion: list[dict[str, Any]],
                  roots: dict[str, tuple[str, str]]) -> OntologyInsights | None:
    """The ontology insights of the latest score run (None without corrections); example samples'
    thumbnails are read from `roots`, which this fills."""
    frame = pd.DataFrame(confusion, columns=["given_label", "suggested_label", "count"])
    if frame.empty:
        return None
    examples = run_query(conn, "ontology_examples", per_pair=ONTOLOGY_EXAMPLES)
    insights = ontology_insights(frame, run_query(conn, "ontology_class_sizes"), examples,
                                 top=ONTOLOGY_TOP, per_direction=ONTOLOGY_EXAMPLES)
    for merge in insights.merges:
        for example in merge["examples"]:
            roots[example["sample_id"]] = (example["data_root"], example["path"])
    return insights


def ontology_example_ids(data: "ReportData") -> list[str]:
    if data.ontology is None:
        return []
    return list(dict.fromkeys(e["sample_id"] for m in data.ontology.merges for e in m["examples"]))


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
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


def _rank(value: Any) -> int | None:
    return int(value) if value is not None else None


def issue_item(row: dict[str, Any], roots: dict[str, tuple[str, str]]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": row["sample_id"], "p": row["path"], "sp": row["split"], "l": row["label"],
        "s": _num(row["score"]), "r": _rank(row["rank"]), "f": bool(row["is_issue"]),
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


def pair_item(row: dict[str, Any], roots: dict[str, tuple[str, str]]) -> dict[str, Any]:
    roots[row["sample_a"]] = (row["data_root_a"], row["path_a"])
    roots[row["sample_b"]] = (row["data_root_b"], row["path_b"])
    return {
        "id": row["sample_a"], "p": row["path_a"], "sp": row["split_a"], "l": row["label_a"],
        "id2": row["sample_b"], "p2": row["path_b"], "sp2": row["split_b"], "l2": row["label_b"],
        "s": _num(row["score"]), "r": _rank(row["rank"]), "f": bool(row["is_issue"]),
        "d": _num(row["distance"]), "e": row["evidence"],
    }


def item_ids(item: dict[str, Any]) -> list[str]:
    return [item["id"], item["id2"]] if item.get("id2") else [item["id"]]


def ordered_ids(items: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(i for item in items for i in item_ids(item)))


def _sample_issues(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = {}
    for row in records(frame):
        entry = samples.setdefault(row["sample_id"], {
            "p": row["path"], "sp": row["split"], "l": row["label"], "iss": []})
        entry["iss"].append((row["issue_type"], _num(row["score"]), _rank(row["rank"]), bool(row["is_issue"])))
    return samples


def thumbnails(data: ReportData, *, per_page: int, thumbs_per_type: int, budget: int,
               size: int) -> dict[str, str]:
    """Data URIs by sample id: every first-page image, then later pages round-robin within budget."""
    first = ordered_ids(item for g in data.galleries for item in g.items[:per_page])
    first += [i for i in ontology_example_ids(data) if i not in set(first)]
    later: list[dict[str, Any]] = []
    for position in range(per_page, max(per_page, thumbs_per_type)):
        later.extend(g.items[position] for g in data.galleries if position < len(g.items))
    first_set = set(first)
    rest = [i for i in ordered_ids(later) if i not in first_set]

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


@dataclass
class ConfusionGrid:
    labels: list[str]
    cells: list[list[dict[str, Any]]]  # rows of {"count", "alpha", "ink", "diag"}
    n_classes: int
    rows: list[dict[str, Any]]
    n_rows: int


def confusion_grid(confusion: list[dict[str, Any]], max_classes: int, max_rows: int) -> ConfusionGrid | None:
    if not confusion:
        return None
    involvement: dict[str, int] = {}
    for row in confusion:
        for label in (row["given_label"], row["suggested_label"]):
            involvement[str(label)] = involvement.get(str(label), 0) + int(row["count"])
    # Busiest classes only: an ImageNet-sized grid would be a million cells nobody can read.
    labels = sorted(sorted(involvement), key=lambda k: -involvement[k])[:max_classes]
    keep = set(labels)
    labels.sort()
    counts = {(str(r["given_label"]), str(r["suggested_label"])): int(r["count"]) for r in confusion
              if str(r["given_label"]) in keep and str(r["suggested_label"]) in keep}
    peak = max(counts.values(), default=1)
    cells = []
    for given in labels:
        line = []
        for suggested in labels:
            count = counts.get((given, suggested), 0)
            alpha = 0.15 + 0.85 * count / peak if count else 0.0
            line.append({"given": given, "suggested": suggested, "count": count, "diag": given == suggested,
                         "alpha": f"{alpha:.2f}", "ink": "#fff" if alpha > 0.55 else "#222"})
        cells.append(line)
    return ConfusionGrid(labels, cells, len(involvement), confusion[:max_rows], len(confusion))


def page_payload(data: ReportData, thumbs: dict[str, str], per_page: int) -> dict[str, Any]:
    """What the page's script needs for later gallery pages (first-page images are inline already)."""
    if data.run is None:
        return {"per_page": per_page, "galleries": {}, "thumbs": {}, "samples": {}, "types": []}
    first_ids = ordered_ids(item for g in data.galleries for item in g.items[:per_page])
    later_ids = ordered_ids(item for g in data.galleries for item in g.items[per_page:])
    first = set(first_ids)
    types = sorted({t for s in data.sample_issues.values() for t, *_ in s["iss"]})
    type_index = {t: n for n, t in enumerate(types)}
    return {
        "per_page": per_page,
        "types": types,
        "gallery_keys": sorted(g.key for g in data.galleries),
        "galleries": {g.key: {"rest": g.items[per_page:]} for g in data.galleries},
        "thumbs": {i: thumbs[i] for i in later_ids if i in thumbs},
        "samples": {i: [s["p"], s["sp"], s["l"], [[type_index[t], sc, r, int(f)] for t, sc, r, f in s["iss"]]]
                    for i in later_ids if i not in first and (s := data.sample_issues.get(i))},
    }
