"""The static HTML report, end to end: real DuckDB store, real PNG files, real headless Chromium.

The store is filled through the base tables so the public views return known content (two score
runs, of which only the newer may show), then the page is checked as a file (self-contained, paged
data bounded) and as a person would see it in Chromium (thumbnails decoded, figures equal to the
database, "Next page" adds cards whose links resolve).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from quality_assets.report import write_report
from quality_assets.store import Store, insert_df
from quality_tests import browser
from quality_tests.imagefolders import distinct_image

PER_PAGE = 5
GALLERIES = ["off_topic", "label_error", "near_duplicate", "leakage", "low_value", "image_dark",
             "off_topic_knn_baseline"]
NEW_RUN, OLD_RUN = "score-new-0001", "score-old-0001"
T0 = datetime(2024, 6, 1, 12, 0, 0)


def _sid(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:20]


def _write_images(data_root: Path) -> list[dict[str, Any]]:
    """31 manifest rows: 30 real PNGs plus one whose file is gone (its thumbnail must degrade)."""
    layout = [("train", "cat", 10), ("train", "dog", 10), ("val", "cat", 3), ("val", "dog", 2),
              ("test", "cat", 3), ("test", "dog", 2)]
    rows = []
    seed = 0
    for split, label, n in layout:
        for k in range(n):
            path = f"{split}/{label}/{label}_{k:02d}.png"
            (data_root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(distinct_image(seed, (28 + seed % 3 * 8, 28))).save(data_root / path)
            seed += 1
            rows.append({"path": path, "split": split, "label": label})
    rows.append({"path": "train/cat/missing.png", "split": "train", "label": "cat"})
    for row in rows:
        row.update(sample_id=_sid(row["path"]), drop_id="drop-1", ingested_at=T0)
    return rows


def _issue_rows(issue_type: str, order: list[str], n_flagged: int, **extra: dict[str, Any]) -> pd.DataFrame:
    """Rows for `order` (worst first): rank 1..n, increasing scores, the first n_flagged flagged."""
    frame = pd.DataFrame({"sample_id": order})
    frame["issue_type"] = issue_type
    frame["rank"] = np.arange(1, len(order) + 1)
    frame["score"] = np.linspace(0.01, 0.99, len(order)).round(4)
    frame["is_issue"] = frame["rank"] <= n_flagged
    for column, mapping in extra.items():
        frame[column] = frame["sample_id"].map(mapping)
    return frame


def build_store(home: Path, data_root: Path) -> dict[str, Any]:
    """A store whose views return known content; returns what the test expects to see."""
    store = Store(home)
    rows = _write_images(data_root)
    samples = pd.DataFrame(rows)
    by_path = dict(zip(samples.path, samples.sample_id))
    ids = list(samples.sample_id)
    missing = by_path["train/cat/missing.png"]
    train = [i for i, s in zip(ids, samples.split) if s == "train"]
    evals = [i for i, s in zip(ids, samples.split) if s != "train"]

    # off_topic: the unreadable sample sits on the first page (rank 2).
    off_order = [ids[7], missing] + [i for i in ids if i not in (ids[7], missing)]
    label_order = ids[::-1]
    other = {"cat": "dog", "dog": "cat"}
    suggested = {i: other[l] for i, l in zip(ids, samples.label)}
    leak_partner = {evals[0]: train[0], evals[1]: train[1]}
    issues = pd.concat([
        _issue_rows("off_topic", off_order, 4),
        _issue_rows("off_topic_knn_baseline", ids, 3),
        _issue_rows("label_error", label_order, 3, suggested_label=suggested,
                    confidence={i: 0.9 for i in ids}),
        _issue_rows("near_duplicate", ids, 6, partner_id={ids[k]: ids[k + 1] for k in range(0, 12, 2)}),
        _issue_rows("leakage", evals, 2, partner_id=leak_partner),
        _issue_rows("low_value", [i for i in train if i != missing], 2),
        _issue_rows("image_dark", ids[::2], 2),
    ], ignore_index=True)
    issues["score_version"] = NEW_RUN
    old = _issue_rows("image_blurry", ids, 5).assign(score_version=OLD_RUN)

    # Pairs: the unflagged pair has rank 2, so "flagged first" differs from plain rank order.
    pairs = pd.DataFrame({
        "sample_a": [ids[k] for k in range(0, 24, 2)], "sample_b": [ids[k + 1] for k in range(0, 24, 2)],
    })
    pairs["rank"] = np.arange(1, len(pairs) + 1)
    pairs["score"] = (pairs["rank"] / 20).round(4)
    pairs["distance"] = pairs["score"] / 2
    pairs["is_issue"] = pairs["rank"].isin([1, 3, 4, 5, 6, 7])
    pairs["group_id"] = np.where(pairs.is_issue, pairs.index, -1)
    pairs["evidence"] = "embedding"
    pairs["score_version"] = NEW_RUN
    old_pairs = pairs.assign(score_version=OLD_RUN, is_issue=True)

    confusion = pd.DataFrame({
        "score_version": [NEW_RUN, NEW_RUN, OLD_RUN],
        "given_label": ["cat", "dog", "bird"], "suggested_label": ["dog", "cat", "cat"], "count": [3, 1, 7],
    })
    gates = pd.DataFrame({
        "gate": ["leakage_rate", "leakage_rate", "min_samples"],
        "passed": [False, True, False], "value": [0.3, 0.02, 31.0], "threshold": [0.05, 0.05, 100.0],
        "blocking": [True, True, True], "version": [OLD_RUN, NEW_RUN, NEW_RUN],
        "message": ["old evaluation", "leakage within limit", "too few samples"],
        "evaluated_at": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1)],
    })
    with store.connect() as conn:
        insert_df(conn, "drops", pd.DataFrame([{"drop_id": "drop-1", "data_root": str(data_root), "drop_dir": ".",
                                                "layout": "imagefolder", "n_accepted": len(rows)}]))
        insert_df(conn, "raw_manifest", samples)
        insert_df(conn, "rejected_samples", pd.DataFrame({
            "drop_id": ["drop-1"] * 2, "path": ["bad1.png", "bad2.jpg"], "reason": ["decode_error"] * 2,
            "rejected_at": [T0] * 2}))
        insert_df(conn, "score_runs", pd.DataFrame({
            "score_version": [OLD_RUN, NEW_RUN], "model_version": ["model-a", "model-b"],
            "created_at": [T0 - timedelta(days=3), T0]}))
        insert_df(conn, "issue_scores", pd.concat([issues, old], ignore_index=True))
        insert_df(conn, "pair_scores", pd.concat([pairs, old_pairs], ignore_index=True))
        insert_df(conn, "class_confusion", confusion)
        insert_df(conn, "gate_results", gates)
        flagged_pairs = conn.execute("SELECT count(*) FROM duplicate_pairs WHERE is_issue").fetchone()[0]
        flagged_off = conn.execute(
            "SELECT count(*) FROM issues WHERE issue_type = 'off_topic' AND is_issue").fetchone()[0]
    return {"store": store, "ids": ids, "missing": missing, "flagged_pairs": flagged_pairs,
            "flagged_off_topic": flagged_off, "n_samples": len(rows), "off_order": off_order}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("report")
    info = build_store(base / "home", base / "data")
    info["html_path"] = write_report(info["store"], per_page=PER_PAGE, thumb_size=48)
    info["html"] = info["html_path"].read_text(encoding="utf-8")
    return info


@pytest.fixture(scope="module")
def chromium() -> None:
    try:
        browser.ensure_chromium()
    except browser.BrowserUnavailable as error:
        pytest.skip(f"headless Chromium unavailable: {error}")


def _sections(page: str) -> dict[str, str]:
    parts = re.split(r'(?=<section class="gallery" id="gallery-)', page)
    out = {}
    for part in parts[1:]:
        key = re.match(r'<section class="gallery" id="gallery-([^"]+)"', part).group(1)
        out[key] = part.split("</section>", 1)[0]
    return out


def _report_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_html_is_self_contained_and_shows_only_the_latest_run(built: dict[str, Any]) -> None:
    page, store = built["html"], built["store"]
    assert built["html_path"] == store.home / "report" / "index.html"
    assert sorted(p.name for p in built["html_path"].parent.iterdir()) == ["index.html"]
    assert not re.search(r'(?:src|href|action)\s*=\s*["\']?\s*(?:https?:)?//', page, re.I)
    assert not re.search(r'url\(\s*["\']?\s*(?:https?:)?//|@import', page, re.I)

    sections = _sections(page)
    # Registry order; a type the registry does not know (an older run's) comes last, titled by its name.
    assert list(sections) == GALLERIES
    assert '<h2>off_topic_knn_baseline <span class="badge">' in sections["off_topic_knn_baseline"]
    assert "<h2>Off-topic samples " in sections["off_topic"]
    for key, html in sections.items():
        assert html.count('<article class="card') == PER_PAGE, key
    assert NEW_RUN in page and OLD_RUN not in page and "image_blurry" not in page
    assert "bird" not in page  # the old run's confusion row

    # Rank order, with the unreadable file degrading to a placeholder instead of a broken <img>.
    off = sections["off_topic"]
    first_ids = re.findall(r'<article class="card[^"]*" data-id="([^"]+)"', off)
    assert first_ids == built["off_order"][:PER_PAGE]
    missing_card = off.split(f'data-id="{built["missing"]}"', 1)[1].split("</article>", 1)[0]
    assert "no preview" in missing_card and "<img" not in missing_card
    assert 'class="sugg">dog</b>' in sections["label_error"] or 'class="sugg">cat</b>' in sections["label_error"]

    # Flagged pairs first: the rank-2 pair is unflagged and must come after all six flagged ones.
    pair_cards = re.findall(r'<article class="card pair( flagged)?"', sections["near_duplicate"])
    assert pair_cards == [" flagged"] * PER_PAGE
    assert sections["near_duplicate"].count("<img") == 2 * PER_PAGE
    leak_cards = re.findall(r'<article class="card( pair)?( flagged)?"', sections["leakage"])
    assert leak_cards[:2] == [(" pair", " flagged")] * 2

    data = _report_data(page)
    assert len(data["galleries"]["off_topic"]["rest"]) == built["n_samples"] - PER_PAGE
    assert len(data["galleries"]["near_duplicate"]["rest"]) == 12 - PER_PAGE
    assert all(f'id="sample-{i}"' in page for i in first_ids)


def test_chromium_renders_decoded_images_true_counts_and_next_page(built: dict[str, Any], chromium: None,
                                                                 tmp_path: Path) -> None:
    with browser.WebDriver(window_size=(1280, 2000)) as driver:
        driver.get(browser.file_url(built["html_path"]))
        assert driver.wait_for("return document.readyState === 'complete' && "
                               "[...document.images].every(i => i.complete)")
        widths = driver.execute("return [...document.images].map(i => i.naturalWidth)")
        # 7 galleries x 5 cards, +5 second images for pairs, +2 leak partners, -2 cards of the
        # missing file (off_topic rank 2, label_error rank 1) that show a placeholder instead.
        assert len(widths) == len(GALLERIES) * PER_PAGE + PER_PAGE + 2 - 2
        assert min(widths) > 0
        counts = driver.execute(
            "return Object.fromEntries([...document.querySelectorAll('[data-count]')]"
            ".map(e => [e.dataset.count, e.textContent.trim()]))")
        assert counts["pairs-flagged"] == str(built["flagged_pairs"]) == "6"
        assert counts["flagged-off_topic"] == str(built["flagged_off_topic"])
        assert counts["samples"] == str(built["n_samples"])
        assert counts["rejected"] == "2" and counts["split-val"] == "5"
        gates = driver.execute("return Object.fromEntries([...document.querySelectorAll('tr[data-gate]')]"
                               ".map(r => [r.dataset.gate, r.children[1].innerText]))")
        assert gates == {"leakage_rate": "pass", "min_samples": "FAIL"}
        heat = driver.execute("return [...document.querySelectorAll('.heat .cell')].map(c => c.innerText)")
        assert sorted(heat) == ["", "", "1", "3"]  # 2x2 grid: two diagonal cells, cat→dog 3, dog→cat 1

        card_count = "return document.querySelectorAll('#gallery-off_topic .card').length"
        assert driver.execute(card_count) == PER_PAGE
        driver.click("#gallery-off_topic button.next")
        assert driver.execute(card_count) == 2 * PER_PAGE
        assert driver.wait_for("return [...document.images].every(i => i.complete)")
        assert min(driver.execute("return [...document.images].map(i => i.naturalWidth)")) > 0
        # A card first shown by the script links to a samples entry the script added as well.
        sixth = driver.execute("return document.querySelectorAll('#gallery-off_topic .card')[5].dataset.id")
        assert sixth == built["off_order"][PER_PAGE]
        driver.click(f'#gallery-off_topic .card[data-id="{sixth}"] a.path')
        assert driver.execute("return location.hash") == f"#sample-{sixth}"
        entry = driver.execute("const e = document.querySelector(location.hash); "
                               "return e && e.matches(':target') ? e.innerText : null")
        assert entry and "off_topic" in entry and "label_error" in entry

        for _ in range(10):
            if not driver.execute("return !!document.querySelector('#gallery-off_topic button.next')"):
                break
            driver.click("#gallery-off_topic button.next")
        assert driver.execute(card_count) == built["n_samples"]
        check = json.loads(driver.execute("return document.getElementById('report-check').textContent"))
        assert check["cards"]["off_topic"] == built["n_samples"] and check["broken"] == 0
        shot = driver.screenshot_png(tmp_path / "report.png")
        with Image.open(shot) as image:
            assert image.size[0] == 1280 and len(set(image.convert("L").getdata())) > 50


def test_page_script_self_check_in_dumped_dom(built: dict[str, Any], chromium: None) -> None:
    dom = browser.dump_dom(browser.file_url(built["html_path"]))
    check = json.loads(re.search(r'<pre id="report-check" hidden="">(.*?)</pre>', dom, re.S).group(1))
    assert check["broken"] == 0 and check["pending"] == 0
    assert check["images"] == check["decoded"] > 0
    assert check["cards"] == {k: PER_PAGE for k in GALLERIES}


def _empty_store(home: Path) -> Store:
    store = Store(home)
    with store.connect():  # schema and views only, no score run
        pass
    return store


def test_empty_store_gives_a_clear_message(tmp_path: Path) -> None:
    fresh = Store(tmp_path / "fresh")
    page_path = write_report(fresh, tmp_path / "out" / "none.html")
    assert "No quality database" in page_path.read_text() and not fresh.db_path.exists()

    page = write_report(_empty_store(tmp_path / "home")).read_text()
    assert "No score run yet" in page and 'class="gallery"' not in page
    assert 'data-count="samples">0<' in page and "No gate has been evaluated yet" in page


def test_empty_store_page_renders_in_chromium(tmp_path: Path, chromium: None) -> None:
    dom = browser.dump_dom(browser.file_url(write_report(_empty_store(tmp_path / "home"))))
    assert "No score run yet" in dom
    assert json.loads(re.search(r'<pre id="report-check" hidden="">(.*?)</pre>', dom, re.S).group(1))["cards"] == {}


def test_size_is_bounded_for_large_runs(tmp_path: Path) -> None:
    """4,000 samples: galleries carry max_items, thumbnails stop at thumbs_per_type / the budget."""
    data_root = tmp_path / "data"
    files = []
    for k in range(20):
        path = f"train/c{k % 4}/img_{k}.png"
        (data_root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(distinct_image(k, (32, 32))).save(data_root / path)
        files.append(path)
    n = 4000
    ids = [f"{k:020x}" for k in range(n)]
    manifest = pd.DataFrame({"sample_id": ids, "drop_id": "d", "path": [files[k % 20] for k in range(n)],
                             "label": [f"c{k % 4}" for k in range(n)], "split": "train", "ingested_at": T0})
    rank = np.arange(1, n + 1)
    issues = pd.concat([pd.DataFrame({"score_version": "big", "sample_id": np.roll(ids, 37 * t),
                                      "issue_type": kind, "score": rank / n, "rank": rank,
                                      "is_issue": rank <= 100})
                        for t, kind in enumerate(["off_topic", "label_error", "near_duplicate", "image_dark"])])
    pairs = pd.DataFrame({"score_version": "big", "sample_a": ids[: n // 2], "sample_b": ids[n // 2:],
                          "rank": rank[: n // 2], "score": rank[: n // 2] / n, "is_issue": rank[: n // 2] <= 50})
    store = Store(tmp_path / "home")
    with store.connect() as conn:
        insert_df(conn, "drops", pd.DataFrame([{"drop_id": "d", "data_root": str(data_root), "drop_dir": "."}]))
        insert_df(conn, "raw_manifest", manifest)
        insert_df(conn, "score_runs", pd.DataFrame([{"score_version": "big", "created_at": T0}]))
        insert_df(conn, "issue_scores", issues)
        insert_df(conn, "pair_scores", pairs)
    page = write_report(store, per_page=10, max_items=300, thumbs_per_type=40).read_text()
    data = _report_data(page)
    assert {k: len(g["rest"]) for k, g in data["galleries"].items()} == {
        "off_topic": 290, "label_error": 290, "near_duplicate": 290, "image_dark": 290}
    # At most 40 items per gallery (pairs: two images each) have a thumbnail anywhere in the page.
    assert len(data["thumbs"]) <= 4 * 40 + 40
    assert 0 < page.count("data:image/png") <= 2 * (4 * 40 + 40)
    assert "query the <code>issues</code>" in page
    # No empty sections: no label error suggests another class here, so there is no confusion section.
    assert 'id="confusion"' not in page and 'href="#confusion"' not in page
    assert len(page.encode()) < 3_000_000
    # The budget caps later-page thumbnails even when thumbs_per_type would allow more.
    tight = write_report(store, tmp_path / "tight.html", per_page=10, max_items=300, thumbs_per_type=300,
                         thumb_budget_bytes=1).read_text()
    inline = set(re.findall(r'href="#sample-([0-9a-f]+)"><img', tight))
    assert set(_report_data(tight)["thumbs"]) <= inline  # only re-used first-page images, none new
    assert tight.count('<img src="data:') == 5 * 10


def test_thumbnails_keep_colour_and_metadata_shows_pairs(tmp_path: Path) -> None:
    import base64
    import io

    from quality_assets.defs.metadata import thumbnails_markdown
    from quality_assets.thumbnails import thumbnail_data_uri, thumbnail_png

    colour = np.zeros((20, 30, 3), dtype=np.uint8)
    colour[..., 0] = 200  # red
    colour[:, 15:, 2] = 180  # and a magenta half
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(distinct_image(3, gray=True)).save(tmp_path / "gray.png")
    Image.fromarray(colour).save(tmp_path / "colour.jpg", quality=95)
    with Image.open(io.BytesIO(thumbnail_png(tmp_path, "colour.png", 64))) as thumb:
        assert thumb.mode == "RGB" and thumb.size == (60, 40)  # whole-pixel upscale of 30x20
        left, right = thumb.getpixel((5, 5)), thumb.getpixel((50, 5))
        assert left[0] > 150 and left[1] < 30 and left[2] < 30 and right[0] > 150 and right[2] > 150
    with Image.open(io.BytesIO(thumbnail_png(tmp_path, "colour.jpg", 16))) as thumb:
        assert thumb.mode == "RGB" and max(thumb.size) == 16
    with Image.open(io.BytesIO(thumbnail_png(tmp_path, "gray.png", 48))) as thumb:
        assert thumb.mode == "L"  # grayscale stays one channel
    assert thumbnail_png(tmp_path, "missing.png") is None
    assert thumbnail_data_uri(tmp_path, "colour.png").startswith("data:image/png;base64,")

    frame = pd.DataFrame([
        {"issue_type": "near_duplicate", "rank": 1, "path": "colour.png", "label": "a", "suggested_label": None,
         "data_root": str(tmp_path), "partner_path": "gray.png", "partner_data_root": str(tmp_path)},
        {"issue_type": "label_error", "rank": 1, "path": "colour.png", "label": "a", "suggested_label": "b",
         "data_root": str(tmp_path), "partner_path": None, "partner_data_root": None},
    ])
    text = thumbnails_markdown(frame).value
    pair_line = next(line for line in text.split("\n\n") if line.startswith("**near_duplicate**"))
    assert pair_line.count("data:image/png;base64,") == 2 and " ⇄ " in pair_line
    label_line = next(line for line in text.split("\n\n") if line.startswith("**label_error**"))
    assert label_line.count("data:image/png") == 1 and "a→b" in label_line
    uri = pair_line.split("(", 1)[1].split(")", 1)[0]
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert thumb.mode == "RGB"
    without = thumbnails_markdown(frame.drop(columns=["partner_path", "partner_data_root"])).value
    assert without.count("data:image/png") == 2


def test_sections_follow_the_registry_and_skip_empty_types() -> None:
    from types import SimpleNamespace

    from quality_assets.report.sections import sections_for

    registry = [SimpleNamespace(name="toy", title="Toy issue", description="A toy.", gallery="samples"),
                SimpleNamespace(name="near_duplicate", title="Pairs", description="Pairs.", gallery="pairs"),
                SimpleNamespace(name="absent", title="Absent", description="Not scored.", gallery="samples"),
                SimpleNamespace(name="leakage", title="Leaks", description="Leaks.", gallery="partner")]
    counts = {"toy": (10, 2), "near_duplicate": (10, 1), "leakage": (0, 0), "older_type": (5, 1)}
    sections = sections_for(counts, pair_counts=(7, 3), registry=registry)
    assert [(s.name, s.title, s.gallery, s.n_scored, s.n_flagged, s.known) for s in sections] == [
        ("toy", "Toy issue", "samples", 10, 2, True),
        ("near_duplicate", "Pairs", "pairs", 7, 3, True),  # pair counts, not per-sample counts
        ("older_type", "older_type", "samples", 5, 1, False),  # unknown to the registry: its name as title
    ]
    assert sections_for({}, registry=registry) == []  # nothing scored, no section


def _ontology_section(page: str) -> str:
    return page.split('<section id="ontology">', 1)[1].split("</section>", 1)[0]


def _bars(section: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<g class="bar" data-rank="(\d+)" data-label="([^"]+)" data-count="(\d+)"', section)


def plant_symmetric_confusion(store: Store) -> None:
    """More corrections for the newer run: dog -> cat becomes 1 + 4 = 5 (cat -> dog is 3), so cat
    and dog are confused both ways; cat -> fox (2) is one way."""
    with store.connect() as conn:
        insert_df(conn, "class_confusion", pd.DataFrame({
            "score_version": [NEW_RUN, NEW_RUN], "given_label": ["dog", "cat"], "suggested_label": ["cat", "fox"],
            "count": [4, 2]}))


def test_ontology_chart_without_a_merge_when_the_confusion_is_one_way(built: dict[str, Any]) -> None:
    section = _ontology_section(built["html"])
    # cat -> dog 3, dog -> cat 1: one reverse suggestion is below the merge's minimum count
    assert _bars(section) == [("1", "cat → dog", "3"), ("2", "dog → cat", "1")]
    assert 'id="no-merges"' in section and "data-merge=" not in section
    assert '<a href="#ontology">Ontology</a>' in built["html"]


def test_ontology_chart_and_merge_suggestion_with_examples(tmp_path: Path) -> None:
    info = build_store(tmp_path / "home", tmp_path / "data")
    plant_symmetric_confusion(info["store"])
    page = write_report(info["store"], per_page=PER_PAGE, thumb_size=48).read_text(encoding="utf-8")
    section = _ontology_section(page)
    assert _bars(section) == [("1", "dog → cat", "5"), ("2", "cat → dog", "3"), ("3", "cat → fox", "2")]
    lengths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', section)]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] == pytest.approx(lengths[2] * 5 / 2, abs=0.2)
    assert re.findall(r'data-merge="([^"]+)"', section) == ["cat|dog"]
    # 3 of 17 cats (the missing file counts), 5 of 14 dogs: score sqrt(3/17 * 5/14)
    assert f"{(3 / 17 * 5 / 14) ** 0.5:.3f}" in section
    # The flagged label errors (the three last samples: test dogs suggested cat) are the examples, with thumbnails.
    examples = re.findall(r'<figure class="example" data-id="([^"]+)"><img src="data:image/png', section)
    assert examples and set(examples) <= set(info["ids"][-3:])
