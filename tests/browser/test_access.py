"""Scenario 1: first-run setup at /setup creates the admin and lands signed in; sign out; a wrong
password shows the error; the right one signs in again; /setup is gone once a user exists.

This module's server has no user and no tenant (the fixture ``server`` is per module), which is
what a first run looks like; no other test may create users on it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from support.browser import LiveServer, PageGuard, screenshot

pytestmark = pytest.mark.browser

EMAIL = "first.admin@example.com"
PASSWORD = "a long and unguessable passphrase 7"


def _login(page: Page, email: str, password: str) -> None:
    form = page.locator("[data-test=login-form]")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    page.locator("[data-test=login-submit]").click()


def test_first_run_setup_then_sign_out_a_wrong_password_and_sign_in(
    page: Page, server: LiveServer, guard: PageGuard, request: pytest.FixtureRequest
) -> None:
    guard.allow(r"status of 40[134]")  # the refused sign-in and the closed /setup answer 4xx on purpose
    response = page.goto("/setup")
    assert response is not None and response.status == 200
    form = page.locator("[data-test=setup-form]")
    form.locator("input[name=email]").fill(EMAIL)
    form.locator("input[name=name]").fill("First Admin")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=company_name]").fill("Acme Ops")
    screenshot(page, request.node.name, "setup")
    page.locator("[data-test=setup-submit]").click()

    # landed signed in, as an admin
    expect(page.locator("[data-test=whoami]")).to_contain_text(EMAIL)
    expect(page.locator("[data-test=whoami]")).to_contain_text("admin")
    expect(page.locator("[data-test=nav-users]")).to_be_visible()
    assert "/setup" not in page.url and "/login" not in page.url

    page.locator("[data-test=logout]").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.locator("[data-test=whoami]")).to_have_count(0)
    # signed out for real: a page sends the browser back to sign-in
    page.goto("/hosts")
    expect(page).to_have_url(re.compile(r"/login\?next=/hosts"))

    _login(page, EMAIL, "not the password at all")
    expect(page.locator("[data-test=login-error]")).to_be_visible()
    expect(page.locator("[data-test=whoami]")).to_have_count(0)
    screenshot(page, request.node.name, "login-error")

    _login(page, EMAIL, PASSWORD)
    expect(page.locator("[data-test=whoami]")).to_contain_text(EMAIL)
    expect(page).to_have_url(re.compile(r"/hosts$"))  # back where the sign-in was asked for

    # first-run setup only works while no user exists
    closed = page.goto("/setup")
    assert closed is not None and closed.status == 404
