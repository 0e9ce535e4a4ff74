"""Scenarios 7 and 8: a viewer sees no action buttons and the API refuses the viewer's acts (403,
from the page itself with its cookie and CSRF token, as a button would send them); tenant A's user
cannot load tenant B's host or incident by URL (404, as for one that does not exist)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from support.browser import LiveServer, PageGuard, add_session, page_fetch

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Fleet:
    client_id: str
    key: str
    host: str
    incident_id: str


def _fleet(server: LiveServer) -> Fleet:
    """A tenant with a host whose agent allows ``restart``, and an open incident on it."""
    reg = server.tenant()
    host = f"db-{uuid.uuid4().hex[:6]}"
    server.register_agent(reg.api_key, host)
    server.ingest(reg.api_key, host, time.time())
    incident_id = server.report(reg.api_key, host, type_="disk_full", severity="warning")
    return Fleet(reg.client.id, reg.api_key, host, incident_id)


ACTION_BUTTONS = ("action-form", "action-run")
INCIDENT_BUTTONS = ("ack", "resolve", "note-form")


def test_a_viewer_sees_no_action_buttons_and_the_api_refuses_the_viewer(
    page: Page, server: LiveServer, guard: PageGuard
) -> None:
    guard.allow(r"status of 403")  # the refusals this test asks for
    fleet = _fleet(server)
    viewer = server.session(fleet.client_id, "viewer")
    add_session(page.context, server.base_url, viewer)

    response = page.goto(f"/hosts/{fleet.host}")
    assert response is not None and response.status == 200
    expect(
        page.locator("[data-test=chart-cpu]")
    ).to_be_visible()  # the page is there, only the controls are not
    for name in ACTION_BUTTONS:
        expect(page.locator(f"[data-test={name}]")).to_have_count(0)
    body = {"action": "restart", "params": {"name": "web"}}
    assert page_fetch(page, "POST", f"/api/v1/agents/{fleet.host}/commands", viewer.csrf, body) == 403

    response = page.goto(f"/incidents/{fleet.incident_id}")
    assert response is not None and response.status == 200
    expect(page.locator("[data-test=incident-title]")).not_to_be_empty()
    for name in INCIDENT_BUTTONS:
        expect(page.locator(f"[data-test={name}]")).to_have_count(0)
    path = f"/api/v1/incidents/{fleet.incident_id}"
    assert page_fetch(page, "POST", f"{path}/acknowledge", viewer.csrf, {}) == 403
    assert page_fetch(page, "POST", f"{path}/notes", viewer.csrf, {"text": "viewer was here"}) == 403
    # the refusals changed nothing
    with server.http(fleet.key) as http:
        detail = http.get(path).json()
    assert detail["status"] != "acknowledged"
    assert all(entry["kind"] != "note" for entry in detail["timeline"])


def test_an_operator_sees_the_buttons_a_viewer_does_not(page: Page, server: LiveServer) -> None:
    """The other side of the viewer test: the same pages do have the controls for an operator."""
    fleet = _fleet(server)
    add_session(page.context, server.base_url, server.session(fleet.client_id, "operator"))
    page.goto(f"/hosts/{fleet.host}")
    for name in ACTION_BUTTONS:
        expect(page.locator(f"[data-test={name}]")).to_have_count(1)
    page.goto(f"/incidents/{fleet.incident_id}")
    # no runbook and no LLM: the responder escalated it to people, who may take it or end it
    expect(page.locator("[data-test=incident-status]")).to_have_text("escalated")
    for name in INCIDENT_BUTTONS:
        expect(page.locator(f"[data-test={name}]")).to_have_count(1)
    page.locator("[data-test=ack]").click()
    expect(page.locator("[data-test=incident-status]")).to_have_text("acknowledged")
    expect(page.locator("[data-test=ack]")).to_have_count(0)
    expect(page.locator("[data-test=resolve]")).to_have_count(1)


def test_tenant_a_cannot_load_tenant_b_pages_by_url(page: Page, server: LiveServer, guard: PageGuard) -> None:
    guard.allow(r"status of 404")  # the answers this test asks for
    mine, theirs = _fleet(server), _fleet(server)
    add_session(page.context, server.base_url, server.session(mine.client_id, "admin"))

    for path in (f"/hosts/{mine.host}", f"/incidents/{mine.incident_id}"):
        own = page.goto(path)
        assert own is not None and own.status == 200, path
    for path in (f"/hosts/{theirs.host}", f"/incidents/{theirs.incident_id}"):
        other = page.goto(path)
        assert other is not None and other.status == 404, path
        # nothing of B's host or incident is on the answer (it may echo the name asked for)
        for landmark in ("chart-cpu", "host-checks", "incident-title", "timeline"):
            expect(page.locator(f"[data-test={landmark}]")).to_have_count(0)
    # lists show none of B's rows either
    page.goto("/hosts")
    expect(page.locator(f"[data-test=host-row][data-host='{mine.host}']")).to_be_visible()
    expect(page.locator(f"[data-test=host-row][data-host='{theirs.host}']")).to_have_count(0)
    page.goto("/incidents")
    expect(page.locator(f"[data-test=incident-row][data-incident-id='{mine.incident_id}']")).to_be_visible()
    expect(page.locator(f"[data-test=incident-row][data-incident-id='{theirs.incident_id}']")).to_have_count(
        0
    )
