"""Real headless Chromium for tests: find or install it, dump a page's DOM, screenshot it, drive it.

Two ways in:
- `dump_dom` / `screenshot` run the `chromium` command line once (what a person would see after
  the page's scripts ran for a virtual-time budget);
- `WebDriver` talks the W3C WebDriver protocol to `chromedriver` over plain HTTP (stdlib only, so
  no selenium dependency) for interaction: clicks, script evaluation, screenshots.

Chromium comes from the Debian packages `chromium` and `chromium-driver`; `ensure_chromium()`
installs them with apt-get when missing and raises `BrowserUnavailable` with the reason when that
is impossible, so tests can skip with a clear message instead of failing.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
APT_PACKAGES = ("chromium", "chromium-driver")

# No network traffic of its own: a test must not depend on (or wait for) Google's services.
BASE_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C web element reference


class BrowserUnavailable(RuntimeError):
    """Chromium (or chromedriver) is missing and could not be installed."""


def _which(names: Sequence[str]) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_binary() -> str | None:
    return _which(CHROMIUM_NAMES)


def chromedriver_binary() -> str | None:
    return _which(DRIVER_NAMES)


def ensure_chromium(install: bool = True, timeout: float = 900.0) -> tuple[str, str]:
    """(chromium, chromedriver) paths, installing the Debian packages when either is missing."""
    browser, driver = chromium_binary(), chromedriver_binary()
    if browser and driver:
        return browser, driver
    if not install:
        raise BrowserUnavailable("chromium/chromedriver not on PATH")
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable("chromium/chromedriver not on PATH and no apt-get to install them")
    env_cmd = ["env", "DEBIAN_FRONTEND=noninteractive"]
    try:
        # A stale package index makes the install fail with 404s; refresh once, then install.
        subprocess.run([*env_cmd, apt, "update", "-qq"], capture_output=True, timeout=timeout, check=False)
        done = subprocess.run([*env_cmd, apt, "install", "-y", "-qq", *APT_PACKAGES],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BrowserUnavailable(f"apt-get install {' '.join(APT_PACKAGES)} failed: {error}") from error
    browser, driver = chromium_binary(), chromedriver_binary()
    if not (browser and driver):
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise BrowserUnavailable(f"apt-get install {' '.join(APT_PACKAGES)} failed (rc={done.returncode}): "
                                 + " | ".join(tail))
    return browser, driver


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()


def _run_cli(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    browser, _ = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([browser, *BASE_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(url: str, *, budget_ms: int = 5000, timeout: float = 60.0) -> str:
    """The serialised DOM after the page's scripts ran (`--dump-dom`)."""
    done = _run_cli([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc={done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def screenshot(url: str, png_path: Path, *, window_size: tuple[int, int] = (1280, 2000),
               budget_ms: int = 5000, timeout: float = 60.0) -> Path:
    """A PNG of the page's first `window_size` pixels (`--screenshot`)."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    done = _run_cli([f"--virtual-time-budget={budget_ms}", f"--screenshot={png_path}",
                     f"--window-size={window_size[0]},{window_size[1]}", url], timeout)
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise RuntimeError(f"chromium --screenshot wrote nothing (rc={done.returncode}): {done.stderr[-2000:]}")
    return png_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebDriver:
    """A headless Chromium session driven through chromedriver (W3C WebDriver, JSON over HTTP)."""

    def __init__(self, *, window_size: tuple[int, int] = (1280, 2000), start_timeout: float = 30.0) -> None:
        browser, driver = ensure_chromium()
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._port = _free_port()
        self._base = f"http://127.0.0.1:{self._port}"
        self._process = subprocess.Popen([driver, f"--port={self._port}"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session_id: str | None = None
        try:
            self._wait_ready(start_timeout)
            args = [*BASE_FLAGS, f"--user-data-dir={self._profile.name}",
                    f"--window-size={window_size[0]},{window_size[1]}"]
            value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": browser, "args": args},
            }}}, timeout=start_timeout)
            self.session_id = value["sessionId"]
        except BaseException:
            self.quit()
            raise

    def __enter__(self) -> WebDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserUnavailable(f"chromedriver exited with {self._process.returncode}")
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise BrowserUnavailable("chromedriver did not become ready")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise RuntimeError(f"WebDriver {method} {path} -> {error.code}: {detail}") from error
        return payload.get("value", payload)

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session_id}{path}", body)

    def get(self, url: str) -> None:
        """Navigate and wait for the load event (WebDriver's default page-load strategy)."""
        self._session("POST", "/url", {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        """Run `script` as a function body in the page (`return ...` gives the result)."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        value = self._session("POST", "/element", {"using": "css selector", "value": css})
        return value[ELEMENT_KEY]

    def click(self, css: str) -> None:
        """A real pointer click on the first element matching `css`, scrolled to mid-screen."""
        element = self.find(css)
        # chromedriver scrolls a target to the top edge, where a sticky header would take the click.
        self.execute("arguments[0].scrollIntoView({block: 'center'})", {ELEMENT_KEY: element})
        self._session("POST", f"/element/{element}/click", {})

    def type_text(self, css: str, text: str, *, clear: bool = True) -> None:
        """Real key strokes into the first element matching `css` (cleared first by default)."""
        element = self.find(css)
        self.execute("arguments[0].scrollIntoView({block: 'center'})", {ELEMENT_KEY: element})
        if clear:
            self._session("POST", f"/element/{element}/clear", {})
        self._session("POST", f"/element/{element}/value", {"text": text})

    def wait_for(self, script: str, *args: Any, timeout: float = 10.0, interval: float = 0.1) -> Any:
        """Poll `script` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.execute(script, *args)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def screenshot_png(self, path: Path) -> Path:
        path = Path(path)
        path.write_bytes(base64.b64decode(self._session("GET", "/screenshot")))
        return path

    def quit(self) -> None:
        if self.session_id is not None:
            try:
                self._session("DELETE", "")
            except (RuntimeError, OSError):
                pass
            self.session_id = None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._profile.cleanup()
