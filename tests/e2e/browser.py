"""Browser-test fixtures and helpers: Debian's Chromium driven by Playwright, axe-core, screenshots.

Chromium is /usr/bin/chromium (apt-get install chromium); `playwright install` is never run.
Without Chromium, playwright or axe-core the browser tests skip with the reason, and fail
instead when REQUIRE_BROWSER=1 (set by .ci/run).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ..catalogs import compile_catalogs
from ..helpers import code_from, link_from, require
from .conftest import ROOT, start_gunicorn

CHROMIUM = Path("/usr/bin/chromium")
# No network here: without the background-networking flags Chromium keeps trying to reach
# Google's services and logs the refused connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
VIEWPORTS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}
LOCALES = {"en": "en-US", "tr": "tr-TR"}
# Short enough for a test to wait it out, long enough to see the countdown tick.
COOLDOWN_SECONDS = 10
TIMEOUT_MS = 15_000


def _playwright():
    """The sync Playwright entry point, or a skip (a failure with REQUIRE_BROWSER=1)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("REQUIRE_BROWSER", "playwright is not installed (pip install -r "
                                   "requirements-dev.txt)")
    if not CHROMIUM.exists():
        require("REQUIRE_BROWSER", f"Chromium is not installed at {CHROMIUM} "
                                   "(apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module."""
    sync_playwright = _playwright()
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, redis_server, smtp_server):
    """The app under gunicorn (2 workers) with a short email cooldown, on its own Redis db."""
    compile_catalogs()  # the Turkish pages need messages.mo (`make test` builds it too)
    yield from start_gunicorn(
        tmp_path_factory, redis_server, smtp_server, "gunicorn-browser", db=3,
        extra_env={"RESEND_COOLDOWN_SECONDS": str(COOLDOWN_SECONDS)})


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser build from node_modules (npm ci, as `make test` runs it)."""
    if not AXE.exists():
        require("REQUIRE_BROWSER", f"axe-core is not installed ({AXE.relative_to(ROOT)}): "
                                   "run `npm ci`")
    return AXE.read_text(encoding="utf-8")


class PageWatch:
    """A page's console and script errors: a CSP refusal or a JS exception fails the test."""

    def __init__(self, page):
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message):
        text = message.text
        if message.type == "error" and "favicon" not in text:
            # A 4xx page load is logged as an error by Chromium; those pages are intended.
            if re.search(r"status of (4\d\d)", text):
                return
            self.problems.append(f"console {message.type}: {text}")
        elif "Content Security Policy" in text:
            self.problems.append(f"CSP: {text}")

    def assert_clean(self):
        """No CSP violation, script error or console error so far."""
        assert not self.problems, self.problems


def new_page(chromium, server, lang="en", viewport="desktop", **options):
    """A fresh browser context (its own cookies) and page, in `lang`, at `viewport` size."""
    context = chromium.new_context(base_url=server.base_url, locale=LOCALES[lang],
                                   viewport=VIEWPORTS[viewport], **options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.watch = PageWatch(page)
    return page


def submit(page):
    """Press the main form's submit button (not the header's language buttons)."""
    page.locator("main form button[type=submit]").first.click()


def fill_signup(page, email, password, name=""):
    """Fill in /signup and submit it."""
    page.goto("/signup")
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#confirm", password)
    if name:
        page.fill("#name", name)
    submit(page)


def active_id(page) -> str:
    """The id of the focused element."""
    return page.evaluate("document.activeElement && document.activeElement.id")


def tab_to(page, predicate_js: str, limit: int = 25) -> None:
    """Press Tab until the focused element matches `predicate_js` (an expression of `e`); the
    focus ring must show on it."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(e => {predicate_js})(document.activeElement)"):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", "the focused element shows no focus ring"
            return
    raise AssertionError(f"Tab never reached {predicate_js}")


def wait_until(page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JS expression until it is true (not wait_for_function: the page's CSP forbids eval)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {expression}")
        time.sleep(0.1)


def wait_for_focus(page, element_id: str) -> None:
    """Wait until `element_id` has the focus (autofocus applies at the next rendering step)."""
    wait_until(page, f"document.activeElement && document.activeElement.id === '{element_id}'",
               timeout=5)


def email_code(smtp_server, address, count=1) -> str:
    """The code of the `count`-th email to `address`."""
    return code_from(smtp_server.wait_for(address, count))


def email_link(smtp_server, address, count=1) -> str:
    """The link of the `count`-th email to `address`."""
    return link_from(smtp_server.wait_for(address, count))


def run_axe(page, axe_source: str) -> list[dict]:
    """axe-core's violations on the current page (the context must bypass the page's CSP)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    return page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(" "))}));
    }""")


def screenshot(page, lang: str, viewport: str, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/<lang>/<viewport>/."""
    path = SCREENSHOTS / lang / viewport / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def save_axe_report(lang: str, viewport: str, report: dict) -> Path:
    """Write the axe results of one walk to test-artifacts/axe/<lang>-<viewport>.json."""
    path = ARTIFACTS / "axe" / f"{lang}-{viewport}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
