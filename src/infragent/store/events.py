"""Events reported by SDKs and agents: pending until a responder has handled them.

Why ``NOTIFY`` in the insert's transaction: the notification is delivered at commit, so a
PostgreSQL listener (``store/wakeup.py``) is woken exactly when the event is visible to its claim.
Why the incident in the same transaction: the responder decides per incident, so an event it can
claim is already on its incident (``store/incidents.record_event``: opened, joined or reopened by
fingerprint), unless an event rule claimed it for the rule's alert incident.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from infragent.incidents.model import IncidentPolicy
from infragent.model import Event, Severity
from infragent.store import agents as agent_rows
from infragent.store import audit
from infragent.store import incidents as incident_rows
from infragent.store.records import EventDetail
from infragent.store.schema import agents, commands, decisions, events

#: The PostgreSQL channel an insert notifies and ``store/wakeup.py`` listens on.
NOTIFY_CHANNEL = "infragent_events"


def event_from_row(row: sa.Row[Any], node_id: str) -> Event:
    return Event(
        row.id,
        row.client_id,
        row.agent_id,
        node_id,
        row.type,
        row.service,
        Severity(row.severity),
        dict(row.data),
        row.received_at,
        row.processed_at,
        row.incident_id,
    )


def insert_event(
    conn: sa.Connection,
    client_id: str,
    *,
    type: str,
    service: str,
    severity: Severity,
    data: dict[str, Any],
    node_id: str,
    now: float,
    incidents: IncidentPolicy | None = None,
) -> Event:
    """Store a pending event (creating its agent if new), audit it, record it on its incident when
    ``incidents`` (the tenant's incident policy) is given, and notify listeners at commit.

    The events route always gives the policy, except for an event an event rule claimed (the rule's
    alert incident takes it, ``alerting``); without one the responder decides on the event alone.
    """
    event_id = str(uuid.uuid4())
    agent_id = agent_rows.ensure_agent(conn, client_id, node_id, now)
    conn.execute(
        events.insert().values(
            id=event_id,
            client_id=client_id,
            agent_id=agent_id,
            type=type,
            service=service,
            severity=severity.value,
            data=data,
            received_at=now,
        )
    )
    audit.append(
        conn,
        client_id,
        "api",
        "event.received",
        event_id,
        {"type": type, "service": service, "severity": severity.value, "node_id": node_id},
        now,
    )
    event = Event(event_id, client_id, agent_id, node_id, type, service, severity, data, now)
    if incidents is not None:
        event = replace(event, incident_id=incident_rows.record_event(conn, event, incidents, now))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:ch, :p)"), {"ch": NOTIFY_CHANNEL, "p": event_id})
    return event


def list_events(
    conn: sa.Connection, client_id: str, status: str | None = None, limit: int = 100
) -> list[Event]:
    """The client's newest events first; ``status`` is ``pending``, ``processed`` or None (both)."""
    q = (
        sa.select(events, agents.c.node_id)
        .join(agents, agents.c.id == events.c.agent_id)
        .where(events.c.client_id == client_id)
        .order_by(events.c.received_at.desc())
        .limit(limit)
    )
    if status == "pending":
        q = q.where(events.c.processed_at.is_(None))
    elif status == "processed":
        q = q.where(events.c.processed_at.is_not(None))
    return [event_from_row(r, r.node_id) for r in conn.execute(q)]


def get_event_detail(conn: sa.Connection, client_id: str, event_id: str) -> EventDetail | None:
    """The event with its decision, command and audit trail; None for another client's event."""
    row = conn.execute(
        sa.select(events, agents.c.node_id)
        .join(agents, agents.c.id == events.c.agent_id)
        .where(events.c.client_id == client_id, events.c.id == event_id)
    ).first()
    if row is None:
        return None
    decision = command = None
    subjects = [event_id]
    if row.decision_id:
        d = conn.execute(sa.select(decisions).where(decisions.c.id == row.decision_id)).first()
        decision = dict(d._mapping) if d else None
        c = conn.execute(sa.select(commands).where(commands.c.decision_id == row.decision_id)).first()
        command = dict(c._mapping) if c else None
        subjects += [row.decision_id] + ([c.id] if c else [])
    return EventDetail(
        event_from_row(row, row.node_id), decision, command, audit.entries(conn, client_id, subjects)
    )


def pending_count(conn: sa.Connection) -> int:
    """Events not yet handled, over all clients (the server's backlog gauge)."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.processed_at.is_(None))
        ).scalar_one()
    )


def mark_processed(conn: sa.Connection, event_ids: Sequence[str], now: float) -> None:
    """Set ``processed_at`` on those still pending (a re-run leaves the first time in place)."""
    conn.execute(
        events.update()
        .where(events.c.id.in_(list(event_ids)), events.c.processed_at.is_(None))
        .values(processed_at=now)
    )


def link_decision(conn: sa.Connection, event_ids: Sequence[str], decision_id: str) -> None:
    """Attach the decision taken about these events (a crash-recovering claimant finds it here)."""
    conn.execute(events.update().where(events.c.id.in_(list(event_ids))).values(decision_id=decision_id))


def decision_event_ids(conn: sa.Connection, decision_id: str) -> list[str]:
    """The events a decision was taken about, oldest first: the ``event_ids`` of its command."""
    return list(
        conn.execute(
            sa.select(events.c.id).where(events.c.decision_id == decision_id).order_by(events.c.received_at)
        ).scalars()
    )
