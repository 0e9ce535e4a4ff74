"""Screenshots of the main pages, with data on them, saved under ``test-output/screenshots/``
(``test_the_main_pages_render_for_an_admin-<page>.png``): overview, hosts, host, incidents,
incident, keys, users, audit, rules. Each page must answer 200 and load cleanly (the guard)."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from support.browser import LiveServer, add_session, screenshot

pytestmark = pytest.mark.browser


def test_the_main_pages_render_for_an_admin(
    page: Page, server: LiveServer, request: pytest.FixtureRequest
) -> None:
    reg = server.tenant()
    hosts = [f"node-{i:02d}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    now = time.time()
    for host in hosts:
        server.register_agent(reg.api_key, host)
        for ago in range(300, -1, -30):
            server.ingest(reg.api_key, host, now - ago, cpu_busy=0.2 + (ago % 90) / 200)
    incident_id = server.report(reg.api_key, hosts[0], type_="disk_full", severity="warning")
    add_session(page.context, server.base_url, server.session(reg.client.id, "admin"))

    pages = {
        "overview": ("/", "hosts-online"),
        "hosts": ("/hosts", "hosts-table"),
        "host": (f"/hosts/{hosts[0]}", "chart-cpu"),
        "incidents": ("/incidents", "incidents-table"),
        "incident": (f"/incidents/{incident_id}", "timeline"),
        "keys": ("/keys", "key-create"),
        "users": ("/users", "user-create"),
        "audit": ("/audit", "audit-chain"),
        "rules": ("/rules", "rules-validate"),
    }
    for name, (path, landmark) in pages.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        expect(page.locator(f"[data-test={landmark}]").first).to_be_visible()
        screenshot(page, request.node.name, name)
    expect(page.locator("[data-test=audit-chain]")).to_contain_text("verified")
