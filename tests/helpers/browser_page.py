"""Shared headless-chromium setup for the page tests (diff viewer, doctor page).

Playwright drives Debian's /usr/bin/chromium (``make browser``); Playwright's own browser
download is never used. ``chromium_or_skip`` skips when chromium or the ``playwright`` package
(dev extra) is missing. :class:`LoadedPage` opens a page and records every console error or
warning, page error and non-file request; each test file subclasses it with its own queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> Iterator:
    """Generator for a module-scoped fixture: a launched chromium, closed afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (run `make browser`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.skip(f"playwright is not importable ({e}); it is in the dev extra")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


class LoadedPage:
    """A page loaded until ``body[data-ready=true]``, with its errors and non-file requests."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", self._request)
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def _request(self, request) -> None:
        if not request.url.startswith("file://"):
            self.requests.append(request.url)

    def close(self) -> None:
        self.page.close()


def page_opener(browser, page_class: type[LoadedPage]) -> Iterator:
    """Generator for an ``open_page`` fixture: ``opener(path)`` loads a page; all are closed."""
    pages: list[LoadedPage] = []

    def opener(path: Path) -> LoadedPage:
        pages.append(page_class(browser, path))
        return pages[-1]

    yield opener
    for page in pages:
        page.close()
