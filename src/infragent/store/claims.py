"""Claims: one agent's pending events leased to one responder.

Why claims are per agent: the cooldown and the coalescing of events are per agent, so one responder
owns all of an agent's pending events at a time. The agent picked is the free one whose oldest
pending event is the oldest, so no agent starves another. PostgreSQL picks it with
``FOR UPDATE SKIP LOCKED``; SQLite serializes claimers with ``BEGIN IMMEDIATE``. Both then write a
lease (owner, token, expiry): a responder that dies leaves the agent to be claimed again once the
lease expires, and every later write checks the token, so a late writer cannot finish a claim it lost
(``LeaseLostError``, the responder port's error: ``store/workqueue.py`` hands claims to the responder).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from infragent.responder.ports import LeaseLostError, PriorDecision
from infragent.store import agents as agent_rows
from infragent.store import audit, tenants
from infragent.store import events as event_rows
from infragent.store.records import Claim
from infragent.store.schema import agents, clients, commands, decisions, events


def _has_pending() -> sa.Exists:
    return (
        sa.select(events.c.id)
        .where(events.c.agent_id == agents.c.id, events.c.processed_at.is_(None))
        .exists()
    )


def _oldest_pending() -> sa.ScalarSelect[Any]:
    """When the agent's oldest pending event arrived: the first entry under the agent's id in
    ``ix_events_pending_agent_received`` (``ORDER BY … LIMIT 1``, which both databases answer
    with one seek; ``min()`` made PostgreSQL read the agent's whole backlog)."""
    return (
        sa.select(events.c.received_at)
        .where(events.c.agent_id == agents.c.id, events.c.processed_at.is_(None))
        .order_by(events.c.received_at)
        .limit(1)
        .scalar_subquery()
    )


def pick_query(now: float, *, postgresql: bool) -> sa.Select[Any]:
    """The free agent whose oldest pending event is the oldest (``claim``'s pick; ``bench/`` explains it).

    Why oldest first: without an order the database returns whichever free agent it meets first,
    and an agent that always has fresh events (and sits early in the table) is picked every time
    while a quiet agent's older event waits. Ordering by each agent's oldest pending event serves
    work in arrival order across agents (ties by agent id, so the order is total).
    """
    q = (
        sa.select(agents)
        .where(
            sa.or_(agents.c.lease_until.is_(None), agents.c.lease_until < now),
            sa.or_(agents.c.cooldown_until.is_(None), agents.c.cooldown_until <= now),
            _has_pending(),
        )
        .order_by(_oldest_pending(), agents.c.id)
        .limit(1)
    )
    return q.with_for_update(skip_locked=True, of=agents) if postgresql else q


def claim(
    conn: sa.Connection, worker: str, lease_s: float, now: float, max_events: int = 1000
) -> Claim | None:
    """Lease the agent ``pick_query`` names; None when no agent has claimable work.

    Run it in a write transaction: the pick and the lease must be one atomic step.
    """
    q = pick_query(now, postgresql=conn.dialect.name == "postgresql")
    row = conn.execute(q).first()
    if row is None:
        return None
    token = str(uuid.uuid4())
    conn.execute(
        agents.update()
        .where(agents.c.id == row.id)
        .values(lease_owner=worker, lease_token=token, lease_until=now + lease_s)
    )
    rows = conn.execute(
        sa.select(events)
        .where(events.c.agent_id == row.id, events.c.processed_at.is_(None))
        .order_by(events.c.received_at)
        .limit(max_events)
    ).all()
    client = tenants.client_from_row(
        conn.execute(sa.select(clients).where(clients.c.id == row.client_id)).one()
    )
    return Claim(
        agent_rows.agent_from_row(row),
        client,
        token,
        worker,
        now + lease_s,
        tuple(event_rows.event_from_row(r, row.node_id) for r in rows),
        _prior_decision(conn, [r.decision_id for r in rows if r.decision_id]),
    )


def _prior_decision(conn: sa.Connection, decision_ids: list[str]) -> PriorDecision | None:
    if not decision_ids:
        return None
    d = conn.execute(sa.select(decisions).where(decisions.c.id == decision_ids[0])).one()
    c = conn.execute(sa.select(commands).where(commands.c.decision_id == d.id)).first()
    return PriorDecision(
        d.id,
        d.action,
        d.target,
        dict(d.params),
        d.rationale,
        d.source,
        c.id if c else None,
        c.status if c else None,
        d.incident_id,
    )


def check_lease(
    conn: sa.Connection, agent_id: str, token: str, now: float, extend_s: float | None = None
) -> None:
    """Raise ``LeaseLostError`` unless ``token`` still holds the agent; with ``extend_s``, renew it."""
    values: dict[str, Any] = {"lease_until": now + extend_s} if extend_s else {"lease_token": token}
    res = conn.execute(
        agents.update().where(agents.c.id == agent_id, agents.c.lease_token == token).values(**values)
    )
    if res.rowcount != 1:
        raise LeaseLostError(f"lease on agent {agent_id!r} was lost")


def release(
    conn: sa.Connection,
    *,
    client_id: str,
    agent_id: str,
    token: str,
    event_ids: Sequence[str],
    now: float,
    cooldown_until: float | None,
    actor: str,
    outcome: str,
    joined: Sequence[tuple[str, str | None]] = (),
) -> None:
    """Mark the claimed events processed and release the agent, fenced by the token.

    ``event_ids`` were decided on (``outcome``); ``joined`` are (event id, incident id) of events
    whose incident already had a decision: processed without one, audited as joined.
    """
    res = conn.execute(
        agents.update()
        .where(agents.c.id == agent_id, agents.c.lease_token == token)
        .values(lease_owner=None, lease_token=None, lease_until=None, cooldown_until=cooldown_until)
    )
    if res.rowcount != 1:
        raise LeaseLostError(f"lease on agent {agent_id!r} was lost")
    event_rows.mark_processed(conn, [*event_ids, *(e for e, _ in joined)], now)
    for event_id in event_ids:
        audit.append(
            conn,
            client_id,
            actor,
            "event.processed",
            event_id,
            {"outcome": outcome, "coalesced": len(event_ids)},
            now,
        )
    for event_id, incident_id in joined:
        detail = {"outcome": f"joined incident {incident_id}", "incident_id": incident_id}
        audit.append(conn, client_id, actor, "event.processed", event_id, detail, now)


def next_due(conn: sa.Connection, now: float) -> float | None:
    """When the earliest agent with pending events becomes claimable again (cooldown or lease over)."""
    q = sa.select(agents.c.cooldown_until, agents.c.lease_until).where(
        _has_pending(), sa.or_(agents.c.cooldown_until > now, agents.c.lease_until > now)
    )
    ends = [max(r.cooldown_until or 0.0, r.lease_until or 0.0) for r in conn.execute(q)]
    return min(ends) if ends else None
