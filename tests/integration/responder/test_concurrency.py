"""Two responders on one database: every event handled exactly once, every incident decided once,
every action run once."""

from __future__ import annotations

import time
from collections import Counter

from infragent.incidents.model import IncidentPolicy
from infragent.model import Severity
from infragent.responder.loop import ResponderConfig
from infragent.store import events as event_rows
from infragent.store.sql import SqlStore, open_store
from support.databases import audit_entries, insert_event, pending_count
from support.responders import Receiver, make_responder, register_node

AGENTS = 50
EVENTS = 1000


def test_two_responders_handle_1000_events_exactly_once(
    store: SqlStore, receiver: Receiver, db_url: str
) -> None:
    nodes = [f"host-{i}/web" for i in range(AGENTS)]
    for n in nodes:
        register_node(store, receiver.reg, n)
    # Each responder has its own engine, like two processes would; events keep arriving while they run.
    stores = [open_store(db_url), open_store(db_url)]
    responders = [make_responder(s, worker=f"r{i}") for i, s in enumerate(stores)]
    for r in responders:
        r.config = ResponderConfig(lease_s=30, cooldown_s=0, sweep_interval_s=0.02)
    running = [r.start() for r in responders]
    try:
        for i in range(EVENTS):
            insert_event(
                store,
                receiver.reg.client.id,
                type="app_down",
                service="web",
                severity=Severity.CRITICAL,
                data={"i": i},
                node_id=nodes[i % AGENTS],
                now=1.0 + i,
                incidents=IncidentPolicy(),
            )
        deadline = time.monotonic() + 120
        while pending_count(store) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for thread, stop in running:
            stop.set()
            thread.join(30)
        for s in stores:
            s.close()

    assert all(r.handled > 0 for r in responders), [r.handled for r in responders]
    assert sum(r.handled for r in responders) == EVENTS
    assert pending_count(store) == 0
    processed = Counter(
        a.subject for a in audit_entries(store, receiver.reg.client.id) if a.kind == "event.processed"
    )
    assert len(processed) == EVENTS and set(processed.values()) == {1}
    # One incident per agent (type + service + node), decided once: one command each, run once.
    with store.read() as conn:
        events = event_rows.list_events(conn, receiver.reg.client.id, None, EVENTS)
    incidents = {e.incident_id for e in events}
    assert len(events) == EVENTS and None not in incidents and len(incidents) == AGENTS
    decisions = [a for a in audit_entries(store, receiver.reg.client.id) if a.kind == "decision.made"]
    assert sorted(a.detail["incident_id"] for a in decisions) == sorted(incidents)
    assert len(receiver.commands) == AGENTS and set(receiver.runs.values()) == {1}
    # Each command covers a disjoint set of events; every other event joined its decided incident.
    covered = Counter(e for c in receiver.commands for e in c.event_ids)
    assert set(covered.values()) == {1}
    joined = {
        a.subject
        for a in audit_entries(store, receiver.reg.client.id)
        if a.kind == "event.processed" and a.detail["outcome"].startswith("joined incident")
    }
    assert joined.isdisjoint(covered) and len(joined) + len(covered) == EVENTS
