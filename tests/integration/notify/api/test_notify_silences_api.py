"""Silences and inhibit rules over HTTP against the real app on both databases: validation naming
every field, a silence made from an incident's labels, expiry, operators may silence but only
admins change inhibit rules, tenant isolation, every change audited."""

from __future__ import annotations

import time

from infragent.incidents.model import IncidentPolicy
from infragent.model import Severity
from infragent.store import audit, events, incidents
from support.notify_api import Tenant
from support.web import Site


def test_silences_are_created_listed_and_expired(site: Site, alpha: Tenant, beta: Tenant) -> None:
    http, op = site.http, alpha.auth("operate")
    matchers = ['host="web-1"', {"name": "severity", "op": "=~", "value": "crit.*"}]
    body = {"matchers": matchers, "duration": "2h", "comment": "kernel upgrade"}
    r = http.post("/api/v1/notify/silences", json=body, headers=op)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["state"] == "active" and s["ends_at"] - s["starts_at"] == 7200
    assert s["matchers"][0] == {"name": "host", "op": "=", "value": "web-1"} and s["created_by"].startswith(
        "key:"
    )
    later = time.time() + 3600
    pending = http.post(
        "/api/v1/notify/silences",
        json={"matchers": ['team="db"'], "starts_at": later, "ends_at": later + 60, "comment": "window"},
        headers=op,
    ).json()
    assert pending["state"] == "pending"

    bad = http.post("/api/v1/notify/silences", json={"matchers": ['host=~"("'], "duration": "x"}, headers=op)
    assert bad.status_code == 422
    fields = {p["field"] for p in bad.json()["problems"]}
    assert {"duration", "comment"} <= fields and any(f.startswith("matchers") for f in fields)
    assert http.post("/api/v1/notify/silences", json=body, headers=alpha.auth("read")).status_code == 403

    listed = http.get("/api/v1/notify/silences", headers=alpha.auth("read")).json()["silences"]
    assert {x["id"] for x in listed} == {s["id"], pending["id"]}
    read = alpha.auth("read")  # operate does not imply read: only admin implies every scope
    active = http.get("/api/v1/notify/silences", params={"state": "active"}, headers=read).json()["silences"]
    assert [x["id"] for x in active] == [s["id"]]
    assert http.get(f"/api/v1/notify/silences/{s['id']}", headers=read).json()["comment"] == "kernel upgrade"
    assert http.get(f"/api/v1/notify/silences/{s['id']}", headers=beta.auth("admin")).status_code == 404
    assert http.delete(f"/api/v1/notify/silences/{s['id']}", headers=beta.auth("admin")).status_code == 404

    expired = http.delete(f"/api/v1/notify/silences/{s['id']}", headers=op)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    gone = http.get("/api/v1/notify/silences", params={"state": "expired"}, headers=read).json()["silences"]
    assert [x["id"] for x in gone] == [s["id"]]
    with site.store.read() as conn:
        kinds = [e.kind for e in audit.entries(conn, alpha.client_id, [s["id"]])]
    assert kinds == ["notify.silence.created", "notify.silence.expired"]


def test_a_silence_from_an_incident_takes_its_labels(site: Site, alpha: Tenant, beta: Tenant) -> None:
    now = time.time()
    with site.store.write() as conn:
        event = events.insert_event(
            conn, alpha.client_id, type="app_down", service="web", severity=Severity.CRITICAL, data={},
            node_id="web-1", now=now,
        )  # fmt: skip
        incident_id = incidents.record_event(conn, event, IncidentPolicy(), now)
        assert incident_id is not None
        found = incidents.get_incident(conn, alpha.client_id, incident_id)
    assert found is not None
    http = site.http
    r = http.post(
        "/api/v1/notify/silences",
        json={"incident_id": incident_id, "duration": "1h", "comment": "on it"},
        headers=alpha.auth("operate"),
    )
    assert r.status_code == 201, r.text
    matchers = r.json()["matchers"]
    assert matchers and all(m["op"] == "=" for m in matchers) and r.json()["incident_id"] == incident_id
    assert {m["name"]: m["value"] for m in matchers}.items() >= found.labels.items()
    other = http.post(
        "/api/v1/notify/silences",
        json={"incident_id": incident_id, "duration": "1h", "comment": "x"},
        headers=beta.auth("operate"),
    )
    assert other.status_code == 422 and other.json()["problems"][0]["field"] == "incident_id"


def test_inhibit_rules_are_an_admins(site: Site, alpha: Tenant, beta: Tenant) -> None:
    http, admin = site.http, alpha.auth("admin")
    source, target = ['alertname="HostSilent"'], ['alertname!="HostSilent"']
    body = {"name": "host-silent", "source": source, "target": target, "equal": ["host"]}
    assert (
        http.post("/api/v1/notify/inhibit-rules", json=body, headers=alpha.auth("operate")).status_code == 403
    )
    r = http.post("/api/v1/notify/inhibit-rules", json=body, headers=admin)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["equal"] == ["host"] and rule["source"] == [
        {"name": "alertname", "op": "=", "value": "HostSilent"}
    ]
    assert http.post("/api/v1/notify/inhibit-rules", json=body, headers=admin).status_code == 409
    bad = http.post("/api/v1/notify/inhibit-rules", json={"target": "x", "equal": [1]}, headers=admin)
    assert bad.status_code == 422 and "source" in {p["field"] for p in bad.json()["problems"]}
    listed = http.get("/api/v1/notify/inhibit-rules", headers=alpha.auth("read")).json()["rules"]
    assert [x["id"] for x in listed] == [rule["id"]]
    assert http.get("/api/v1/notify/inhibit-rules", headers=beta.auth("read")).json() == {"rules": []}
    assert (
        http.delete(f"/api/v1/notify/inhibit-rules/{rule['id']}", headers=beta.auth("admin")).status_code
        == 404
    )
    assert http.delete(f"/api/v1/notify/inhibit-rules/{rule['id']}", headers=admin).status_code == 204
    assert http.get("/api/v1/notify/inhibit-rules", headers=admin).json() == {"rules": []}
