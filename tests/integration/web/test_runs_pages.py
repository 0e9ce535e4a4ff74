"""The runbook pages against the real app under uvicorn on both databases: an incident's runs (each
step, the pending approval with its time left, Approve / Reject for operators and admins, none for
viewers), the answers' refusals shown (expired, answered twice), the effectiveness figures, the
guardrails toggles (admins only) and another tenant's runs (404).

Runs are made as the executor makes them (``support.run_rows``: ``insert_run``, the pure core,
``save_run``); every change a person makes goes through the pages, the way htmx sends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from infragent.config import Settings
from infragent.store import run_reads, schedules
from support.dashboard_data import incident
from support.dom import by_test, one
from support.notify_pages import Browser
from support.run_pages import RESTART_WEB, healed_run, waiting_run
from support.web import Site

NOW = float(int(time.time()))
BUTTONS = ("approve", "reject", "run-cancel")


@pytest.fixture
def clock() -> Callable[[], float]:
    return lambda: NOW


def _browser(site: Site, client_id: str, role: str) -> Browser:
    return Browser(site, site.person(client_id, role))


def _approval(site: Site, client_id: str, approval_id: str) -> run_reads.ApprovalView:
    with site.store.read() as conn:
        return run_reads.get_approval(conn, client_id, approval_id, NOW)


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
def test_a_waiting_run_shows_its_step_and_time_left_and_buttons_only_to_those_who_may_answer(
    site: Site, acme: str, role: str
) -> None:
    incident_id = incident(site.store, acme, NOW - 30)
    made = waiting_run(site.store, acme, incident_id, "web-1", NOW - 60)
    page = _browser(site, acme, role).get(f"/incidents/{incident_id}")
    assert page.status_code == 200
    assert by_test(page.text, "incident-title")
    fragment = _browser(site, acme, role).get(f"/incidents/{incident_id}/runs")
    assert fragment.status_code == 200
    run = one(fragment.text, "run")
    assert run.attrs["data-run-id"] == made.run_id
    assert run.attrs["data-status"] == "waiting_approval"
    assert one(fragment.text, "incident-runs").attrs["data-going"] == "yes"
    approval = one(fragment.text, "approval")
    assert approval.attrs["data-approval-id"] == made.approval_id
    assert one(fragment.text, "approval-command").text == "restart web name=web"
    # RESTART_WEB asks for 15 min; a minute has passed
    assert one(fragment.text, "approval-left").text == "14 min left"
    shown = {b for b in BUTTONS if by_test(fragment.text, b)}
    assert shown == (set(BUTTONS) if role != "viewer" else set())


def test_an_operator_approves_on_the_page_and_the_request_is_answered_once(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 30)
    made = waiting_run(site.store, acme, incident_id, "web-1", NOW - 10)
    assert made.approval_id is not None
    operator = _browser(site, acme, "operator")
    r = operator.post(f"/approvals/{made.approval_id}/approve", {"incident_id": incident_id, "note": "go"})
    assert r.status_code == 200, r.text
    assert not by_test(r.text, "runs-error"), r.text
    answered = _approval(site, acme, made.approval_id)
    assert answered.status == "approved"
    assert answered.decided_by == f"user:{operator.user.user_id}"
    assert answered.note == "go"
    assert not by_test(r.text, "approve")  # nothing left to approve on screen

    again = _browser(site, acme, "admin").post(
        f"/approvals/{made.approval_id}/reject", {"incident_id": incident_id}
    )
    assert again.status_code == 200
    assert "already" in one(again.text, "runs-error").text
    assert _approval(site, acme, made.approval_id).status == "approved"


def test_a_viewer_may_not_answer_or_cancel(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 30)
    made = waiting_run(site.store, acme, incident_id, "web-1", NOW - 10)
    viewer = _browser(site, acme, "viewer")
    for path in (f"/approvals/{made.approval_id}/approve", f"/approvals/{made.approval_id}/reject",
                 f"/runs/{made.run_id}/cancel"):  # fmt: skip
        assert viewer.post(path, {"incident_id": incident_id}).status_code == 403, path
    assert made.approval_id is not None
    assert _approval(site, acme, made.approval_id).status == "pending"


def test_an_expired_request_is_refused_on_the_page(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 3600)
    made = waiting_run(site.store, acme, incident_id, "web-1", NOW - RESTART_WEB.approval_expiry_s - 5)
    fragment = _browser(site, acme, "operator").get(f"/incidents/{incident_id}/runs")
    assert not by_test(fragment.text, "approve"), "an expired request offers no button"
    r = _browser(site, acme, "operator").post(
        f"/approvals/{made.approval_id}/approve", {"incident_id": incident_id}
    )
    assert "expired" in one(r.text, "runs-error").text
    assert made.approval_id is not None
    assert _approval(site, acme, made.approval_id).status == "expired"


def test_an_operator_cancels_a_run_on_the_page(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 30)
    made = waiting_run(site.store, acme, incident_id, "web-1", NOW - 10)
    r = _browser(site, acme, "operator").post(f"/runs/{made.run_id}/cancel", {"incident_id": incident_id})
    assert r.status_code == 200 and not by_test(r.text, "runs-error"), r.text
    with site.store.read() as conn:
        assert run_reads.get_run(conn, acme, made.run_id).cancel_requested_by


def test_a_healed_run_lists_its_steps_with_the_command_and_its_mttr(site: Site, acme: str) -> None:
    incident_id = incident(site.store, acme, NOW - 30)
    made = healed_run(site.store, acme, incident_id, "web-1", NOW - 20)
    fragment = _browser(site, acme, "operator").get(f"/incidents/{incident_id}/runs")
    run = one(fragment.text, "run")
    assert (run.attrs["data-run-id"], run.attrs["data-status"]) == (made.run_id, "completed")
    assert one(fragment.text, "incident-runs").attrs["data-going"] == "no"
    steps = by_test(fragment.text, "run-step")
    assert [(s.attrs["data-step-id"], s.attrs["data-outcome"]) for s in steps] == [
        ("restart", "ok"),
        ("verify", "ok"),
    ]
    assert one(fragment.text, "step-command").text == "restart web name=web"
    assert "restarted web" in fragment.text
    assert one(fragment.text, "run-mttr").text == "MTTR 12 s"
    assert not {b for b in BUTTONS if by_test(fragment.text, b)}


def test_another_tenants_runs_are_not_found(site: Site, acme: str, other: str) -> None:
    incident_id = incident(site.store, other, NOW - 30)
    made = waiting_run(site.store, other, incident_id, "web-1", NOW - 10)
    intruder = _browser(site, acme, "admin")
    assert intruder.get(f"/incidents/{incident_id}/runs").status_code == 404
    r = intruder.post(f"/approvals/{made.approval_id}/approve", {"incident_id": incident_id})
    assert r.status_code == 404 or by_test(r.text, "runs-error")
    assert made.approval_id is not None
    with site.store.read() as conn:
        assert run_reads.get_approval(conn, other, made.approval_id, NOW).status == "pending"


def test_the_effectiveness_page_shows_each_runbook_and_action(site: Site, acme: str) -> None:
    healed_run(site.store, acme, incident(site.store, acme, NOW - 30), "web-1", NOW - 20)
    waiting_run(site.store, acme, incident(site.store, acme, NOW - 30, node="web-2"), "web-2", NOW - 10)
    page = _browser(site, acme, "viewer").get("/responder/effectiveness")
    assert page.status_code == 200
    row = one(page.text, "effectiveness-runbook")
    assert row.attrs["data-runbook"] == "restart-web"
    cells = {k: one(page.text, k).text for k in ("eff-runs", "eff-counted", "eff-succeeded", "eff-success",
                                                  "eff-median", "eff-p95")}  # fmt: skip
    assert cells == {
        "eff-runs": "2", "eff-counted": "1", "eff-succeeded": "1", "eff-success": "100%",
        "eff-median": "12 s", "eff-p95": "12 s",
    }  # fmt: skip
    assert len(by_test(page.text, "eff-last-run")) == 2
    assert _browser(site, acme, "viewer").get("/responder").status_code == 200


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_only_admins_get_the_guardrail_toggles(site: Site, acme: str, role: str) -> None:
    who = _browser(site, acme, role)
    page = who.get("/responder/guardrails")
    assert page.status_code == 200
    assert one(page.text, "kill-switch").attrs["data-state"] == "off"
    assert one(page.text, "shadow-mode").attrs["data-state"] == "off"
    assert not by_test(page.text, "kill-switch-toggle") and not by_test(page.text, "shadow-toggle")
    assert who.post("/responder/guardrails/kill-switch", {"state": "on"}).status_code == 403
    assert who.post("/responder/guardrails/shadow", {"state": "on"}).status_code == 403


def test_an_admin_throws_the_kill_switch_and_shadow_mode(site: Site, acme: str) -> None:
    admin = _browser(site, acme, "admin")
    r = admin.post("/responder/guardrails/kill-switch", {"state": "on", "reason": "fleet-wide outage"})
    assert r.status_code == 200
    assert one(r.text, "kill-switch").attrs["data-state"] == "on"
    assert "fleet-wide outage" in one(r.text, "kill-switch-by").text
    r = admin.post("/responder/guardrails/shadow", {"state": "on"})
    assert one(r.text, "shadow-mode").attrs["data-state"] == "on"
    assert (
        one(_browser(site, acme, "viewer").get("/responder/guardrails").text, "kill-switch").attrs[
            "data-state"
        ]
        == "on"
    )
    r = admin.post("/responder/guardrails/kill-switch", {"state": "off"})
    assert one(r.text, "kill-switch").attrs["data-state"] == "off"
    assert "on or off" in one(admin.post("/responder/guardrails/shadow", {"state": "maybe"}).text,
                              "guardrails-error").text  # fmt: skip


class TestForcedKillSwitch:
    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(responder_kill_switch=True)

    def test_a_kill_switch_held_by_the_setting_offers_no_toggle(self, site: Site, acme: str) -> None:
        page = _browser(site, acme, "admin").get("/responder/guardrails")
        assert one(page.text, "kill-switch").attrs["data-state"] == "on"
        assert by_test(page.text, "kill-switch-forced")
        assert not by_test(page.text, "kill-switch-toggle")


def test_the_schedules_page_lists_each_schedule_with_its_next_run(site: Site, acme: str, other: str) -> None:
    def add(client_id: str, name: str, spec: dict[str, object], tz: str | None, enabled: bool) -> None:
        with site.store.write() as conn:
            schedules.create_schedule(
                conn, client_id, name=name, runbook="restart-web", spec=spec, tz=tz, missed="skip",
                node_id="web-1", labels={}, enabled=enabled, known_runbooks=["restart-web"], now=NOW,
                actor="test",
            )  # fmt: skip

    add(acme, "nightly", {"cron": "30 2 * * *"}, "Europe/Berlin", True)
    add(acme, "often", {"every_s": 900, "start": NOW - 100}, None, False)
    add(other, "theirs", {"every_s": 900}, None, True)
    page = _browser(site, acme, "viewer").get("/responder/schedules")
    assert page.status_code == 200
    rows = {r.attrs["data-schedule-name"]: r for r in by_test(page.text, "schedule-row")}
    assert set(rows) == {"nightly", "often"}
    assert (rows["nightly"].attrs["data-enabled"], rows["often"].attrs["data-enabled"]) == ("yes", "no")
    whens = [w.text for w in by_test(page.text, "schedule-when")]
    assert any(w.startswith("cron '30 2 * * *' in Europe/Berlin") for w in whens), whens
    assert any(w.startswith("every 900 s") for w in whens), whens
    nexts = [n.text for n in by_test(page.text, "schedule-next")]
    assert sum(1 for n in nexts if n == "—") == 1, nexts  # the disabled one has no next run
