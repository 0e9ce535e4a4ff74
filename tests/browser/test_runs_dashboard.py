"""Runbook runs on the incident page, in Chromium against a real server (issue 14, point 7):

**The whole loop**: a crash (``app_down`` through the events API) of a host whose runbook is
   ``act restart (approval: required) -> verify -> escalate``; the server's responder starts the
   run and its executor waits for approval; an operator approves on the incident page and, without
   a reload, sees the restart sent and run by the host's receiver, the verify step wait, and, once
   the service is back (``app_recovered`` for the same node and service, as its agent reports it),
   the run complete with its MTTR and the incident resolved; the receiver ran the restart once.
A viewer on the same incident, while the run waits, sees it and no button, and is refused (403).

The module's server loads one step runbook file (its responder thread runs the executor); the
runs written turn by turn by a test are in ``test_runs_live.py``, on a server without one.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from infragent.store import incidents, run_reads
from support.browser import (
    LiveServer,
    PageGuard,
    add_session,
    live_server,
    mark_loaded,
    open_live,
    page_fetch,
    screenshot,
    still_loaded,
    until,
)

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


def _viewer_sees_no_buttons(
    browser: Browser, server: LiveServer, guard: PageGuard, client_id: str, incident_id: str
) -> None:
    """A viewer's own browser on the incident while its run waits: the run, no button, a 403."""
    guard.allow(r"status of 403")  # the refusal asked for below
    viewer = server.session(client_id, "viewer")
    ctx = browser.new_context(base_url=server.base_url)
    try:
        guard.attach(ctx)
        add_session(ctx, server.base_url, viewer)
        page = ctx.new_page()
        page.goto(f"/incidents/{incident_id}")
        run = page.locator("[data-test=run]")
        expect(run).to_have_attribute("data-status", "waiting_approval")
        expect(run.locator("[data-test=approval-left]")).to_contain_text("left")
        for button in BUTTONS:
            expect(page.locator(f"[data-test={button}]")).to_have_count(0)
        approval_id = run.locator("[data-test=approval]").get_attribute("data-approval-id")
        assert approval_id
        assert page_fetch(page, "POST", f"/approvals/{approval_id}/approve", viewer.csrf) == 403
        screenshot(page, "test_runs_dashboard_viewer")
    finally:
        ctx.close()


def test_an_operator_approves_on_the_incident_page_sees_it_run_and_the_incident_resolve(
    page: Page, server: LiveServer, browser: Browser, guard: PageGuard
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
        _viewer_sees_no_buttons(browser, server, guard, client_id, incident_id)
        expect(run).to_have_attribute("data-status", "waiting_approval")  # a viewer's post changed nothing
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
