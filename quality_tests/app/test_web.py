"""The review app over HTTP (real uvicorn server, real store): safe defaults and error answers."""

from __future__ import annotations

import http.client
import io
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from quality_assets.app.web import serve
from quality_tests.app.server import running_app
from quality_tests.test_report import plant_symmetric_confusion


def _request(url: str, *, data: dict | None = None, headers: dict | None = None,
             follow: bool = True) -> tuple[int, dict, bytes]:
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


HTMX = {"HX-Request": "true"}


def test_pages_answer_and_relabel_is_checked(small_home: dict[str, Any]) -> None:
    with running_app(small_home["store"].home) as base:
        status, headers, body = _request(base + "/")
        assert status == 200 and "Off-topic samples" in body.decode()
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "https://" not in body.decode() and "http://" not in body.decode()
        status, _, body = _request(base + "/issues/label_error?label=cat&split=val")
        page = body.decode()
        assert status == 200 and page.count('<article class="card') == 3  # 3 val cats
        assert _request(base + "/issues/no_such_type")[2].decode().count("Not found") == 1
        # Leakage: each flagged evaluation sample next to its train partner; pairs: both sides.
        leakage = _request(base + "/issues/leakage?flagged=flagged")[2].decode()
        assert leakage.count('<article class="card pair flagged"') == 2 and leakage.count("/thumb/") == 4
        pairs = _request(base + "/issues/near_duplicate?flagged=flagged")[2].decode()
        assert pairs.count('<article class="card pair flagged"') == small_home["flagged_pairs"]
        assert pairs.count('class="group"') >= 1 and pairs.count('class="label"') >= 2 * small_home["flagged_pairs"]
        thumb = _request(base + f"/thumb/{small_home['ids'][0]}?s=64")
        assert thumb[0] == 200 and thumb[1]["content-type"] == "image/png"
        with Image.open(io.BytesIO(thumb[2])) as image:
            # Colour kept; the 28 px source scaled up by whole pixels (2x), never past the size.
            assert image.mode == "RGB" and image.size == (56, 56)

        sample = small_home["ids"][2]
        form = {"sample_id": sample, "issue_type": "label_error", "decision": "relabel", "new_label": "banana"}
        assert _request(base + "/decide", data=form)[0] == 403  # no HX-Request: not from the app's pages
        status, _, body = _request(base + "/decide", data=form, headers=HTMX)
        assert status == 422 and "unknown label &#39;banana&#39;" in body.decode()
        status, headers, body = _request(base + "/decide", data={**form, "new_label": "dog"}, headers=HTMX)
        assert status == 200 and headers.get("hx-trigger") == "decisions-changed" and "Recorded relabel" in body.decode()
        history = _request(base + "/history")[2].decode()
        assert f'data-id="{sample}" data-decision="relabel"' in history


def test_images_outside_the_data_root_are_refused(small_home: dict[str, Any], tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), "red").save(secret)
    link = small_home["data"] / "train" / "cat" / "cat_03.png"
    link.unlink()
    os.symlink(secret, link)
    victim = next(i for i, p in zip(small_home["ids"], _paths(small_home)) if p == "train/cat/cat_03.png")
    with running_app(small_home["store"].home) as base:
        assert _request(base + f"/image/{victim}")[0] == 403
        assert _request(base + f"/thumb/{victim}")[0] == 403
        assert _request(base + f"/image/{small_home['ids'][0]}")[0] == 200
        assert _request(base + "/image/..%2F..%2Fetc%2Fpasswd")[0] == 404


def test_images_of_a_bucket_root_are_served_from_the_bucket(tmp_path: Path, s3_bucket: str) -> None:
    from quality_assets.ingest import ingest_drop
    from quality_assets.store import Store
    from quality_assets.thumbnails import thumbnail_png
    from quality_tests.imagefolders import make_imagefolder
    from quality_lab.object_store import s3, upload_tree

    make_imagefolder(tmp_path / "data", {"train": {"cat": 2}}, marker=True)
    upload_tree(tmp_path / "data", f"{s3_bucket}/data")
    store = Store(tmp_path / "home")
    ingest_drop(store, f"{s3_bucket}/data", ".")
    with store.connect(read_only=True) as conn:
        samples = conn.execute("SELECT sample_id, path FROM raw_manifest ORDER BY path").fetchall()
    with running_app(store.home) as base:
        (first, first_path), (second, second_path) = samples
        status, headers, body = _request(base + f"/image/{first}")
        assert status == 200 and headers["content-type"] == "image/png"
        assert body == (tmp_path / "data" / first_path).read_bytes()
        status, headers, body = _request(base + f"/thumb/{first}?s=64")
        assert status == 200 and headers["content-type"] == "image/png"
        assert body == thumbnail_png(tmp_path / "data", first_path, 64)  # as from the same file on disk
        s3().rm_file(f"{s3_bucket}/data/{second_path}".split("://")[1])
        assert _request(base + f"/image/{second}")[0] == 404
        assert _request(base + f"/thumb/{second}")[0] == 404


def _paths(info: dict[str, Any]) -> list[str]:
    with info["store"].connect(read_only=True) as conn:
        order = dict(conn.execute("SELECT sample_id, path FROM raw_manifest").fetchall())
    return [order[i] for i in info["ids"]]


def test_loopback_by_default_token_elsewhere(small_home: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="needs|token"):
        serve(small_home["store"].home, host="0.0.0.0", port=1)
    with running_app(small_home["store"].home) as base:
        port = int(base.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/", headers={"Host": "attacker.example"})  # DNS rebinding
        assert connection.getresponse().status == 400
        connection.close()
    with running_app(small_home["store"].home, token="s3cret", loopback_only=False) as base:
        assert _request(base + "/")[0] == 401
        assert _request(base + "/?token=wrong")[0] == 401
        status, headers, _ = _request(base + "/?token=s3cret", follow=False)
        assert status == 303 and "qaudit_token=s3cret" in headers["set-cookie"] and "httponly" in headers["set-cookie"].lower()
        assert headers["location"] == "/"
        assert _request(base + "/", headers={"Cookie": "qaudit_token=s3cret"})[0] == 200
        assert _request(base + "/", headers={"Authorization": "Bearer s3cret"})[0] == 200


def test_overview_shows_the_corrections_chart_and_merge_suggestions(small_home: dict[str, Any]) -> None:
    plant_symmetric_confusion(small_home["store"])
    with running_app(small_home["store"].home) as base:
        page = _request(base + "/")[2].decode()
    section = page.split('<section id="ontology">', 1)[1].split("</section>", 1)[0]
    bars = re.findall(r'<g class="bar" data-rank="(\d+)" data-label="([^"]+)" data-count="(\d+)"', section)
    assert bars == [("1", "dog → cat", "5"), ("2", "cat → dog", "3"), ("3", "cat → fox", "2")]
    assert re.findall(r'data-merge="([^"]+)"', section) == ["cat|dog"]
    # Examples link to the sample page and show its thumbnail; the page stays free of outside URLs.
    linked = re.findall(r'<a class="example" href="/sample/([^"]+)"', section)
    assert linked and set(linked) <= set(small_home["ids"][-3:])
    assert f'/thumb/{linked[0]}?s=64' in section
    assert "http://" not in page and "https://" not in page
