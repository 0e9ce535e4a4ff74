"""The incident list and detail pages against the real app and both databases: filters and pages,
the whole timeline (decision with its rationale, command output), a viewer's page without buttons,
an operator's acknowledge / resolve / note through the page, and another tenant's incident a 404."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from infragent.model import Severity
from infragent.store import agents, audit, incidents
from support.dashboard_data import command, incident, one, rows
from support.web import Site

NOW = float(int(time.time()))


@pytest.fixture
def clock() -> Callable[[], float]:
    """The app's time stands still at ``NOW``: the seed's "10 s ago" is the page's too."""
    return lambda: NOW


def ids(html: str) -> list[str]:
    return [r["data-incident-id"] for r in rows(html, "incident-row")]


def test_list_filters_and_pages(site: Site, acme: str, other: str) -> None:
    made = [incident(site.store, acme, NOW - 100 + i, node=f"n{i:02d}") for i in range(55)]
    warning = incident(site.store, acme, NOW - 10, node="db", service="postgres", severity=Severity.WARNING)
    incident(site.store, other, NOW, node="theirs")
    site.sign_in(acme, "viewer")

    first = site.http.get("/incidents")
    assert first.status_code == 200
    assert rows(first.text, "incident-filters") and rows(first.text, "incidents-table")
    assert ids(first.text) == [warning, *made[::-1][:49]]
    older = site.http.get(one(first.text, "next-page")["href"])
    assert ids(older.text) == made[::-1][49:]
    assert rows(older.text, "next-page") == []

    assert ids(site.http.get("/incidents", params={"severity": "warning"}).text) == [warning]
    assert ids(site.http.get("/incidents", params={"q": "POSTGRES"}).text) == [warning]  # title substring
    assert ids(site.http.get("/incidents", params={"q": "n07"}).text) == [made[7]]
    with site.store.write() as conn:
        incidents.set_status(conn, acme, made[3], incidents.IncidentStatus.RESOLVED, "test", NOW)
    assert ids(site.http.get("/incidents", params={"status": "resolved"}).text) == [made[3]]
    active = ids(site.http.get("/incidents", params={"status": "active"}).text)
    assert made[3] not in active and len(active) == 50
    # htmx asks for the results alone; a forged cursor is a visible error, not a crash
    part = site.http.get("/incidents", headers={"HX-Request": "true", "HX-Target": "incidents-results"})
    assert "<html" not in part.text and len(ids(part.text)) == 50
    bad = site.http.get("/incidents", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad.status_code == 200 and "no longer valid" in bad.text and len(ids(bad.text)) == 50


def test_viewer_sees_the_timeline_without_buttons_and_cannot_post(site: Site, acme: str) -> None:
    found = incident(site.store, acme, NOW - 60, node="web-1")
    with site.store.read() as conn:
        agent = agents.get_agent(conn, acme, "web-1")
    assert agent is not None
    command(site.store, acme, agent.id, NOW - 30, "ok", incident_id=found, output="nginx restarted OK")
    csrf = site.sign_in(acme, "viewer").headers

    page = site.http.get(f"/incidents/{found}")
    assert page.status_code == 200
    assert one(page.text, "incident-status")["_text"] == "open"
    assert "app_down" in one(page.text, "incident-title")["_text"]
    kinds = [e["data-kind"] for e in rows(page.text, "timeline-entry")]
    assert kinds[:2] == ["opened", "event"] and "decision" in kinds and "result" in kinds
    decision = next(e for e in rows(page.text, "timeline-entry") if e["data-kind"] == "decision")
    assert "runbook" in decision["_text"] and "web is down: restart it" in decision["_text"]
    result = next(e for e in rows(page.text, "timeline-entry") if e["data-kind"] == "result")
    assert "nginx restarted OK" in result["_text"]
    for button in ("ack", "resolve", "note-form", "note-submit"):
        assert rows(page.text, button) == [], button
    # the same permission row refuses the viewer's post, whatever the page shows
    r = site.http.post(f"/incidents/{found}/ack", headers=csrf)
    assert r.status_code == 403
    with site.store.read() as conn:
        assert incidents.get_incident(conn, acme, found).status.value == "open"  # type: ignore[union-attr]


def test_operator_acknowledges_notes_and_resolves_through_the_page(site: Site, acme: str) -> None:
    found = incident(site.store, acme, NOW - 60)
    csrf = site.sign_in(acme, "operator").headers
    page = site.http.get(f"/incidents/{found}")
    assert rows(page.text, "ack") and rows(page.text, "resolve") and rows(page.text, "note-form")
    assert one(page.text, "ack")["hx-post"] == f"/incidents/{found}/ack"

    assert site.http.post(f"/incidents/{found}/ack").status_code == 403  # no CSRF header
    acked = site.http.post(f"/incidents/{found}/ack", headers=csrf | {"HX-Request": "true"})
    assert acked.status_code == 200 and "<html" not in acked.text  # the fragment htmx swaps in
    assert one(acked.text, "incident-status")["_text"] == "acknowledged"
    assert rows(acked.text, "ack") == [] and rows(acked.text, "resolve")

    again = site.http.post(f"/incidents/{found}/ack", headers=csrf)  # a stale button: shown, not raised
    assert again.status_code == 200 and one(again.text, "incident-error")["_text"]

    empty = site.http.post(f"/incidents/{found}/note", data={"text": "   "}, headers=csrf)
    assert "needs some text" in one(empty.text, "incident-error")["_text"]
    noted = site.http.post(f"/incidents/{found}/note", data={"text": "Looking <b>now</b>"}, headers=csrf)
    note = [e for e in rows(noted.text, "timeline-entry") if e["data-kind"] == "note"]
    assert len(note) == 1 and "Looking <b>now</b>" in note[0]["_text"]  # escaped, shown as typed
    assert "<b>now</b>" not in noted.text

    done = site.http.post(f"/incidents/{found}/resolve", headers=csrf)
    assert one(done.text, "incident-status")["_text"] == "resolved"
    assert rows(done.text, "resolve") == [] and rows(done.text, "ack") == []
    with site.store.read() as conn:
        got = incidents.get_incident(conn, acme, found)
        trail = audit.entries(conn, acme, [found])
    assert got is not None and got.status.value == "resolved" and got.resolved_by is not None
    assert got.resolved_by.startswith("user:") and got.acknowledged_by == got.resolved_by
    assert [(e.kind, e.actor) for e in trail if e.actor.startswith("user:")] == [
        ("incident.status", got.resolved_by),
        ("incident.note", got.resolved_by),
        ("incident.status", got.resolved_by),
    ]


def test_another_tenants_incident_is_a_404_for_reading_and_acting(site: Site, acme: str, other: str) -> None:
    theirs = incident(site.store, other, NOW - 60)
    csrf = site.sign_in(acme, "operator").headers
    assert site.http.get(f"/incidents/{theirs}").status_code == 404
    assert site.http.get(f"/incidents/{theirs}", params={"part": "body"}).status_code == 404
    assert site.http.get("/incidents/no-such-id").status_code == 404
    for action in ("ack", "resolve"):
        assert site.http.post(f"/incidents/{theirs}/{action}", headers=csrf).status_code == 404
    assert site.http.post(f"/incidents/{theirs}/note", data={"text": "hi"}, headers=csrf).status_code == 404
    with site.store.read() as conn:
        untouched = incidents.get_incident(conn, other, theirs)
        entries = incidents.timeline(conn, other, theirs)
    assert untouched is not None and untouched.status.value == "open"
    assert [e.entry.kind for e in entries] == ["opened", "event"]
