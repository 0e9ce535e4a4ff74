"""Runbook runs on the incident page and the responder pages in Chromium, with runs written as the
executor writes them (``support.run_pages``: ``insert_run``, the pure core, ``save_run``) on the
browser tests' default server, which runs no executor (it loads no step runbook):

1. a viewer sees a run waiting for approval, its command and time left, and no button; the
   approval route answers a viewer's request 403;
2. an operator approves on the incident page; the test then plays the executor turn by turn, so
   each state a run passes through (act in progress, verify in progress, completed with its MTTR)
   is seen arriving on the open page;
3. the responder pages: effectiveness figures and the admin's kill switch.

The whole loop with the real executor is ``test_runs_dashboard.py``.
"""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from infragent.responder.step_run import ApprovalDecision, CheckUp, CommandResult
from infragent.store import run_reads
from support.browser import (
    LIVE_TIMEOUT_MS,
    LiveServer,
    PageGuard,
    add_session,
    mark_loaded,
    open_live,
    page_fetch,
    still_loaded,
    until,
)
from support.dashboard_data import incident
from support.run_pages import advance, healed_run, waiting_run

pytestmark = pytest.mark.browser

BUTTONS = ("approve", "reject", "run-cancel")


def _approval_status(server: LiveServer, client_id: str, approval_id: str) -> str:
    with server.store.read() as conn:
        return run_reads.get_approval(conn, client_id, approval_id, time.time()).status


def test_a_viewer_sees_the_waiting_run_and_no_buttons(
    page: Page, server: LiveServer, guard: PageGuard
) -> None:
    guard.allow(r"status of 403")  # the refusal this test asks for
    reg = server.tenant()
    node = f"web-{uuid.uuid4().hex[:6]}"
    now = time.time()
    incident_id = incident(server.store, reg.client.id, now, node=node)
    made = waiting_run(server.store, reg.client.id, incident_id, node, now)
    viewer = server.session(reg.client.id, "viewer")
    add_session(page.context, server.base_url, viewer)
    open_live(page, f"/incidents/{incident_id}")
    run = page.locator(f"[data-test=run][data-run-id='{made.run_id}']")
    expect(run).to_have_attribute("data-status", "waiting_approval")
    expect(run.locator("[data-test=approval-command]")).to_have_text("restart web name=web")
    expect(run.locator("[data-test=approval-left]")).to_contain_text("left")
    for button in BUTTONS:
        expect(page.locator(f"[data-test={button}]")).to_have_count(0)
    assert made.approval_id is not None
    status = page_fetch(page, "POST", f"/approvals/{made.approval_id}/approve", viewer.csrf)
    assert status == 403
    assert _approval_status(server, reg.client.id, made.approval_id) == "pending"


def test_an_operator_approves_on_the_incident_page_and_watches_the_run_finish(
    page: Page, server: LiveServer
) -> None:
    reg = server.tenant()
    node = f"web-{uuid.uuid4().hex[:6]}"
    now = time.time()
    incident_id = incident(server.store, reg.client.id, now, node=node)
    made = waiting_run(server.store, reg.client.id, incident_id, node, now)
    assert made.approval_id is not None
    add_session(page.context, server.base_url, server.session(reg.client.id, "operator"))
    open_live(page, f"/incidents/{incident_id}")
    run = page.locator(f"[data-test=run][data-run-id='{made.run_id}']")
    expect(run).to_have_attribute("data-status", "waiting_approval")
    mark = mark_loaded(page)

    run.locator("[data-test=approval-note]").fill("go ahead")
    run.locator("[data-test=approve]").click()
    expect(page.locator("[data-test=approve]")).to_have_count(0)
    until(
        lambda: _approval_status(server, reg.client.id, made.approval_id or "") == "approved", 10, "approval"
    )
    with server.store.read() as conn:
        assert run_reads.get_approval(conn, reg.client.id, made.approval_id, time.time()).note == "go ahead"
    expect(page.locator("[data-test=runs-error]")).to_have_count(0)

    # the executor's turns: the approved restart is sent, answered, and the check recovers
    advance(server.store, made.run_id, ApprovalDecision(1, "approved", "user:op"), time.time())
    expect(run.locator("[data-test=run-current][data-kind=act]")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    advance(server.store, made.run_id, CommandResult(1, "ok", "restarted web"), time.time())
    expect(run.locator("[data-test=run-step][data-step-id=restart]")).to_have_attribute("data-outcome", "ok")
    expect(run.locator("[data-test=run-current][data-kind=verify]")).to_be_visible()
    advance(server.store, made.run_id, CheckUp(), time.time(), mttr_s=4.2)
    expect(run).to_have_attribute("data-status", "completed", timeout=LIVE_TIMEOUT_MS)
    expect(run.locator("[data-test=run-step][data-step-id=verify]")).to_have_attribute("data-outcome", "ok")
    expect(run.locator("[data-test=run-mttr]")).to_have_text("MTTR 4.20 s")
    expect(page.locator("[data-test=incident-runs]")).to_have_attribute("data-going", "no")
    assert still_loaded(page, mark), "the incident page reloaded instead of updating live"


def test_the_responder_pages_show_effectiveness_and_let_an_admin_stop_everything(
    page: Page, server: LiveServer
) -> None:
    reg = server.tenant()
    node = f"web-{uuid.uuid4().hex[:6]}"
    incident_id = incident(server.store, reg.client.id, time.time(), node=node)
    healed_run(server.store, reg.client.id, incident_id, node, time.time())
    add_session(page.context, server.base_url, server.session(reg.client.id, "admin"))
    page.goto("/")
    page.locator("[data-test=nav-responder]").click()
    row = page.locator("[data-test=effectiveness-runbook][data-runbook=restart-web]")
    expect(row.locator("[data-test=eff-success]")).to_have_text("100%")
    expect(row.locator("[data-test=eff-median]")).to_have_text("12 s")

    page.locator("[data-test=tab-guardrails]").click()
    switch = page.locator("[data-test=kill-switch]")
    expect(switch).to_have_attribute("data-state", "off")
    page.locator("[data-test=kill-switch-reason]").fill("browser test")
    page.locator("[data-test=kill-switch-toggle]").click()
    expect(page.locator("[data-test=kill-switch]")).to_have_attribute("data-state", "on")
    expect(page.locator("[data-test=kill-switch-by]")).to_contain_text("browser test")
    page.locator("[data-test=kill-switch-toggle]").click()  # off again: the server is shared by the module
    expect(page.locator("[data-test=kill-switch]")).to_have_attribute("data-state", "off")
    page.locator("[data-test=tab-schedules]").click()
    expect(page.locator("[data-test=schedules-empty]")).to_be_visible()
