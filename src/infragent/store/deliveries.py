"""The notification outbox, second half: deliveries with their leases and attempts, Slack thread
references, escalation steps already fired, and in-app inbox rows.

Why a ``cause`` on every delivery: the unique key (tenant, cause, channel) makes each step that
creates deliveries idempotent. A group flush names its flush number (``group:<id>:<n>``), a change
its id (``change:<id>``), an escalation step its incident, route and step; running the step again
(a crash before its commit was noticed, two processes racing) inserts nothing the second time.

Why a lease on a claimed delivery: the worker commits the claim (status ``sending``, an owner, an
expiry, ``attempts + 1``) before it sends, and records the result in a later transaction. A worker
that dies in between leaves the delivery to be claimed again once the lease expires; a worker that
outlived its lease finds the row taken (the fence is the owner *and* the attempt number the claim
wrote) and records nothing, so a result is applied at most once per claim. While a row is
``sending`` its ``next_attempt_at`` is the lease's end, so one index range (status, next attempt)
finds both the due pending rows and the abandoned sending ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from infragent.notify.model import IncidentSummary, Message
from infragent.store.notify_schema import (
    inbox,
    notify_attempts,
    notify_deliveries,
    notify_escalations,
    notify_threads,
)
from infragent.store.outbox import insert_ignoring

#: Statuses a worker may claim (a ``sending`` one only once its lease expired).
CLAIMABLE = ("pending", "sending")
_RENDERED = ("title", "text", "html", "threads")


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A claimed delivery: the message snapshot and what the worker needs to send and record it."""

    id: str
    client_id: str
    channel_id: str
    kind: str
    message: Message
    status: str
    attempts: int
    created_at: float
    deadline_at: float
    lease_owner: str | None
    group_id: str | None = None
    incident_id: str | None = None
    route_id: str | None = None


def message_to_doc(message: Message) -> dict[str, Any]:
    """The snapshot as stored: every field but the rendered text and the thread references, which
    are filled just before each send."""
    doc = dataclasses.asdict(message)
    for name in _RENDERED:
        doc.pop(name, None)
    return doc


_SUMMARY_FIELDS = frozenset(f.name for f in dataclasses.fields(IncidentSummary))


def message_from_doc(doc: Mapping[str, Any]) -> Message:
    """The stored snapshot as a ``Message``; keys this version does not know are ignored (a
    snapshot written by a newer or older server still reads). ``KeyError``/``TypeError``/
    ``ValueError`` when it lacks what a message needs."""
    incidents = tuple(
        IncidentSummary(**{k: v for k, v in dict(i).items() if k in _SUMMARY_FIELDS})
        for i in doc.get("incidents", ())
    )
    return Message(
        id=doc["id"],
        client_id=doc["client_id"],
        kind=doc["kind"],
        incidents=incidents,
        created_at=float(doc["created_at"]),
        group_labels=dict(doc.get("group_labels") or {}),
        firing_count=int(doc.get("firing_count", 0)),
        resolved_count=int(doc.get("resolved_count", 0)),
        detail=dict(doc.get("detail") or {}),
        template=dict(doc.get("template") or {}),
    )


def _row(r: sa.Row[Any]) -> DeliveryRow:
    return DeliveryRow(
        id=r.id,
        client_id=r.client_id,
        channel_id=r.channel_id,
        kind=r.kind,
        message=message_from_doc(r.message),
        status=r.status,
        attempts=int(r.attempts),
        created_at=r.created_at,
        deadline_at=r.deadline_at,
        lease_owner=r.lease_owner,
        group_id=r.group_id,
        incident_id=r.incident_id,
        route_id=r.route_id,
    )


# -- creating --------------------------------------------------------------------------------------


def insert_delivery(
    conn: sa.Connection,
    message: Message,
    *,
    channel_id: str,
    cause: str,
    now: float,
    deadline_at: float,
    group_id: str | None = None,
    incident_id: str | None = None,
    route_id: str | None = None,
    status: str = "pending",
    last_error: str | None = None,
    suppressed_by: str | None = None,
) -> bool:
    """Insert the delivery of ``message`` (its id is the delivery's); False when a delivery of the
    same cause to the same channel exists (the step that creates it already ran)."""
    result = conn.execute(
        insert_ignoring(conn, notify_deliveries, "client_id", "cause", "channel_id")
        .values(
            id=message.id,
            client_id=message.client_id,
            channel_id=channel_id,
            group_id=group_id,
            incident_id=incident_id,
            route_id=route_id,
            kind=message.kind,
            message=message_to_doc(message),
            status=status,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            deadline_at=deadline_at,
            last_error=last_error,
            suppressed_by=None if suppressed_by is None else suppressed_by[:200],
            cause=cause,
        )
        .returning(notify_deliveries.c.id)
    )
    return result.first() is not None


def get_delivery(conn: sa.Connection, delivery_id: str) -> DeliveryRow | None:
    row = conn.execute(sa.select(notify_deliveries).where(notify_deliveries.c.id == delivery_id)).first()
    return None if row is None else _row(row)


# -- claiming and recording ------------------------------------------------------------------------


def claim_due(
    conn: sa.Connection,
    worker: str,
    lease_s: float,
    now: float,
    limit: int,
    *,
    per_incident_s: float = 0.0,
) -> list[DeliveryRow]:
    """Lease up to ``limit`` due deliveries to ``worker``: pending ones whose time has come and
    sending ones whose lease expired, the longest due first. Each is ``sending`` with its attempt
    counted when this returns; commit before sending.

    The lease is ``lease_s`` (``notify_lease_s``: the operator's bound on a crash's delay), or
    longer for a message about several incidents: ``per_incident_s`` (one request's timeout) per
    incident and one more, since some channels send one request per incident (PagerDuty events,
    Slack threads). A lease must outlast the send it covers, or a slow send would be taken over
    and sent twice."""
    d = notify_deliveries
    q = (
        sa.select(d.c.id, d.c.message)
        .where(d.c.status.in_(CLAIMABLE), d.c.next_attempt_at <= now)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    leases: dict[float, list[str]] = {}
    for due in conn.execute(q):
        incidents = len((due.message or {}).get("incidents") or ())
        until = now + (max(lease_s, per_incident_s * (incidents + 1)) if incidents > 1 else lease_s)
        leases.setdefault(until, []).append(due.id)
    if not leases:
        return []
    for until, ids in leases.items():
        conn.execute(
            d.update()
            .where(d.c.id.in_(ids))
            .values(
                status="sending",
                lease_owner=worker,
                lease_until=until,
                next_attempt_at=until,
                attempts=d.c.attempts + 1,
            )
        )
    claimed = [i for ids in leases.values() for i in ids]
    rows = conn.execute(sa.select(d).where(d.c.id.in_(claimed)).order_by(d.c.created_at, d.c.id)).all()
    readable = []
    for r in rows:
        try:
            readable.append(_row(r))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # never sendable: dead now, rather than claimed first (and failing) in every round
            error = f"the stored message cannot be read ({type(exc).__name__})"
            conn.execute(
                d.update()
                .where(d.c.id == r.id)
                .values(status="dead", lease_owner=None, lease_until=None, last_error=error)
            )
    return readable


def has_due(conn: sa.Connection, now: float) -> bool:
    """Whether a claim could find a delivery (a read: an idle round takes no write lock)."""
    d = notify_deliveries
    q = sa.select(d.c.id).where(d.c.status.in_(CLAIMABLE), d.c.next_attempt_at <= now).limit(1)
    return conn.execute(q).first() is not None


def finish(
    conn: sa.Connection,
    delivery_id: str,
    worker: str,
    attempts: int,
    *,
    status: str,
    now: float,
    next_attempt_at: float | None = None,
    last_error: str | None = None,
    last_status_code: int | None = None,
) -> bool:
    """Record the outcome of the claim ``worker`` made as attempt ``attempts``; False (nothing
    written) when that claim no longer holds the delivery: its lease expired and another took it."""
    d = notify_deliveries
    values: dict[str, Any] = {
        "status": status,
        "lease_owner": None,
        "lease_until": None,
        "last_error": last_error,
        "last_status_code": last_status_code,
        "next_attempt_at": now if next_attempt_at is None else next_attempt_at,
    }
    if status == "delivered":
        values["delivered_at"] = now
    result = conn.execute(
        d.update()
        .where(
            d.c.id == delivery_id,
            d.c.status == "sending",
            d.c.lease_owner == worker,
            d.c.attempts == attempts,
        )
        .values(**values)
    )
    return result.rowcount == 1


def add_attempt(
    conn: sa.Connection,
    delivery_id: str,
    client_id: str,
    *,
    n: int,
    started_at: float,
    duration_s: float,
    outcome: str,
    worker: str,
    status_code: int | None = None,
    retry_after_s: float | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        notify_attempts.insert().values(
            delivery_id=delivery_id,
            client_id=client_id,
            n=n,
            started_at=started_at,
            duration_s=duration_s,
            outcome=outcome,
            status_code=status_code,
            retry_after_s=retry_after_s,
            error=error,
            worker=worker,
        )
    )


def attempts_of(conn: sa.Connection, delivery_id: str) -> list[sa.Row[Any]]:
    """The delivery's attempt rows, oldest first (tests and the dead-letter audit read them)."""
    a = notify_attempts
    return list(conn.execute(sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.id)))


def pending_count(conn: sa.Connection) -> int:
    """Deliveries not yet delivered, dead or suppressed (the pending gauge)."""
    d = notify_deliveries
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(d).where(d.c.status.in_(CLAIMABLE))).scalar_one()
    )


# -- threads, escalation steps, inbox --------------------------------------------------------------


def load_threads(conn: sa.Connection, channel_id: str, incident_ids: Iterable[str]) -> dict[str, str]:
    ids = list(incident_ids)
    if not ids:
        return {}
    t = notify_threads
    rows = conn.execute(
        sa.select(t.c.incident_id, t.c.ref).where(t.c.channel_id == channel_id, t.c.incident_id.in_(ids))
    )
    return {r.incident_id: r.ref for r in rows}


def save_threads(
    conn: sa.Connection, client_id: str, channel_id: str, threads: Mapping[str, str], now: float
) -> None:
    """Keep the thread reference of each incident on the channel; a known one is kept as it was
    (the first root message stays the thread everything is posted under)."""
    for incident_id, ref in threads.items():
        conn.execute(
            insert_ignoring(conn, notify_threads, "channel_id", "incident_id").values(
                channel_id=channel_id,
                incident_id=incident_id,
                client_id=client_id,
                ref=ref[:200],
                created_at=now,
            )
        )


def fired_steps(conn: sa.Connection, incident_id: str, route_id: str) -> set[int]:
    e = notify_escalations
    rows = conn.execute(sa.select(e.c.step).where(e.c.incident_id == incident_id, e.c.route_id == route_id))
    return {int(r.step) for r in rows}


def fire_step(
    conn: sa.Connection, client_id: str, incident_id: str, route_id: str, step: int, now: float
) -> bool:
    """Record the escalation step as fired; False when it already was (by this or another process)."""
    result = conn.execute(
        insert_ignoring(conn, notify_escalations, "incident_id", "route_id", "step")
        .values(incident_id=incident_id, route_id=route_id, step=step, client_id=client_id, fired_at=now)
        .returning(notify_escalations.c.step)
    )
    return result.first() is not None


def add_inbox(
    conn: sa.Connection,
    client_id: str,
    user_id: str,
    delivery_id: str,
    *,
    kind: str,
    title: str,
    body: str,
    now: float,
    incident_id: str | None = None,
) -> bool:
    """One in-app notification for one user; False when that user already has this delivery's."""
    result = conn.execute(
        insert_ignoring(conn, inbox, "delivery_id", "user_id")
        .values(
            client_id=client_id,
            user_id=user_id,
            delivery_id=delivery_id,
            incident_id=incident_id,
            kind=kind,
            title=title[:300],
            body=body,
            created_at=now,
        )
        .returning(inbox.c.id)
    )
    return result.first() is not None
