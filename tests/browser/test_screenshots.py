"""Screenshots of the main pages, with data on them, saved under ``test-output/screenshots/``
(``test_the_main_pages_render_for_an_admin-<page>.png``): overview, hosts, host, incidents,
incident, keys, users, audit, rules. Each page must answer 200 and load cleanly (the guard)."""

from __future__ import annotations

import re
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
    # what each page must show of this tenant's data, besides its landmark
    shows = {
        "overview": lambda: expect(page.locator("[data-test=hosts-online]")).to_have_text("3"),
        "hosts": lambda: expect(page.locator("[data-test=host-row]")).to_have_count(3),
        "host": lambda: expect(page.locator("[data-test=chart-cpu]")).to_have_attribute(
            "data-points", re.compile(r"^[1-9][0-9]*$")
        ),
        "incidents": lambda: expect(
            page.locator(f"[data-test=incident-row][data-incident-id='{incident_id}']")
        ).to_be_visible(),
        "incident": lambda: expect(page.locator("[data-test=timeline-entry]").first).to_be_visible(),
        "keys": lambda: expect(page.locator("[data-test=key-row]").first).to_be_visible(),
        "users": lambda: expect(page.locator("[data-test=user-row]").first).to_be_visible(),
        "audit": lambda: expect(page.locator("[data-test=audit-chain]")).to_contain_text("verified"),
        "rules": lambda: expect(page.locator("[data-test=rule-row]").first).to_be_visible(),
    }
    for name, (path, landmark) in pages.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        expect(page.locator(f"[data-test={landmark}]").first).to_be_visible()
        shows[name]()
        screenshot(page, request.node.name, name)
