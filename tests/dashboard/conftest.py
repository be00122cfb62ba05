"""Fixtures of the dashboard tests: the MovieLens demo set-up (two models trained on ml-100k u1,
catalogue, rule files, a bench JSON, a simulated experiment, an embedded registry), the real
service on a free port (uvicorn in a thread), and Debian's headless Chromium driven by Playwright.

Screenshots go to ``test-artifacts/screenshots/`` (the CI artifacts); the ones the README shows
are also copied, optimised, to ``docs/screenshots/``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
DOCS_SHOTS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
API_KEY = "demo-key"


@pytest.fixture(scope="session")
def demo(tmp_path_factory, ml100k_dir) -> Path:
    """The demo folder (`tastemaker.serving.dashboard.demo.build_demo`); returns serve.toml."""
    from tastemaker.serving.dashboard.demo import build_demo

    root = tmp_path_factory.mktemp("dashboard-demo")
    return build_demo(root, models=("ease", "item_cf"), data_path=ml100k_dir, experiment_users=20_000,
                      registry=True, log=lambda *_: None)


@pytest.fixture(scope="session")
def demo_settings(demo):
    """The demo's settings, with its own event log folder (a factory: call it with overrides)."""
    from tastemaker.serving import ServeSettings

    def make(data_dir: Path, **overrides):
        return ServeSettings.from_file(demo, data_dir=str(data_dir), **overrides)

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(demo_settings, tmp_path_factory):
    """The real service (uvicorn, loopback, a free port) in a background thread; yields its base URL."""
    import uvicorn

    from tastemaker.serving import create_app

    settings = demo_settings(tmp_path_factory.mktemp("serve-data"), port=_free_port())
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="dashboard-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{settings.port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="package")
def browser():
    """Debian's Chromium, headless, through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    with sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (the --user-data-dir of a plain chromium run)
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


class PageLog:
    """What a page said: console messages, uncaught errors, failed requests, and requests that
    left the service (there must be none: no CDN, no external resources)."""

    def __init__(self, page, base: str) -> None:
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("request", lambda r: None if r.url.startswith((base, "data:")) else self.external.append(r.url))

    def problems(self) -> list[str]:
        out = [f"console {t}: {text}" for t, text in self.console if t == "error"]
        out += [f"page error: {e}" for e in self.errors]
        out += [f"request failed: {f}" for f in self.failed if "net::ERR_ABORTED" not in f]
        out += [f"external request: {u}" for u in self.external]
        return out


@pytest.fixture
def page(browser, server):
    """A fresh 1280×800 page; at the end of the test, the page must not have logged a console
    error, thrown, or fetched anything outside the service."""
    context = browser.new_context(viewport=VIEWPORT, base_url=server, reduced_motion="reduce")
    pg = context.new_page()
    log = PageLog(pg, server)
    pg.log = log
    yield pg
    problems = log.problems()
    context.close()
    assert not problems, "the page reported problems:\n" + "\n".join(problems)


def _save_screenshot(page, name: str, *, docs: bool = True) -> Path:
    """Screenshot the viewport into the artifacts folder; with `docs`, also an optimised copy in
    docs/screenshots (what the README shows)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if docs:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        target = DOCS_SHOTS / f"{name}.png"
        try:
            from PIL import Image

            with Image.open(path) as img:
                img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) \
                    .save(target, optimize=True)
        except ImportError:
            shutil.copyfile(path, target)
    return path


@pytest.fixture(scope="session")
def screenshot():
    """`screenshot(page, name, docs=True)`: see `_save_screenshot`."""
    return _save_screenshot
