"""Scenario 6: an API key is created on /keys (shown once), works against the API, is revoked on the
page, and is then refused (401)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from support.browser import LiveServer, add_session

pytestmark = pytest.mark.browser


def _status_with(server: LiveServer, key: str) -> int:
    with server.http(key) as http:
        return http.get("/api/v1/incidents").status_code


def test_a_key_created_on_the_page_works_until_revoked_on_the_page(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    add_session(page.context, server.base_url, server.session(reg.client.id, "admin"))
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke button may ask the browser to confirm
    response = page.goto("/keys")
    assert response is not None and response.status == 200

    form = page.locator("[data-test=key-create]")
    form.locator("input[name=name]").fill("ci-reader")
    form.locator("input[name=scopes][value=read]").check()
    page.locator("[data-test=key-create-submit]").click()
    secret_box = page.locator("[data-test=key-secret]")
    expect(secret_box).to_be_visible()
    tag = secret_box.evaluate("(el) => el.tagName")
    shown = secret_box.input_value() if tag in ("INPUT", "TEXTAREA") else secret_box.inner_text()
    found = re.search(r"ia_[a-z0-9]{12}_[A-Za-z0-9_-]{43}", shown)
    assert found, f"no key in {shown!r}"
    secret = found.group(0)
    key_id = secret.split("_")[1]

    assert _status_with(server, secret) == 200
    # the secret is shown once: the list shows the key, never its secret
    page.reload()
    row = page.locator(f"[data-test=key-row][data-key-id='{key_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("ci-reader")
    assert secret not in page.content()

    row.locator("[data-test=key-revoke]").click()  # confirmed in the browser's dialog (accepted above)
    expect(row).to_contain_text(re.compile("revoked", re.IGNORECASE))
    # refused at once: the revoke drops the key from the server's key cache, no 30 s of grace
    assert _status_with(server, secret) == 401
