"""The stream's ``notification`` event (the dashboard's live unread badge) against the real app under
uvicorn, on SQLite and PostgreSQL: an in-app notification (inbox rows plus the ``notify.inapp``
audit entry, as the delivery worker writes them in one transaction) is told only to the streams of
the users it was written for, live and on a reconnect's catch-up; API keys never get it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.store import audit
from infragent.store.notify_schema import inbox
from infragent.store.sql import SqlStore
from support.dashboard_data import incident
from support.databases import create_client
from support.web import Site

STREAM = "/api/v1/stream"
READ_TIMEOUT = httpx.Timeout(10.0, read=5.0)


@pytest.fixture
def settings() -> Settings:
    return Settings(stream_heartbeat_s=0.3)


def notify_inapp(store: SqlStore, client_id: str, user_ids: list[str], incident_id: str, title: str) -> str:
    """What the delivery worker writes for an in-app delivery: one inbox row per recipient and the
    audit entry the stream tails, in one transaction. Returns the delivery id."""
    delivery_id = str(uuid.uuid4())
    now = time.time()
    with store.write() as conn:
        for user_id in user_ids:
            conn.execute(
                inbox.insert().values(
                    client_id=client_id,
                    user_id=user_id,
                    delivery_id=delivery_id,
                    incident_id=incident_id,
                    kind="firing",
                    title=title,
                    body="",
                    created_at=now,
                )
            )
        detail = {"delivery_id": delivery_id, "incident_ids": [incident_id], "title": title}
        audit.append(conn, client_id, "notifier", "notify.inapp", delivery_id, detail, now)
    return delivery_id


def events(lines: Iterator[str], until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """SSE events off the stream until ``until(found)`` (httpx's read timeout bounds each wait; the
    0.3 s heartbeats keep an idle stream from reaching it)."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current.get("event"):
                found.append(current)
                if until(found):
                    return found
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    raise AssertionError(f"the stream ended after {found}")


def names(found: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in found if e["event"] != "ready"]


def has(name: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda found: any(e["event"] == name for e in found)


def test_only_the_recipients_streams_get_the_notification(site: Site, store: SqlStore) -> None:
    reg = create_client(store, "ops@acme.example", "Acme", "http://127.0.0.1:9/hook", now=time.time())
    client_id = reg.client.id
    alice, bob = site.person(client_id, "viewer"), site.person(client_id, "operator")
    key = {"Authorization": f"Bearer {reg.api_key}"}
    stream = site.http.stream
    with (
        stream("GET", STREAM, headers=alice.cookie_only, timeout=READ_TIMEOUT) as a,
        stream("GET", STREAM, headers=bob.cookie_only, timeout=READ_TIMEOUT) as b,
        stream("GET", STREAM, headers=key, timeout=READ_TIMEOUT) as k,
    ):
        streams = [r.iter_lines() for r in (a, b, k)]
        for lines in streams:
            events(lines, has("ready"))
        incident_id = incident(store, client_id, time.time())
        delivery_id = notify_inapp(store, client_id, [alice.user_id], incident_id, "web-1 down")
        got = [events(streams[0], lambda f: names(f).count("notification") == 1)]
        # the tenant's one feed has published the notification to every stream by now: a change
        # made after it reaches each stream after it
        incident(store, client_id, time.time(), node="web-2")
        got = [
            [*got[0], *events(streams[0], lambda f: names(f).count("incident") >= 2)],
            *(events(lines, lambda f: names(f).count("incident") >= 4) for lines in streams[1:]),
        ]
    for_alice, for_bob, for_key = (sorted(names(f)) for f in got)
    assert for_alice == ["incident"] * 4 + ["notification"]
    assert for_bob == for_key == ["incident"] * 4
    note = next(e for e in got[0] if e["event"] == "notification")
    assert note["data"]["delivery_id"] == delivery_id
    assert note["data"]["incident_ids"] == [incident_id] and note["data"]["title"] == "web-1 down"
    assert note["id"].startswith("t")  # resumable, like every tail event


def test_a_reconnect_replays_the_notification_to_its_recipient_only(site: Site, store: SqlStore) -> None:
    reg = create_client(store, "ops@acme.example", "Acme", "http://127.0.0.1:9/hook", now=time.time())
    client_id = reg.client.id
    alice, bob = site.person(client_id, "viewer"), site.person(client_id, "admin")
    cursors = {}
    for who in (alice, bob):
        with site.http.stream("GET", STREAM, headers=who.cookie_only, timeout=READ_TIMEOUT) as r:
            cursors[who.user_id] = events(r.iter_lines(), has("ready"))[-1]["id"]
    incident_id = incident(store, client_id, time.time())
    notify_inapp(store, client_id, [alice.user_id], incident_id, "for alice")
    notify_inapp(store, client_id, [alice.user_id, bob.user_id], incident_id, "for both")
    caught = {}
    for who in (alice, bob):
        headers = who.cookie_only | {"Last-Event-ID": cursors[who.user_id]}
        with site.http.stream("GET", STREAM, headers=headers, timeout=READ_TIMEOUT) as r:
            caught[who.user_id] = events(r.iter_lines(), has("ready"))
    titles = {u: [e["data"]["title"] for e in f if e["event"] == "notification"] for u, f in caught.items()}
    assert titles == {alice.user_id: ["for alice", "for both"], bob.user_id: ["for both"]}
    assert all(e["data"] == {"resumed": True} for f in caught.values() for e in f if e["event"] == "ready")
