"""The review app as a person uses it, in real headless Chromium over a really audited store.

Open it, filter, relabel one item (an unknown label first, which must be refused), bulk-accept
suggestions, undo, keep one per duplicate group, apply through Dagster, and export a dataset that
opens again with the scanner. Slow (a real audit first), so marked `slow`; CI runs it.
Set QAUDIT_SCREENSHOT_DIR to keep the screenshots (the README's come from here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from quality_assets.app.review import ReviewStore
from quality_assets.scan import scan_drop
from quality_tests import browser
from quality_tests.app.server import running_app

pytestmark = pytest.mark.slow

# Thumbnails load lazily, so only the first row is sure to be fetched without scrolling.
FIRST_IMAGES_DECODED = ("const imgs = [...document.querySelectorAll('#grid img')].slice(0, 5);"
                        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


@pytest.fixture(scope="module")
def chromium() -> None:
    try:
        browser.ensure_chromium()
    except browser.BrowserUnavailable as error:
        pytest.skip(f"headless Chromium unavailable: {error}")


def _flash(driver: browser.WebDriver, contains: str, timeout: float = 20.0) -> str:
    text = driver.wait_for("const f = document.querySelector('#flash .flash');"
                           "return f && f.innerText.includes(arguments[0]) ? f.innerText : null",
                           contains, timeout=timeout)
    assert text, driver.execute("return document.getElementById('flash').innerText")
    return text


def _clear_flash(driver: browser.WebDriver) -> None:
    driver.execute("document.getElementById('flash').innerHTML = ''")


def _shot(driver: browser.WebDriver, tmp_path: Path, name: str) -> Path:
    path = driver.screenshot_png(tmp_path / name)
    keep = os.environ.get("QAUDIT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / name).write_bytes(path.read_bytes())
    with Image.open(path) as image:
        assert len(set(image.convert("L").getdata())) > 50  # a rendered page, not a blank one
    return path


def test_review_flow_in_chromium(audited: dict[str, Any], chromium: None, tmp_path: Path) -> None:
    review = ReviewStore(audited["home"])
    n_samples = int(review.overview()["n_samples"])
    with running_app(audited["home"]) as base, browser.WebDriver(window_size=(1400, 1000)) as driver:
        driver.get(base + "/")
        types = driver.execute("return [...document.querySelectorAll('tr[data-type]')].map(r => r.dataset.type)")
        assert types[:3] == ["off_topic", "label_error", "near_duplicate"]

        # Off-topic grid: colour thumbnails, the planted grayscale batch among the worst.
        driver.get(base + "/issues/off_topic")
        assert driver.wait_for(FIRST_IMAGES_DECODED)
        # A colour photo's thumbnail keeps its colour (channels differ); the planted noise stays gray.
        spread = driver.execute("""
            const spread = img => {
              const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
              const g = c.getContext('2d'); g.drawImage(img, 0, 0);
              const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0;
              for (let i = 0; i < d.length; i += 4) s = Math.max(s, Math.abs(d[i] - d[i+1]), Math.abs(d[i+1] - d[i+2]));
              return s;
            };
            const cards = [...document.querySelectorAll('#grid article[data-id]')].slice(0, 5);
            return Object.fromEntries(cards.map(c => [c.querySelector('.path').title, spread(c.querySelector('img'))]));""")
        assert any(v > 60 for p, v in spread.items() if "odd_" not in p), spread
        assert all(v == 0 for p, v in spread.items() if "odd_" in p), spread
        worst = driver.execute("return [...document.querySelectorAll('#grid article .path')].slice(0, 8).map(e => e.title)")
        assert set(audited["planted"]["foreign"]) & set(worst)

        # Filter by class: every card of the refreshed grid is a dog.
        driver.click("#filters select[name=label] option[value=dog]")
        assert driver.wait_for("const ls = [...document.querySelectorAll('#grid article .label')].map(e => e.innerText);"
                               "return ls.length > 0 && ls.every(l => l === 'dog')")
        total = driver.execute("return +document.querySelector('#grid .pager').dataset.total")
        assert 0 < total < n_samples

        # A click on a thumbnail opens the sample at full resolution with all its scores.
        driver.click("#grid article[data-id] a.thumb")
        assert driver.wait_for("const i = document.getElementById('full-image'); return i && i.complete && i.naturalWidth")
        assert driver.execute("return document.getElementById('full-image').naturalWidth") == 32  # the file's own size
        assert driver.execute("return document.querySelectorAll('#sample tbody tr').length") >= 5

        # Relabel one item: an unknown label is refused with a clear message, a known one recorded.
        driver.get(base + "/issues/label_error")
        first = driver.execute("return document.querySelector('#grid article[data-id]').dataset.id")
        label = driver.execute(f"return document.querySelector('article[data-id=\"{first}\"] .label').innerText")
        other = "cat" if label == "dog" else "dog"
        driver.type_text(f'article[data-id="{first}"] form.relabel input[name=new_label]', "banana")
        driver.click(f'article[data-id="{first}"] form.relabel button')
        assert "unknown label 'banana'" in _flash(driver, "unknown label")
        assert review.history().empty
        _clear_flash(driver)
        driver.type_text(f'article[data-id="{first}"] form.relabel input[name=new_label]', other)
        driver.click(f'article[data-id="{first}"] form.relabel button')
        _flash(driver, "Recorded relabel")
        assert driver.wait_for(f"const d = document.querySelector('article[data-id=\"{first}\"] .decision');"
                               "return d && d.innerText.includes(arguments[0])", other)
        assert list(review.history()[["sample_id", "decision", "new_label"]].itertuples(index=False, name=None)) == [
            (first, "relabel", other)]

        # Bulk-accept every suggestion with confidence >= 0.5 (flagged or not), then undo it.
        expected = len(review.read("app_suggestions_above", min_confidence=0.5, flagged_only=False))
        assert expected > 0
        _clear_flash(driver)
        driver.click("#accept-flagged-only")
        driver.type_text("#min-confidence", "0.5")
        driver.click("#accept-suggestions")
        assert f"Accepted {expected} suggestion" in _flash(driver, "Accepted")
        assert len(review.history()) == 1 + expected
        _clear_flash(driver)
        driver.click("#undo")
        assert f"{expected} decision" in _flash(driver, "Undid")
        assert len(review.history()) == 1

        driver.get(base + "/history")
        rows = driver.execute("return [...document.querySelectorAll('#history-table tr[data-id]')]"
                              ".map(r => [r.dataset.id, r.dataset.decision])")
        assert rows == [[first, "relabel"]]

        # Near duplicates side by side, with their labels; keep one per group.
        driver.get(base + "/issues/near_duplicate")
        sides = driver.execute("const c = document.querySelector('#grid article.card.pair');"
                               "return c ? [...c.querySelectorAll('.side .label')].map(e => e.innerText) : []")
        assert len(sides) == 2
        assert driver.execute("return document.querySelectorAll('.group').length") >= 1
        _clear_flash(driver)
        driver.click("#keep-one-per-group")
        _flash(driver, "Kept one sample per duplicate group")
        groups = review.duplicate_groups()
        copy_group = groups[groups.path.isin(audited["planted"]["copies"])]
        assert len(copy_group) == 1  # the planted copy is in a flagged group
        drops = review.history().query("decision == 'drop'")
        assert set(drops.sample_id) == set(groups[~groups.is_representative].sample_id)

        # The 2-D map: one point per embedded sample, the foreign batch ringed.
        driver.get(base + "/map")
        assert driver.execute("return document.querySelectorAll('#map-svg circle.pt').length") == n_samples
        ringed = driver.execute("return [...document.querySelectorAll('#map-svg circle.off, #map-svg circle.suspect')]"
                                ".map(c => c.querySelector('title').textContent.split(' · ')[0])")
        assert set(audited["planted"]["foreign"]) & set(ringed)  # the foreign batch stands out
        _shot(driver, tmp_path, "review_app_map.png")

        # Apply: cleaned_split re-materialised through Dagster, state and gates shown.
        driver.get(base + "/")
        before = driver.execute("return document.getElementById('split-version').innerText")
        driver.click("#apply")
        state = driver.wait_for("const s = document.getElementById('apply-status').dataset.state;"
                                "return ['succeeded', 'failed', 'gate_failed'].includes(s) ? s : null", timeout=120)
        assert state == "succeeded", driver.execute("return document.getElementById('apply-status').innerText")
        assert driver.execute("return document.getElementById('apply-run-id').innerText")
        checks = driver.execute("return [...document.querySelectorAll('#apply-status li[data-check]')].map(l => l.dataset.check)")
        assert "cleaned_leakage_rate" in checks
        assert driver.execute("return document.querySelectorAll('#gates tr[data-gate]').length") >= 4
        cleaned = review.read("app_export_rows")
        row = cleaned[cleaned.sample_id == first].iloc[0]
        assert row.label == other and row.action == "relabel" and row.reason.startswith("review:")
        assert review.overview()["split_version"] != before

        # Export the cleaned split as an ImageFolder tree; it opens as a dataset again.
        driver.get(base + "/")
        driver.click("#export")
        out = driver.wait_for("const e = document.getElementById('export-done'); return e && e.dataset.out",
                              timeout=60)
        assert out
        root = Path(out) / "data"
        scanned = scan_drop(root, root, "exported")
        assert scanned.rejected.empty and len(scanned.accepted) == len(cleaned)
        name = Path(row.path).name
        assert f"{row.split}/{other}/{name}" in set(scanned.accepted.path)

        driver.get(base + "/issues/off_topic")
        assert driver.wait_for(FIRST_IMAGES_DECODED)
        _shot(driver, tmp_path, "review_app.png")
