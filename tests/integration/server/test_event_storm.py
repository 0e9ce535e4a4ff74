"""An event storm: 1,000 ``app_down`` events for one service in 10 s → one incident, one decision.

Through the real HTTP API (a small thread pool posting concurrently) into the real app, with a real
responder thread deciding while the storm is still arriving. The app's clock spaces the events
over 9 s, so the storm is "in 10 s" however fast this machine posts them. With no cooldown the
responder claims again and again while events arrive (the storm splits over many claims); with a
300 s cooldown the first claim acts and the rest wait until the test moves the responder's clock past
it. Either way the incident is decided once and every event is processed and linked to it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from infragent.config import Settings
from infragent.responder.loop import ResponderConfig
from infragent.server.app import create_app
from infragent.store import incidents
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from support.databases import audit_entries, pending_count
from support.responders import Clock, Receiver, make_responder, register_node
from support.servers import serve

EVENTS = 1000
SPAN_S = 9.0  # the app's clock advances this much over the storm: "in 10 s"
NODE = "host-1/web"
START = 1_800_000_000.0


class StormClock:
    """The app's clock: every reading is ``SPAN_S / EVENTS`` later than the one before."""

    def __init__(self) -> None:
        self.readings = 0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.readings += 1
            return START + self.readings * SPAN_S / EVENTS


@pytest.mark.parametrize("cooldown_s", [0.0, 300.0])
def test_a_storm_of_one_service_is_one_incident_and_one_decision(
    store: SqlStore, receiver: Receiver, cooldown_s: float
) -> None:
    register_node(store, receiver.reg, NODE)
    wakeup = Wakeup()
    responder_clock = Clock(START)
    responder = make_responder(store, responder_clock, wakeup=wakeup)
    responder.config = ResponderConfig(lease_s=30, cooldown_s=cooldown_s, sweep_interval_s=60)
    thread, stop = responder.start()
    auth = {"Authorization": f"Bearer {receiver.reg.api_key}"}
    body = {"type": "app_down", "service": "web", "severity": "critical", "node_id": NODE}
    try:
        with (
            # no rule evaluator: it would read the storm clock too (and the default pack's HostSilent
            # would open an alert incident for the node, last seen long before START); no per-key
            # rate limit: the storm is more requests with one key than a minute's default allowance
            serve(
                create_app(
                    Settings(rules_enabled=False, api_rate_limit_per_key=0),
                    store=store,
                    on_event=wakeup.set,
                    clock=StormClock(),
                )
            ) as base,
            httpx.Client(base_url=base, headers=auth, timeout=30) as http,
        ):

            def post(i: int) -> httpx.Response:
                return http.post("/api/v1/events", json=body | {"data": {"i": i}})

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(post, range(EVENTS)))
            assert {a.status_code for a in answers} == {202}
            responder_clock.now += cooldown_s + 1  # past any cooldown the first action started
            wakeup.set()
            deadline = time.monotonic() + 60
            while pending_count(store) and time.monotonic() < deadline:
                time.sleep(0.05)
            listed = http.get("/api/v1/events", params={"limit": EVENTS}).json()
    finally:
        stop.set()
        wakeup.set()
        thread.join(30)

    client_id = receiver.reg.client.id
    # One incident: every answer named it, and the tenant has no other.
    [incident_id] = {a.json()["incident_id"] for a in answers}
    with store.read() as conn:
        page = incidents.list_incidents(conn, client_id, limit=10)
        timeline = incidents.timeline(conn, client_id, incident_id)
    assert [i.id for i in page.incidents] == [incident_id]
    # The storm arrived within a minute of the app's clock (each request reads it a few times: the
    # key's expiry and last use, the event), well inside the 300 s cooldown.
    received = [e["received_at"] for e in listed]
    assert len(listed) == EVENTS and max(received) - min(received) <= 60.0
    # Every event processed, once, and linked to that incident.
    assert pending_count(store) == 0
    assert all(e["status"] == "processed" and e["incident_id"] == incident_id for e in listed)
    audit = audit_entries(store, client_id)
    processed = Counter(a.subject for a in audit if a.kind == "event.processed")
    assert len(processed) == EVENTS and set(processed.values()) == {1}
    # One decision, one restart; every other event joined the decided incident.
    decisions = [a for a in audit if a.kind == "decision.made"]
    assert len(decisions) == 1 and decisions[0].detail["incident_id"] == incident_id
    assert receiver.total == 1
    outcomes = Counter(a.detail["outcome"] for a in audit if a.kind == "event.processed")
    joined = outcomes.pop(f"joined incident {incident_id}", 0)
    [(decided_outcome, decided)] = outcomes.items()
    assert decided_outcome == "restart:ok" and decided + joined == EVENTS
    kinds = Counter(t.entry.kind for t in timeline)
    assert kinds["event"] == EVENTS and kinds["decision"] == 1 and kinds["opened"] == 1
    assert kinds["reopened"] == 0
