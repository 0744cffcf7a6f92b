"""The review app's web layer: Starlette routes, jinja2 templates and htmx fragments.

Pages render on the server; htmx swaps fragments (the grid after a filter change, a message after
an action). Every state change is a POST that must carry htmx's `HX-Request` header, which a
cross-site form cannot send without a CORS preflight this app never grants; with an access token
set, every request also needs the token (cookie after the first `?token=` visit, or a Bearer header).
"""

from __future__ import annotations

import contextlib
import hmac
import math
import mimetypes
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from quality_assets.app.embedding_map import embedding_map
from quality_assets.app.review import (
    Decision,
    Filters,
    ImageOutsideRoot,
    ReviewError,
    ReviewStore,
    StoreBusy,
)
from quality_assets.app.runs import ApplyRuns
from quality_assets.data_roots import read_object
from quality_assets.dataset_export import FORMATS, LINK_MODES, NoCleanedSplit, export_dataset
from quality_assets.report.data import records as _records
from quality_assets.report.render import fmt
from quality_assets.report.sections import Section, sections_for
from quality_assets.thumbnails import thumbnail_png

APP_DIR = Path(__file__).resolve().parent
TOKEN_COOKIE = "qaudit_token"
PAGE_SIZE = 48
PAIR_PAGE_SIZE = 24
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'")


def _environment() -> Environment:
    # The app's own templates first, then the report's: the gates table is one shared partial.
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(APP_DIR / "templates"),
                             PackageLoader("quality_assets.report", "templates")]),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["num"] = fmt
    return env


class AccessGuard:
    """ASGI middleware: the access token (when set) and the allowed Host names (DNS rebinding)."""

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: set[str] | None) -> None:
        self.app, self.token, self.allowed_hosts = app, token, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            await PlainError("unknown Host header", 400)(scope, receive, send)
            return
        if self.token:
            offered = request.query_params.get("token")
            if offered is not None and hmac.compare_digest(offered, self.token):
                # Move the token from the URL (history, logs) into an HttpOnly cookie.
                target = request.url.remove_query_params("token")
                response = RedirectResponse(str(target.path) + (f"?{target.query}" if target.query else ""), 303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                await response(scope, receive, send)
                return
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not (hmac.compare_digest(cookie, self.token) or hmac.compare_digest(bearer, self.token)):
                await PlainError("access token required: open the URL printed by `qaudit app`", 401)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def PlainError(message: str, status: int) -> Response:  # noqa: N802 (a response factory)
    return Response(message + "\n", status_code=status, media_type="text/plain")


class ReviewApp:
    """Routes over one quality home."""

    def __init__(self, home: Path) -> None:
        self.review = ReviewStore(home)
        self.review.ensure_ready()
        self.runs = ApplyRuns(self.review.home)
        self.templates = _environment()
        self._map_cache: dict[str, Any] = {}
        self._map_lock = threading.Lock()
        self.export_dir = self.review.home / "exports"

    # ------------------------------------------------------------------ helpers

    def render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=headers)

    def page(self, name: str, request: Request, **context: Any) -> HTMLResponse:
        return self.render(name, nav=self.sections(), request=request, **context)

    def flash(self, message: str, *, kind: str = "ok", status: int = 200, changed: bool = False) -> HTMLResponse:
        headers = {"HX-Trigger": "decisions-changed"} if changed else None
        return self.render("_flash.html", status=status, headers=headers, message=message, kind=kind)

    def sections(self) -> list[Section]:
        counts = self.review.issue_counts()
        return sections_for(counts, pair_counts=self.review.pair_counts())

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections() if s.name == name), None)

    @staticmethod
    def filters(request: Request) -> Filters:
        q = request.query_params

        def text(key: str) -> str | None:
            value = (q.get(key) or "").strip()
            return value or None

        def number(key: str) -> float | None:
            value = text(key)
            try:
                return None if value is None else float(value)
            except ValueError:
                return None

        decided = {"decided": True, "undecided": False}.get(q.get("decided") or "")
        flagged = True if q.get("flagged") == "flagged" else None
        return Filters(label=text("label"), split=text("split"), drop_id=text("drop"),
                       score_min=number("score_min"), score_max=number("score_max"),
                       decided=decided, flagged_only=flagged)

    # ------------------------------------------------------------------ pages

    def index(self, request: Request) -> Response:
        counts = self.review.issue_counts()
        return self.page("index.html", request, overview=self.review.overview(), counts=counts,
                         pair_counts=self.review.pair_counts(), gates=_records(self.review.gates()),
                         apply=self.runs.status(), formats=FORMATS, link_modes=LINK_MODES,
                         cleaned=_records(self.review.read("app_cleaned_counts")),
                         ontology=self.review.ontology())

    def issue_page(self, request: Request) -> Response:
        section = self.section(request.path_params["issue_type"])
        if section is None:
            return self.page("not_found.html", request, what=f"issue type {request.path_params['issue_type']!r}")
        context = self._grid_context(request, section)
        return self.page("issue.html", request, section=section, options=self.review.filter_options(),
                         known_labels=self.review.known_labels(),
                         groups=self._groups() if section.gallery == "pairs" else None, **context)

    def issue_grid(self, request: Request) -> Response:
        section = self.section(request.path_params["issue_type"])
        if section is None:
            return PlainError("unknown issue type", 404)
        return self.render("_grid.html", section=section, known_labels=self.review.known_labels(),
                           **self._grid_context(request, section))

    def _grid_context(self, request: Request, section: Section) -> dict[str, Any]:
        filters = self.filters(request)
        try:
            page = max(0, int(request.query_params.get("page") or 0))
        except ValueError:
            page = 0
        if section.gallery == "pairs":
            size = PAIR_PAGE_SIZE
            rows = _records(self.review.pairs(filters, limit=size, offset=page * size))
        else:
            size = PAGE_SIZE
            rows = _records(self.review.items(section.name, filters, limit=size, offset=page * size))
        total = int(rows[0]["n_matching"]) if rows else 0
        return {"rows": rows, "page": page, "page_size": size, "total": total, "query": dict(request.query_params),
                "pages": max(1, math.ceil(total / size))}

    def _groups(self) -> list[dict[str, Any]]:
        groups: dict[int, dict[str, Any]] = {}
        for row in _records(self.review.duplicate_groups()):
            group = groups.setdefault(int(row["group_id"]), {"group_id": int(row["group_id"]), "members": []})
            group["members"].append(row)
        return list(groups.values())

    def sample_page(self, request: Request) -> Response:
        sample_id = request.path_params["sample_id"]
        sample = self.review.sample(sample_id)
        if sample is None:
            return self.page("not_found.html", request, what=f"sample {sample_id!r}")
        issues = _records(self.review.read("app_sample_issues", sample_id=sample_id))
        for issue in issues:
            if issue.get("partner_path"):
                issue["partner_id"] = self.review.sample_id_for_path(issue["partner_path"])
        decisions = _records(self.review.read("app_sample_decisions", sample_id=sample_id))
        return self.page("sample.html", request, sample=sample, issues=issues, decisions=decisions,
                         known_labels=self.review.known_labels())

    def history_page(self, request: Request) -> Response:
        return self.page("history.html", request, rows=_records(self.review.history()))

    def history_table(self, request: Request) -> Response:
        return self.render("_history_table.html", rows=_records(self.review.history()))

    def map_page(self, request: Request) -> Response:
        overview = self.review.overview()
        model = str(overview["model_version"]) if overview else ""
        with self._map_lock:
            if model not in self._map_cache:
                frame = self.review.read("app_map_vectors")
                self._map_cache = {model: embedding_map(frame)}
            points = self._map_cache[model]
        labels = sorted({p.label for p in points if p.label is not None})
        return self.page("map.html", request, points=points, labels=labels, model=model)

    # ------------------------------------------------------------------ files

    def image(self, request: Request) -> Response:
        try:
            path = self.review.image_file(request.path_params["sample_id"])
        except ImageOutsideRoot as error:
            return PlainError(str(error), 403)
        headers = {"Cache-Control": "private, max-age=3600"}
        if isinstance(path, str):  # an object in an object store
            try:
                data = read_object(path)
            except OSError:
                return PlainError("no such image", 404)
            return Response(data, media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
                            headers=headers)
        if path is None or not path.is_file():
            return PlainError("no such image", 404)
        return FileResponse(path, headers=headers)

    def thumb(self, request: Request) -> Response:
        try:
            size = min(512, max(16, int(request.query_params.get("s") or 160)))
        except ValueError:
            size = 160
        try:
            path = self.review.image_file(request.path_params["sample_id"])
        except ImageOutsideRoot as error:
            return PlainError(str(error), 403)
        if isinstance(path, str):  # an object's URL: its "folder" is the root the name is read under
            folder, name = path.rsplit("/", 1)
            png = thumbnail_png(folder, name, size)
        else:
            png = thumbnail_png(path.parent, path.name, size) if path is not None else None
        if png is None:
            return PlainError("no preview", 404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------------ actions

    def decide(self, form: FormData) -> Response:
        ids = [i for i in form.getlist("sample_id") if i]
        if not ids:
            return self.flash("Select at least one item first.", kind="error", status=422)
        decision = str(form.get("decision") or "")
        issue_type = str(form.get("issue_type") or "")
        new_label = str(form.get("new_label") or "").strip() or None
        note = str(form.get("note") or "").strip() or None
        return self._record([Decision(i, issue_type, decision, new_label, note) for i in ids],
                            lambda n: f"Recorded {decision}{' → ' + new_label if decision == 'relabel' else ''} "
                                      f"for {n} item{'s' if n != 1 else ''}.")

    def _record(self, decisions: list[Decision], message: Any) -> Response:
        try:
            n = self.review.record(decisions)
        except ReviewError as error:
            return self.flash(str(error), kind="error", status=422)
        except StoreBusy as error:
            return self.flash(str(error), kind="error", status=503)
        return self.flash(message(n), changed=True)

    def accept_suggestions(self, form: FormData) -> Response:
        try:
            minimum = float(form.get("min_confidence") or "")
        except ValueError:
            return self.flash("Give a confidence between 0 and 1.", kind="error", status=422)
        try:
            n = self.review.accept_suggestions(minimum, flagged_only=form.get("flagged_only") == "on")
        except ReviewError as error:
            return self.flash(str(error), kind="error", status=422)
        except StoreBusy as error:
            return self.flash(str(error), kind="error", status=503)
        return self.flash(f"Accepted {n} suggestion{'s' if n != 1 else ''} with confidence ≥ {minimum:g}.",
                          changed=True)

    def keep_one_per_group(self, form: FormData) -> Response:
        try:
            n = self.review.keep_one_per_group()
        except StoreBusy as error:
            return self.flash(str(error), kind="error", status=503)
        return self.flash(f"Kept one sample per duplicate group ({n} decisions).", changed=True)

    def undo(self, form: FormData) -> Response:
        try:
            batch = self.review.undo()
        except StoreBusy as error:
            return self.flash(str(error), kind="error", status=503)
        if batch.empty:
            return self.flash("Nothing to undo.", kind="error", status=422)
        n = len(batch)
        kinds = ", ".join(sorted(set(batch["decision"])))
        return self.flash(f"Undid the last action: {n} decision{'s' if n != 1 else ''} ({kinds}).", changed=True)

    def apply(self, form: FormData) -> Response:
        started = self.runs.start()
        return self.render("_apply_status.html", apply=self.runs.status(), oob=False,
                           note=None if started else "A run is already in progress.")

    def apply_status(self, request: Request) -> Response:
        status = self.runs.status()
        done = status is not None and status.get("state") not in ("starting", "running")
        return self.render("_apply_status.html", apply=status, oob=done, note=None,
                           gates=_records(self.review.gates()) if done else [],
                           cleaned=_records(self.review.read("app_cleaned_counts")) if done else [])

    def export(self, form: FormData) -> Response:
        fmt = str(form.get("format") or "imagefolder")
        link_mode = str(form.get("link_mode") or "hardlink")
        if fmt not in FORMATS or link_mode not in LINK_MODES:
            return self.flash("Unknown export format or link mode.", kind="error", status=422)
        overview = self.review.overview() or {}
        version = re.sub(r"[^\w.-]", "_", str(overview.get("split_version") or "none"))
        out = self.export_dir / f"{version}-{fmt}"
        try:
            record = export_dataset(self.review.store, out, fmt, link_mode=link_mode, overwrite=True)
        except (NoCleanedSplit, FileExistsError, ValueError) as error:
            return self.flash(str(error), kind="error", status=422)
        return self.render("_export_result.html", record=asdict(record))

    def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "home": str(self.review.home)})


def _post(handler: Callable[[FormData], Response]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that parses the form, then runs `handler` in the thread pool (DuckDB blocks)."""
    async def endpoint(request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(handler, form)
    return endpoint


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)
        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


class RequireHtmx:
    """POSTs must come from the app's own pages (htmx sets `HX-Request`; other sites cannot)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            if Request(scope).headers.get("hx-request") != "true":
                await PlainError("state changes only through the app's pages (HX-Request header missing)", 403)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def _stop_runs_on_shutdown(review: ReviewApp):
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        review.runs.stop()
    return lifespan


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def create_app(home: Path, *, token: str | None = None, allowed_hosts: set[str] | None = None) -> Starlette:
    """The ASGI app for one quality home. `allowed_hosts=None` accepts any Host header."""
    review = ReviewApp(Path(home))
    routes = [
        Route("/", review.index),
        Route("/issues/{issue_type}", review.issue_page),
        Route("/issues/{issue_type}/grid", review.issue_grid),
        Route("/sample/{sample_id}", review.sample_page),
        Route("/image/{sample_id}", review.image),
        Route("/thumb/{sample_id}", review.thumb),
        Route("/map", review.map_page),
        Route("/history", review.history_page),
        Route("/history/table", review.history_table),
        Route("/decide", _post(review.decide), methods=["POST"]),
        Route("/bulk/accept-suggestions", _post(review.accept_suggestions), methods=["POST"]),
        Route("/bulk/keep-one-per-group", _post(review.keep_one_per_group), methods=["POST"]),
        Route("/undo", _post(review.undo), methods=["POST"]),
        Route("/apply", _post(review.apply), methods=["POST"]),
        Route("/apply/status", review.apply_status),
        Route("/export", _post(review.export), methods=["POST"]),
        Route("/healthz", review.health),
        Mount("/static", StaticFiles(directory=APP_DIR / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[
        Middleware(AccessGuard, token=token, allowed_hosts=allowed_hosts),
        Middleware(RequireHtmx),
        Middleware(SecurityHeaders),
    ], lifespan=_stop_runs_on_shutdown(review))
    app.state.review = review
    return app


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(home: Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the app with uvicorn. Another interface than loopback needs an access token."""
    import uvicorn

    token = token or os.environ.get("QAUDIT_APP_TOKEN") or None
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ValueError(f"binding to {host} exposes the app beyond this machine; pass --token "
                         "(or set QAUDIT_APP_TOKEN) to require an access token")
    app = create_app(home, token=token, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"review app for {Path(home).resolve()} on {url}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
