"""Runbook runs on the incident page, in Chromium against a real server (issue 14, point 7):

1. **the whole loop**: a crash (``app_down`` through the events API) of a host whose runbook is
   ``act restart (approval: required) -> verify -> escalate``; the server's responder starts the
   run and its executor waits for approval; an operator approves on the incident page and, without
   a reload, sees the restart sent and run by the host's receiver, the verify step wait, and, once
   the service is back (``app_recovered`` for the same node and service, as its agent reports it),
   the run complete with its MTTR and the incident resolved; the receiver ran the restart once;
2. a viewer sees a run waiting for approval, its command and time left, and no button; the
   approval route answers a viewer's request 403;
3. the same page fed turn by turn (the test plays the executor: ``support.run_pages``), so each
   state a run passes through (act in progress, verify in progress, completed) is seen live;
4. the responder pages: effectiveness figures and the admin's kill switch.

The module's server loads one step runbook file, matching only hosts named ``loop-*``, so the
incidents of scenarios 2-4 (hosts ``web-*``, runs written by the test) are never the executor's.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from infragent.responder.step_run import ApprovalDecision, CheckUp, CommandResult
from infragent.store import incidents, run_reads
from support.browser import (
    LIVE_TIMEOUT_MS,
    LiveServer,
    PageGuard,
    add_session,
    live_server,
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
RUNBOOKS = """\
runbooks:
  - name: restart-approved
    match: {event_type: app_down, labels: {node_id: "loop-*"}}
    steps:
      - id: restart
        act: {action: restart, target: "{service}", params: {name: "{service}"}}
        approval: required
      - {id: verify, verify: check, timeout: 120s, on_failure: next, on_success: complete}
      - {id: page, escalate: "{service} did not come back after a restart"}
"""
#: how long the executor may take to act on an answer: it is woken by its own poll (approvals are
#: re-read every few seconds), not by the page
LOOP_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The browser tests' server with the step runbook above loaded: its responder thread runs the
    executor. The sweep is slow so that an incident a test writes itself is not decided by the
    responder in the instant before the test writes its run."""
    tmp: Path = tmp_path_factory.mktemp("runs-browser")
    runbooks = tmp / "runbooks.yaml"
    runbooks.write_text(RUNBOOKS, encoding="utf-8")
    with live_server(tmp, runbooks_path=runbooks, run_poll_s=0.2, sweep_interval_s=600) as live:
        yield live


def _approval_status(server: LiveServer, client_id: str, approval_id: str) -> str:
    with server.store.read() as conn:
        return run_reads.get_approval(conn, client_id, approval_id, time.time()).status


def _report(server: LiveServer, key: str, node: str, type_: str, severity: str) -> None:
    with server.http(key) as http:
        r = http.post(
            "/api/v1/events",
            json={"type": type_, "service": "web", "severity": severity, "node_id": node, "data": {}},
        )
    assert r.status_code == 202, r.text


def _incident_status(server: LiveServer, client_id: str, incident_id: str) -> str:
    with server.store.read() as conn:
        found = incidents.get_incident(conn, client_id, incident_id)
    assert found is not None
    return found.status.value


def test_an_operator_approves_on_the_incident_page_sees_it_run_and_the_incident_resolve(
    page: Page, server: LiveServer
) -> None:
    node = f"loop-{uuid.uuid4().hex[:6]}"
    with server.push_tenant(node, gate=threading.Event()) as recv:
        assert recv.gate is not None
        client_id = recv.reg.client.id
        add_session(page.context, server.base_url, server.session(client_id, "operator"))
        incident_id = server.report(recv.reg.api_key, node)  # the crash

        open_live(page, f"/incidents/{incident_id}")
        run = page.locator("[data-test=run]")
        expect(run).to_have_attribute("data-status", "waiting_approval", timeout=LOOP_TIMEOUT_MS)
        expect(run).to_have_attribute("data-run-id", re.compile(".+"))
        expect(run.locator("[data-test=approval-command]")).to_have_text("restart web name=web")
        expect(run.locator("[data-test=approval-left]")).to_contain_text("left")
        assert recv.total == 0 and not recv.entered.is_set(), "the restart ran before anyone approved it"
        mark = mark_loaded(page)

        run.locator("[data-test=approve]").click()
        expect(page.locator("[data-test=approve]")).to_have_count(0)
        expect(page.locator("[data-test=runs-error]")).to_have_count(0)
        until(recv.entered.is_set, LOOP_TIMEOUT_MS / 1000, "the approved restart to reach the receiver")
        expect(run.locator("[data-test=run-current][data-kind=act]")).to_be_visible(timeout=LOOP_TIMEOUT_MS)

        recv.gate.set()  # the restart runs and answers
        step = run.locator("[data-test=run-step][data-step-id=restart]")
        expect(step).to_have_attribute("data-outcome", "ok", timeout=LOOP_TIMEOUT_MS)
        expect(step.locator("[data-test=step-command]")).to_have_text("restart web name=web")
        expect(run.locator("[data-test=run-current][data-kind=verify]")).to_be_visible(
            timeout=LOOP_TIMEOUT_MS
        )
        expect(page.locator("[data-test=incident-status]")).not_to_have_text("resolved")

        _report(server, recv.reg.api_key, node, "app_recovered", "info")  # the agent sees it back up
        expect(run).to_have_attribute("data-status", "completed", timeout=LOOP_TIMEOUT_MS)
        expect(run).to_have_attribute("data-outcome", "completed")
        expect(run.locator("[data-test=run-step][data-step-id=verify]")).to_have_attribute(
            "data-outcome", "ok"
        )
        expect(run.locator("[data-test=run-mttr]")).to_contain_text("MTTR")
        expect(page.locator("[data-test=incident-status]")).to_have_text("resolved", timeout=LOOP_TIMEOUT_MS)
        assert _incident_status(server, client_id, incident_id) == "resolved"
        assert recv.total == 1, recv.runs
        assert still_loaded(page, mark), "the incident page reloaded instead of updating live"


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
