"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright, and a real
``salesflow ui`` subprocess to point it at.

Playwright never downloads a browser here: it starts the system Chromium with the flags a
closed, sandboxed machine needs, and a fresh profile per launch (Playwright makes a new
temporary user-data dir each time). ``make test`` installs Chromium when it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.fixtures.cli import Cli, Service, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL_LINE = re.compile(r"salesflow ui: (http://\S+/)")
TOKEN_LINE = re.compile(r"open (http://\S+/\?token=\S+)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: apt-get install -y chromium (make test installs it)"
    )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) per test."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors  # type: ignore[attr-defined]
    return tab


@dataclass
class Dashboard:
    """A running ``salesflow ui``: its base URL, and the login URL when it has a token."""

    url: str
    login: str | None
    service: Service

    def at(self, path: str) -> str:
        return self.url.rstrip("/") + path


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def dashboard(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Iterator[Dashboard]:
    """``salesflow ui --port 0`` on ``cli``'s data dir, until the ``with`` block ends."""
    service = cli.start("ui", "--port", "0", *args, env=env)
    try:
        found = wait_for(
            lambda: URL_LINE.search(service.stdout) or (service.assert_alive() or None),
            timeout=60,
            what="salesflow ui to print its URL",
        )
        url = found.group(1)
        # Serving starts after every start-up line is printed: once it answers, all are out.
        wait_for(lambda: _answers(url), timeout=60, what=f"{url} to answer")
        login = TOKEN_LINE.search(service.stdout)
        yield Dashboard(url, login.group(1) if login else None, service)
    finally:
        service.stop()
