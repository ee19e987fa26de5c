"""A real browser for the status page's acceptance tests: Playwright driving Debian's Chromium.

Playwright (the ``test`` extra) drives the system's ``chromium`` (Debian's package, installed by
``.ci/run``) headless; its own browser download (``playwright install``) is never used. Without
a ``chromium`` on PATH the tests that ask for a browser skip (fail under
``PROBED_REQUIRE_SERVICES=1``, see tests/_require.py).

- ``chromium``: one headless browser per test module (started on first use).
- ``browser_page``: a fresh context and page per test, light scheme, a 1280x800
  viewport; every console error and uncaught page error is collected in ``page_errors``
  (:class:`PageErrors`), which the test asserts on.
- :func:`new_page`: another context (dark scheme, JavaScript off, a phone's width).
- :func:`screenshot`: a full-page PNG under :data:`SCREENSHOTS` (``artifacts/screenshots/``,
  git-ignored; CI keeps the folder as its artifact, nothing is uploaded anywhere else).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests._require import require

__all__ = [
    "SCREENSHOTS",
    "PageErrors",
    "browser_page",
    "chromium",
    "chromium_path",
    "new_page",
    "screenshot",
]

SCREENSHOTS = Path(
    os.environ.get("PROBED_SCREENSHOTS", Path(__file__).parents[2] / "artifacts" / "screenshots")
)
"""Where :func:`screenshot` writes (``PROBED_SCREENSHOTS`` overrides; README: Status page)."""

Scheme = Literal["light", "dark"]


def chromium_path() -> str | None:
    """Debian's ``chromium`` (or ``chromium-browser``) on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per test module, driven by Playwright (Playwright's sync API
    keeps an event loop of its own: closed before another module's asyncio tests run)."""
    path = chromium_path()
    require(path is not None, "no chromium on PATH (Debian package chromium)")
    assert path is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=path,
            headless=True,
            # a container's root has no user namespaces for Chromium's sandbox
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of every page the test opened."""

    messages: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text} ({message.location.get('url')})")

    def page_error(self, error: Exception) -> None:
        self.messages.append(f"page error: {error}")


def new_page(
    browser: Browser,
    errors: PageErrors | None = None,
    *,
    scheme: Scheme = "light",
    javascript: bool = True,
    width: int = 1280,
    height: int = 800,
) -> Page:
    """A page in a new context (closed with the browser or by ``page.context.close()``)."""
    context = browser.new_context(
        color_scheme=scheme,
        java_script_enabled=javascript,
        viewport={"width": width, "height": height},
        reduced_motion="reduce",
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    if errors is not None:
        page.on("console", errors.console)
        page.on("pageerror", errors.page_error)
    return page


@pytest.fixture
def page_errors() -> PageErrors:
    """What the test's pages reported as errors (assert it is empty)."""
    return PageErrors()


@pytest.fixture
def browser_page(chromium: Browser, page_errors: PageErrors) -> Iterator[Page]:
    """A fresh page (light scheme, JavaScript on) whose errors go to ``page_errors``."""
    page = new_page(chromium, page_errors)
    try:
        yield page
    finally:
        page.context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``SCREENSHOTS/name.png``; return its path."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError(f"screenshot names are lower-case file stems, not {name!r}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
