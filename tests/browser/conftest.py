"""Playwright fixtures for browser tests: one headless Debian Chromium per session, a fresh
browser context per test, and a helper that signs a user in through the login form."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="package", autouse=True)
def _allow_sync_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop registered in the test thread while it runs,
    and Django refuses synchronous database access from such a thread unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set.

    Set for as long as the browser lives (the database fixtures' setup and teardown around
    each browser test included), and undone afterwards so it never leaks into other tests or
    their subprocesses (where `check --deploy` rightly flags it).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="package")
def browser(django_db_setup: None, _allow_sync_orm_beside_playwright: None) -> Iterator[Any]:
    """Headless Debian Chromium, shared by every browser test.

    Scoped to this package (all browser tests live here), not the whole session: while
    Playwright runs, its event loop stays registered in the main thread, and Django would
    refuse the database work of every test collected after the browser tests. Launched after
    the test database exists for the same reason.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{CHROMIUM} is missing: browser tests need Debian's chromium package in CI "
                "(apt-get install chromium, or `make setup`)."
            )
        pytest.skip("install Debian's chromium (make setup does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, transactional_db: None) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies shared between tests)."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def login() -> Callable[[Any, Any, str, str], None]:
    """`login(page, live_server, username, password)`: sign in through the form."""

    def _login(page: Any, live_server: Any, username: str, password: str) -> None:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")

    return _login
