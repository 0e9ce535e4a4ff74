"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, one server per module.

One browser per session (launching Chromium costs ~1 s), one server per module (``live_server``:
uvicorn + responder on SQLite), a fresh context per test (its own cookies), guarded: a request to
anything but the server, a console error (CSP violations land there) or an uncaught page error
fails the test. Each test's last page is saved to ``test-output/screenshots/<test>.png``.

Browsers cannot be downloaded here: without ``/usr/bin/chromium`` (``.ci/run`` installs Debian's
package) every browser test is skipped with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from support.browser import (
    CHROMIUM,
    LAUNCH_ARGS,
    LIVE_TIMEOUT_MS,
    LiveServer,
    PageGuard,
    live_server,
    screenshot,
)

expect.set_options(timeout=LIVE_TIMEOUT_MS)
_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note whether the test body failed, so the guard does not report the same failure twice."""
    report = yield
    if call.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module, not per session: while Playwright's sync API runs, the main thread
    has a running event loop, and every later test's ``asyncio.run`` would fail."""
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} is missing: install Debian's chromium (`.ci/run` does) to run browser tests"
        if os.environ.get("CI_REQUIRE_BROWSER"):  # set by .ci/run: in CI a missing browser is a failure
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(LAUNCH_ARGS))
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("browser-server")) as live:
        yield live


@pytest.fixture
def guard(server: LiveServer) -> PageGuard:
    return PageGuard(server.base_url)


@pytest.fixture
def context(browser: Browser, server: LiveServer, guard: PageGuard) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    guard.attach(ctx)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext, guard: PageGuard, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The test's page; at the end its screenshot is saved and the guard's findings fail the test."""
    pg = context.new_page()
    yield pg
    if not pg.is_closed():
        try:
            screenshot(pg, request.node.name)
        except Exception as exc:
            print(f"screenshot of {request.node.name} failed: {exc}")
    problems = guard.problems()
    if problems and request.node.stash.get(_CALL_FAILED, False):
        print("the page also misbehaved:\n" + "\n".join(problems))  # shown with the failure
    elif problems:
        pytest.fail("the page misbehaved:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
