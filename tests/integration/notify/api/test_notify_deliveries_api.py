"""Deliveries over HTTP (``/api/v1/notify/deliveries``, ``/dead-letters``, retry) and a user's
inbox (``/api/v1/notify/inbox``), against the real app under uvicorn on both databases.

The deliveries are seeded as rows, the way the pipeline writes them."""

from __future__ import annotations

import time

from infragent.store import audit
from infragent.store import notify_config as nc
from infragent.store import notify_reads as nr
from infragent.store.notify_schema import notify_attempts, notify_deliveries
from infragent.store.sql import SqlStore
from support.notify_api import Tenant
from support.web import Site


def _seed(store: SqlStore, client_id: str, channel_id: str, did: str, status: str, at: float) -> None:
    message = {"id": did, "kind": "firing", "incidents": [{"id": f"inc-{did}", "title": f"CPU on {did}"}]}
    with store.write() as conn:
        conn.execute(
            notify_deliveries.insert().values(
                id=did,
                client_id=client_id,
                channel_id=channel_id,
                kind="firing",
                message=message,
                status=status,
                attempts=1,
                created_at=at,
                next_attempt_at=at,
                deadline_at=at + 60,
                cause=f"seed:{did}",
                last_error="HTTP 500" if status == "dead" else None,
            )
        )
        conn.execute(
            notify_attempts.insert().values(
                delivery_id=did,
                client_id=client_id,
                n=1,
                started_at=at,
                duration_s=0.2,
                outcome="failed" if status == "dead" else "delivered",
                status_code=500 if status == "dead" else 200,
                worker="w",
            )
        )


def _channel(store: SqlStore, client_id: str) -> str:
    with store.write() as conn:
        return nc.create_channel(
            conn, client_id, name="ops", kind="inapp", settings={}, secrets={}, actor="t", now=1.0
        ).id


def test_deliveries_are_listed_filtered_paged_and_a_dead_one_retried(
    site: Site, alpha: Tenant, beta: Tenant
) -> None:
    ch = _channel(site.store, alpha.client_id)
    now = time.time()
    for n in range(3):
        _seed(site.store, alpha.client_id, ch, f"a{n}", "delivered", now - 100 + n)
    _seed(site.store, alpha.client_id, ch, "dead-a", "dead", now - 50)
    _seed(site.store, beta.client_id, "x", "dead-b", "dead", now - 40)
    http, read = site.http, alpha.auth("read")

    r = http.get("/api/v1/notify/deliveries", params={"limit": 2}, headers=read)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [d["id"] for d in page["deliveries"]] == ["dead-a", "a2"]
    assert page["deliveries"][0]["channel_name"] == "ops" and page["deliveries"][1]["title"] == "CPU on a2"
    rest = http.get("/api/v1/notify/deliveries", params={"cursor": page["next_cursor"]}, headers=read).json()
    assert [d["id"] for d in rest["deliveries"]] == ["a1", "a0"] and rest["next_cursor"] is None
    bad = http.get("/api/v1/notify/deliveries", params={"cursor": "nope"}, headers=read)
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "cursor"
    assert http.get("/api/v1/notify/deliveries", params={"status": "nope"}, headers=read).status_code == 422

    about = http.get("/api/v1/notify/deliveries", params={"incident": "inc-a1"}, headers=read).json()
    assert [d["id"] for d in about["deliveries"]] == ["a1"]
    by_channel = http.get("/api/v1/notify/deliveries", params={"channel": ch}, headers=read).json()
    assert len(by_channel["deliveries"]) == 4
    dead = http.get("/api/v1/notify/dead-letters", headers=read).json()
    assert [d["id"] for d in dead["deliveries"]] == ["dead-a"]

    one = http.get("/api/v1/notify/deliveries/dead-a", headers=read).json()
    assert one["status"] == "dead" and one["attempts_made"][0]["status_code"] == 500
    assert http.get("/api/v1/notify/deliveries/dead-b", headers=read).status_code == 404

    # retrying is an operator's; another tenant's is 404; a delivered one is 409
    assert http.post("/api/v1/notify/deliveries/dead-a/retry", headers=read).status_code == 403
    assert (
        http.post("/api/v1/notify/deliveries/dead-b/retry", headers=alpha.auth("operate")).status_code == 404
    )
    conflict = http.post("/api/v1/notify/deliveries/a0/retry", headers=alpha.auth("operate"))
    assert conflict.status_code == 409 and "only a dead delivery" in conflict.json()["detail"]
    r = http.post("/api/v1/notify/deliveries/dead-a/retry", headers=alpha.auth("operate"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["deadline_at"] > now + 3000
    with site.store.read() as conn:
        (entry,) = audit.entries(conn, alpha.client_id, ["dead-a"])
    assert entry.kind == "notify.delivery.retried" and entry.actor.startswith("key:")


def test_the_inbox_is_the_signed_in_users_own(site: Site, alpha: Tenant) -> None:
    ann = site.person(alpha.client_id, "viewer")
    bob = site.person(alpha.client_id, "viewer")
    with site.store.write() as conn:
        mine = [
            nr.inbox_add(
                conn,
                alpha.client_id,
                ann.user_id,
                delivery_id=f"d{n}",
                kind="firing",
                title=f"Disk full {n}",
                body="…",
                incident_id=None,
                now=10.0 + n,
            )
            for n in range(2)
        ]
        theirs = nr.inbox_add(
            conn,
            alpha.client_id,
            bob.user_id,
            delivery_id="d0",
            kind="firing",
            title="x",
            body="",
            incident_id=None,
            now=10.0,
        )
    http = site.http
    r = http.get("/api/v1/notify/inbox", headers=ann.browser_headers)
    assert r.status_code == 200, r.text
    assert [i["title"] for i in r.json()["items"]] == ["Disk full 1", "Disk full 0"] and r.json()[
        "unread"
    ] == 2
    count = http.get("/api/v1/notify/inbox/count", headers=ann.cookie_only).json()
    assert count == {"unread": 2}
    # a POST signed in by cookie needs the CSRF header
    assert http.post("/api/v1/notify/inbox/read", json={}, headers=ann.cookie_only).status_code == 403
    r = http.post("/api/v1/notify/inbox/read", json={"ids": [mine[0], theirs]}, headers=ann.browser_headers)
    assert r.json() == {"marked": 1, "unread": 1}
    unread = http.get("/api/v1/notify/inbox", params={"unread": "true"}, headers=ann.cookie_only).json()
    assert [i["id"] for i in unread["items"]] == [mine[1]]
    assert http.post("/api/v1/notify/inbox/read", headers=ann.browser_headers).json() == {
        "marked": 1,
        "unread": 0,
    }
    assert http.get("/api/v1/notify/inbox/count", headers=bob.cookie_only).json() == {"unread": 1}
    # an API key has no inbox
    for method, path in (("GET", ""), ("GET", "/count"), ("POST", "/read")):
        r = http.request(method, f"/api/v1/notify/inbox{path}", headers=alpha.auth("read"))
        assert r.status_code == 422 and r.json()["detail"] == "in-app notifications belong to users; sign in"
