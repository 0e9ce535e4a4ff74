"""The harness itself: Chromium reaches the server, a minted session signs the browser in, and the
guard catches what it must (a non-local request, a console error)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from support.browser import LiveServer, PageGuard, add_session

pytestmark = pytest.mark.browser


def test_signed_out_the_overview_sends_to_first_run_setup_then_to_sign_in(
    page: Page, server: LiveServer
) -> None:
    """Before anyone exists, sign-in is the first-run setup; once a user exists, it is /login. A
    signed-out page opens no live stream (it would be refused: the guard fails on the 401)."""
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/api/v1/stream" in r.url else None)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.locator("[data-test=setup-form]")).to_be_visible()

    server.session(server.tenant().client.id, "viewer")  # someone exists now
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.locator("[data-test=login-form]")).to_be_visible()
    expect(page.locator("[data-test=whoami]")).to_have_count(0)
    assert streams == []


def test_a_minted_session_signs_the_browser_in(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    me = server.session(reg.client.id, "admin")
    add_session(page.context, server.base_url, me)
    response = page.goto("/")
    assert response is not None and response.status == 200
    expect(page.locator("[data-test=whoami]")).to_contain_text(me.email)
    expect(page.locator("[data-test=nav-keys]")).to_be_visible()
    # the page's scripts and styles came from this server and ran under the strict CSP
    assert response.headers["content-security-policy"].startswith("default-src")
    assert "no-store" in response.headers["cache-control"]


def test_the_guard_blocks_foreign_requests_and_sees_console_errors(
    browser: Browser, server: LiveServer
) -> None:
    guard = PageGuard(server.base_url)
    context = browser.new_context(base_url=server.base_url)
    try:
        guard.attach(context)
        pg = context.new_page()
        # a blank page has no CSP: the request reaches the guard's route, which must block it
        pg.set_content('<img src="https://cdn.example.com/x.png">')
        pg.evaluate("""() => console.error("boom")""")
        for _ in range(100):  # bounded: 5 s
            if guard.foreign and any("boom" in t for t in guard.console_errors):
                break
            pg.wait_for_timeout(50)
        assert guard.foreign == ["https://cdn.example.com/x.png"]
        problems = guard.problems()
        assert any("cdn.example.com" in p for p in problems)
        assert any("boom" in p for p in problems)
    finally:
        context.close()
