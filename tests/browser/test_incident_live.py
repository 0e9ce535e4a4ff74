"""Scenario 4: a failure opens an incident that appears live on /incidents, and its timeline fills
as the responder acts, without reload.

The failure is a critical ``app_down`` event for a push agent whose allowlisted ``restart`` is a
local signed receiver; the server's real responder thread decides (default runbook) and sends the
command. The receiver holds the run (``gate``) until the incident page is open, so the result
entry can only reach the page live.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from playwright.sync_api import Page, expect

from support.browser import (
    LIVE_TIMEOUT_MS,
    LiveServer,
    add_session,
    mark_loaded,
    open_live,
    still_loaded,
    until,
)

pytestmark = pytest.mark.browser


def test_an_incident_appears_live_and_its_timeline_fills_as_the_responder_acts(
    page: Page, server: LiveServer
) -> None:
    node = f"web-{uuid.uuid4().hex[:6]}"
    with server.push_tenant(node, gate=threading.Event()) as recv:
        assert recv.gate is not None
        add_session(page.context, server.base_url, server.session(recv.reg.client.id, "operator"))
        open_live(page, "/incidents")
        expect(page.locator("[data-test=incidents-table]")).to_be_visible()
        mark = mark_loaded(page)

        incident_id = server.report(recv.reg.api_key, node)
        row = page.locator(f"[data-test=incident-row][data-incident-id='{incident_id}']")
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        assert still_loaded(page, mark), "the incidents page reloaded instead of updating live"

        # the responder has decided and its command is at the receiver, held there
        until(recv.entered.is_set, what="the restart to reach the receiver")
        open_live(page, f"/incidents/{incident_id}")
        expect(page.locator("[data-test=incident-title]")).not_to_be_empty()
        entries = page.locator("[data-test=timeline] [data-test=timeline-entry]")
        expect(entries.first).to_be_visible()
        expect(page.locator("[data-test=timeline-entry][data-kind=result]")).to_have_count(0)
        before = entries.count()
        mark = mark_loaded(page)

        recv.gate.set()  # the restart runs and answers; the responder records the result
        until(lambda: recv.total == 1, what="the restart to run")
        result = page.locator("[data-test=timeline-entry][data-kind=result]")
        expect(result).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        for kind in ("decision", "command"):
            expect(page.locator(f"[data-test=timeline-entry][data-kind={kind}]").first).to_be_visible()
        assert entries.count() > before
        expect(page.locator("[data-test=incident-status]")).to_contain_text("remediating")
        assert still_loaded(page, mark), "the incident page reloaded instead of updating live"
