"""The incident API against the real app under uvicorn, on SQLite and PostgreSQL (issue 11, point 5).

Incidents are made the way the events path and the evaluator make them (store calls in one
transaction); the API lists, shows, acknowledges, resolves and annotates them, and streams their
changes as Server-Sent Events. Stream reads are bounded by httpx's read timeout, never by a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.model import Severity
from infragent.server.api import incidents as incidents_api
from infragent.store import audit, incidents
from infragent.store.sql import SqlStore
from support.dashboard_data import incident
from support.web import Site, register_tenant, serve_site

BASE = "/api/v1/incidents"
READ_TIMEOUT = httpx.Timeout(10.0, read=5.0)


@dataclass
class Tenant:
    client_id: str
    admin: str
    read: str
    operate: str

    def key_id(self, key: str) -> str:
        return key.split("_")[1]


class Api(Site):
    """The served app (``support.web.Site``) and the tenants and incidents the tests seed in it."""

    def tenant(self, email: str) -> Tenant:
        return Tenant(*register_tenant(self.http, email, "read", "operate"))

    def incident(
        self, client_id: str, now: float, node: str = "n1", severity: Severity = Severity.CRITICAL
    ) -> str:
        return incident(self.store, client_id, now, node=node, severity=severity, data={})


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _settings() -> Settings:
    # No rule evaluation: the default pack's HostSilent would open incidents of its own for the
    # nodes these tests invent (their last report is at t=1000), and the stream tests count changes.
    return Settings(webhook_allowed_networks=("127.0.0.0/8",), rules_enabled=False)


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    with serve_site(store, _settings(), timeout_s=10) as site:
        yield Api(site.app, site.http)


@pytest.fixture
def acme(api: Api) -> Tenant:
    return api.tenant("ops@acme.example")


def test_list_pages_filters_and_refuses_bad_input(api: Api, acme: Tenant) -> None:
    made = [api.incident(acme.client_id, 1000.0 + i, node=f"n{i}") for i in range(5)]
    warning = api.incident(acme.client_id, 1010.0, node="w", severity=Severity.WARNING)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = api.http.get(BASE, params=params, headers=auth(acme.read))
        assert r.status_code == 200, r.text
        seen += [i["id"] for i in r.json()["incidents"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [warning, *made[::-1]]
    r = api.http.post(f"{BASE}/{made[0]}/acknowledge", headers=auth(acme.operate))
    assert r.status_code == 200

    def ids(**params: Any) -> list[str]:
        r = api.http.get(BASE, params=params, headers=auth(acme.read))
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["incidents"]]

    assert ids(status="acknowledged") == [made[0]]
    assert set(ids(status=["acknowledged", "open"])) == {*made, warning}
    assert ids(severity="warning") == [warning]
    assert ids(source="alert") == [] and len(ids(source="event")) == 6
    assert set(ids(since=1004.0)) == {made[4], warning, made[0]}  # made[0] changed when acknowledged
    for params, field in [
        ({"limit": 201}, "limit"),
        ({"status": "sleeping"}, "status"),
        ({"severity": "fatal"}, "severity"),
        ({"cursor": "bogus"}, "cursor"),
    ]:
        r = api.http.get(BASE, params=params, headers=auth(acme.read))
        assert r.status_code == 422 and field in r.json()["detail"], (params, r.text)


def test_detail_shows_the_timeline_and_another_tenant_gets_404(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    api.incident(acme.client_id, 1001.0)  # the same fingerprint: joins
    r = api.http.get(f"{BASE}/{incident_id}", headers=auth(acme.read))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "app_down on web (n1)" and body["status"] == "open" and body["source"] == "event"
    assert [e["kind"] for e in body["timeline"]] == ["opened", "event", "event"]
    assert body["timeline"][1]["actor"] == "node:n1"
    other = api.tenant("ops@other.example")
    for key in (other.read, other.operate):
        path = f"{BASE}/{incident_id}" if key == other.read else f"{BASE}/{incident_id}/acknowledge"
        method = "GET" if key == other.read else "POST"
        r = api.http.request(method, path, headers=auth(key))
        assert r.status_code == 404 and incident_id in r.json()["detail"]
    r = api.http.post(f"{BASE}/{incident_id}/notes", json={"text": "mine"}, headers=auth(other.operate))
    assert r.status_code == 404
    assert api.http.get(f"{BASE}/no-such-id", headers=auth(acme.read)).status_code == 404
    assert api.http.get(BASE, headers=auth(other.read)).json() == {"incidents": [], "next_cursor": None}


def test_acknowledge_resolve_and_note_record_who_and_refuse_invalid_moves(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    who = f"key:{acme.key_id(acme.operate)}"
    r = api.http.post(f"{BASE}/{incident_id}/acknowledge", headers=auth(acme.operate))
    assert (
        r.status_code == 200 and r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == who
    )
    r = api.http.post(f"{BASE}/{incident_id}/acknowledge", headers=auth(acme.operate))
    assert r.status_code == 409 and "acknowledged" in r.json()["detail"]
    r = api.http.post(
        f"{BASE}/{incident_id}/resolve", json={"note": "disk cleaned"}, headers=auth(acme.operate)
    )
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolved_by"] == who
    r = api.http.post(f"{BASE}/{incident_id}/resolve", headers=auth(acme.operate))
    assert r.status_code == 409 and "resolved" in r.json()["detail"]
    r = api.http.post(
        f"{BASE}/{incident_id}/notes", json={"text": "post-mortem on Monday"}, headers=auth(acme.operate)
    )
    assert r.status_code == 201 and r.json()["kind"] == "note" and r.json()["actor"] == who
    timeline = api.http.get(f"{BASE}/{incident_id}", headers=auth(acme.read)).json()["timeline"]
    assert [e["kind"] for e in timeline] == ["opened", "event", "status", "status", "note"]
    assert timeline[3]["detail"] == {"from": "acknowledged", "to": "resolved", "note": "disk cleaned"}
    with api.store.read() as conn:  # every step is in the audit chain
        kinds = [e.kind for e in audit.entries(conn, acme.client_id, [incident_id])]
    assert kinds == ["incident.opened", "incident.status", "incident.status", "incident.note"]


def test_a_resolve_without_a_body_works_too(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    r = api.http.post(f"{BASE}/{incident_id}/resolve", headers=auth(acme.operate))
    assert r.status_code == 200 and r.json()["status"] == "resolved"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("notes", {"text": ""}, "text"),
        ("notes", {"text": "x" * 10_001}, "text"),
        ("notes", {}, "text"),
        ("notes", {"text": "ok", "colour": "red"}, "colour"),
        ("resolve", {"note": ""}, "note"),
        ("resolve", {"note": "x" * 10_001}, "note"),
    ],
)
def test_bad_bodies_say_what_is_wrong(
    api: Api, acme: Tenant, path: str, body: dict[str, Any], field: str
) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    r = api.http.post(f"{BASE}/{incident_id}/{path}", json=body, headers=auth(acme.operate))
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_a_note_of_ten_thousand_characters_is_accepted(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    r = api.http.post(f"{BASE}/{incident_id}/notes", json={"text": "x" * 10_000}, headers=auth(acme.operate))
    assert r.status_code == 201


def test_reading_needs_read_and_changing_needs_operate(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    r = api.http.post(f"{BASE}/{incident_id}/acknowledge", headers=auth(acme.read))
    assert r.status_code == 403 and r.json()["required_scope"] == "operate"
    r = api.http.get(BASE, headers=auth(acme.operate))
    assert r.status_code == 403 and r.json()["required_scope"] == "read"
    r = api.http.get(f"{BASE}/stream", headers=auth(acme.operate))
    assert r.status_code == 403 and r.json()["required_scope"] == "read"


# -- the stream ------------------------------------------------------------------------------------


def _events(lines: Iterator[str], want: int, *, comments: bool = False) -> list[dict[str, Any]]:
    """Read ``want`` SSE events (or comments) off the stream; httpx's read timeout bounds each wait."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            if comments:
                found.append({"comment": line[1:].strip()})
        elif line == "":
            if current:
                found.append(current)
                current = {}
        else:
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
        if len(found) >= want:
            return found
    raise AssertionError(f"the stream ended after {found}")


def test_the_stream_sends_the_tenants_changes_and_resumes_after_last_event_id(api: Api, acme: Tenant) -> None:
    incident_id = api.incident(acme.client_id, 1000.0)
    other = api.tenant("ops@other.example")
    with api.store.read() as conn:
        start = incidents.latest_change_id(conn, acme.client_id)
    headers = auth(acme.read) | {"Last-Event-ID": str(start)}
    with api.http.stream("GET", f"{BASE}/stream", headers=headers, timeout=READ_TIMEOUT) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        api.incident(other.client_id, 1001.0)  # another tenant's: never on this stream
        api.http.post(f"{BASE}/{incident_id}/acknowledge", headers=auth(acme.operate))
        api.http.post(f"{BASE}/{incident_id}/notes", json={"text": "looking"}, headers=auth(acme.operate))
        got = _events(lines, 2)
    assert [e["event"] for e in got] == ["incident", "incident"]
    assert [e["data"]["entry"]["kind"] for e in got] == ["status", "note"]
    assert all(e["data"]["incident"]["id"] == incident_id for e in got)
    assert got[0]["data"]["incident"]["status"] == "acknowledged"
    assert int(got[0]["id"]) > start and int(got[1]["id"]) == got[1]["data"]["entry"]["id"]
    # a reconnect with the first event's id gets the second again, then what came after
    api.http.post(f"{BASE}/{incident_id}/resolve", headers=auth(acme.operate))
    headers = auth(acme.read) | {"Last-Event-ID": got[0]["id"]}
    with api.http.stream("GET", f"{BASE}/stream", headers=headers, timeout=READ_TIMEOUT) as r:
        again = _events(r.iter_lines(), 2)
    assert again[0]["id"] == got[1]["id"]
    assert again[1]["data"]["entry"]["detail"] == {"from": "acknowledged", "to": "resolved"}


def test_a_new_stream_starts_with_the_next_change_and_keeps_alive(
    api: Api, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incidents_api, "KEEPALIVE_S", 0.5)
    old = api.incident(acme.client_id, 1000.0)
    with api.http.stream("GET", f"{BASE}/stream", headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()
        assert _events(lines, 1, comments=True) == [{"comment": "keep-alive"}]  # the stream is running
        new = api.incident(acme.client_id, 1001.0, node="n2")
        (event,) = _events(lines, 1)
    assert event["data"]["incident"]["id"] == new != old
    assert event["data"]["entry"]["kind"] == "opened"


def test_a_bad_last_event_id_is_422(api: Api, acme: Tenant) -> None:
    for value in ("abc", "-3"):
        r = api.http.get(f"{BASE}/stream", headers=auth(acme.read) | {"Last-Event-ID": value})
        assert r.status_code == 422 and "Last-Event-ID" in r.json()["detail"]


def test_the_server_stops_promptly_after_a_stream_client_went_away(store: SqlStore) -> None:
    """A stream that outlived its client would hold uvicorn's shutdown until the join gives up."""
    with serve_site(store, _settings(), timeout_s=10) as site:
        http = site.http
        acme = Api(site.app, http).tenant("ops@acme.example")
        with http.stream("GET", f"{BASE}/stream", headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
            assert r.status_code == 200
        started = time.monotonic()
    assert time.monotonic() - started < 5.0
