"""Scenarios 2 and 3: a new agent appears live on /hosts without reload; its CPU chart gains
points without reload within 2 s of ingest.

Ingest goes through the real API with the tenant's key (``POST /api/v1/agents``, then
``POST /api/v1/metrics`` with a wire-encoded batch), as an agent does.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from support.browser import LIVE_TIMEOUT_MS, LiveServer, add_session, mark_loaded, open_live, still_loaded

pytestmark = pytest.mark.browser


def test_a_new_agent_appears_live_on_the_hosts_page(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    known = f"known-{uuid.uuid4().hex[:6]}"
    server.ingest(reg.api_key, known, time.time() - 5)
    add_session(page.context, server.base_url, server.session(reg.client.id, "viewer"))
    open_live(page, "/hosts")
    expect(page.locator(f"[data-test=host-row][data-host='{known}']")).to_be_visible()
    mark = mark_loaded(page)

    new = f"fresh-{uuid.uuid4().hex[:6]}"
    server.register_agent(reg.api_key, new)
    server.ingest(reg.api_key, new, time.time())

    row = page.locator(f"[data-test=host-row][data-host='{new}']")
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(row.locator("[data-test=host-status]")).to_have_text("online")
    assert still_loaded(page, mark), "the hosts page reloaded instead of updating live"


def _points(page: Page) -> int:
    value = page.locator("[data-test=chart-cpu]").get_attribute("data-points")
    assert value is not None and value.isdigit(), f"chart-cpu data-points={value!r}"
    return int(value)


def test_the_cpu_chart_gains_points_within_two_seconds_of_ingest(page: Page, server: LiveServer) -> None:
    reg = server.tenant()
    host = f"cpu-{uuid.uuid4().hex[:6]}"
    now = time.time()
    for ago in (40, 30, 20, 10):
        server.ingest(reg.api_key, host, now - ago, cpu_busy=0.2)
    add_session(page.context, server.base_url, server.session(reg.client.id, "viewer"))
    open_live(page, f"/hosts/{host}")
    for chart in ("cpu", "memory", "filesystem", "disk", "network", "load"):
        expect(page.locator(f"[data-test=chart-{chart}]")).to_be_visible()
    # the four ticks are plotted (JS fills data-points once the chart is drawn)
    expect(page.locator("[data-test=chart-cpu]")).to_have_attribute(
        "data-points", re.compile(r"^[1-9][0-9]*$")
    )
    before = _points(page)
    mark = mark_loaded(page)

    server.ingest(reg.api_key, host, time.time(), cpu_busy=0.9)
    ingested = time.monotonic()
    expect(page.locator("[data-test=chart-cpu]")).not_to_have_attribute(
        "data-points", str(before), timeout=2_000
    )
    waited = time.monotonic() - ingested
    assert _points(page) > before
    assert waited <= 2.0, f"the chart took {waited:.2f} s"
    assert still_loaded(page, mark), "the host page reloaded instead of updating live"
