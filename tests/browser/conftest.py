"""Browser tests: the real server on a demo database, driven by headless Chromium (Playwright).

Fixtures for any test in ``tests/browser/`` (each one is marked ``browser`` automatically, so
``-m "not browser"`` leaves them out):

``live_server`` (one per session and worker)
    ``LiveServer(url, platform)`` (``from .server import LiveServer``): the app served by
    uvicorn on a free port of 127.0.0.1, on its own SQLite copy of the demo database
    (``load_demo``: four customers with loans and history, the demo scorecard, 40 white-listed
    ``wechat`` users, six applicants, a share invitation, the demo operators ``risk_maker`` and
    ``risk_checker`` with password ``demo-only-2026``). ``platform`` is the server's own
    ``Platform``: read or prepare data through the service layer. The worker's tests share it,
    so a test that changes data makes its own (a new customer, a fresh idempotency key) or
    asks for ``fresh_live_server``. ``live_server.url_for("/check")`` is a path's full URL.
``fresh_live_server``
    The same, with a server and database of the test's own (a copy and a start: ~0.1 s more).
``browser``
    Chromium, once per test module; ``browser.new_context(base_url=…)`` for a second visitor
    or another server.
``page``
    A new page in a new context (no cookies) whose base URL is ``live_server.url``, so that
    ``page.goto("/check")`` works; Playwright's timeouts cut to 10 s.
``assert_accessible(page)`` (``from .a11y import assert_accessible``)
    Runs axe-core on the page and fails listing its WCAG 2 A/AA violations.

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it), never a
browser that Playwright downloads: ``MICROLOAN_CHROMIUM`` names the executable, else
``chromium`` on the PATH, else ``/usr/bin/chromium``. Without one the browser tests are skipped
with that reason, unless ``MICROLOAN_REQUIRE_BROWSER=1`` (CI sets it) makes them fail.

Loading the demo takes seconds, so one copy is built per test run, under a file lock that the
parallel workers (``pytest -n``) share, and every server gets a copy of it. The servers' rate
limits are raised (every page load comes from 127.0.0.1); the limits have tests of their own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from .server import LiveServer, build_demo, demo_server, find_chromium

BROWSER_REQUIRED_ENV = "MICROLOAN_REQUIRE_BROWSER"
PAGE_TIMEOUT_MS = 10_000
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def demo_template(
    tmp_path_factory: pytest.TempPathFactory, wall_clock: Callable[[], datetime]
) -> Path:
    """A folder holding the demo database and its population, shared by the run's workers."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "browser-demo"
    with (shared / "browser-demo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / "ready").exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a build that died left
            build_demo(folder, wall_clock)
    return folder


@pytest.fixture(scope="session")
def live_server(
    demo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    wall_clock: Callable[[], datetime],
) -> Iterator[LiveServer]:
    with demo_server(demo_template, tmp_path_factory.mktemp("live"), wall_clock) as server:
        yield server


@pytest.fixture
def fresh_live_server(
    demo_template: Path, tmp_path: Path, wall_clock: Callable[[], datetime]
) -> Iterator[LiveServer]:
    with demo_server(demo_template, tmp_path, wall_clock) as server:
        yield server


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = find_chromium()
    if path is not None:
        return path
    reason = (
        "Chromium not found (apt-get install chromium, or set MICROLOAN_CHROMIUM to its path); "
        "the browser tests need it"
    )
    if os.environ.get(BROWSER_REQUIRED_ENV) == "1":
        pytest.fail(f"{BROWSER_REQUIRED_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# Playwright and Chromium start once per module, not per session: while Playwright's sync API
# is alive it marks its own event loop as the thread's running one, and then ``asyncio.run`` in
# the other tests that the same pytest-xdist worker runs next would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(chromium_executable: str, playwright: Playwright) -> Iterator[Browser]:
    # Chromium refuses to run as root with its sandbox on (CI containers run as root)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    browser = playwright.chromium.launch(
        executable_path=chromium_executable, headless=True, args=args
    )
    yield browser
    browser.close()


def _page_on(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A page on the shared demo server (for pages that change nothing)."""
    yield from _page_on(browser, live_server)


@pytest.fixture
def fresh_page(browser: Browser, fresh_live_server: LiveServer) -> Iterator[Page]:
    """A page on a server of its own, on a fresh copy of the demo (for journeys that change
    things)."""
    yield from _page_on(browser, fresh_live_server)
