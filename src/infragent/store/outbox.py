"""The notification outbox, first half: changes written with the incident change that caused them,
and the aggregation groups with their notification log (deliveries are in ``store/deliveries.py``).

``enqueue_change`` is called by ``store/incidents.py`` inside the transaction of the incident change
(opened, reopened, resolved, escalated, acknowledged) and by the responder for approval requests:
the change commits exactly with its cause, or not at all. It marks the connection
(``conn.info[CHANGED]``) so that a commit listener of the pipeline in this process wakes it at once
(``notify/service.py``); other processes find the row at their next tick.

How several processes share the work without doing it twice. Every claim is one row at a time in
the caller's write transaction: PostgreSQL picks it with ``FOR UPDATE SKIP LOCKED`` (another
process skips the row it holds and takes the next), SQLite's ``BEGIN IMMEDIATE`` admits one writer
(``store/engine.py``). Whatever the claim leads to (a change routed and marked processed, a group
flushed with its log advanced) commits in that same transaction, so a crash before the commit
leaves the row to be claimed again and a crash after it leaves nothing to redo.

Groups are keyed by (tenant, route, group key). ``lock_group`` inserts with ``ON CONFLICT DO
NOTHING`` and then selects the row ``FOR UPDATE``: two processes creating the same group at once
both end on the one row (the second insert waits for the first to commit, then does nothing), and
every change to a group's members happens under that row lock, which the flush holds too.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.store.notify_schema import notify_changes, notify_group_members, notify_groups

#: ``conn.info`` key set when a change was written in the connection's transaction.
CHANGED = "infragent.notify_changed"


@dataclass(frozen=True, slots=True)
class Change:
    """A ``notify_changes`` row: what happened to which incident (``model.ChangeKind``)."""

    id: int
    client_id: str
    incident_id: str
    kind: str
    at: float
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GroupRow:
    """An aggregation group and its notification log (what was last sent, and when)."""

    id: str
    client_id: str
    route_id: str
    group_key: str
    group_labels: dict[str, str]
    created_at: float
    next_flush_at: float | None
    sent_firing: frozenset[str]
    sent_resolved: frozenset[str]
    sent_at: float | None
    flush_count: int


@dataclass(frozen=True, slots=True)
class MemberRow:
    incident_id: str
    #: "firing" | "resolved"
    status: str
    changed_at: float


def _postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def insert_ignoring(conn: sa.Connection, table: sa.Table, *unique: str) -> Any:
    """``INSERT … ON CONFLICT (unique) DO NOTHING`` on either database."""
    dialect = postgresql if _postgres(conn) else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique))


# -- changes ---------------------------------------------------------------------------------------


def enqueue_change(
    conn: sa.Connection,
    client_id: str,
    incident_id: str,
    kind: str,
    now: float,
    detail: dict[str, Any] | None = None,
) -> int:
    """Write a change row (``model.ChangeKind``) in the caller's transaction; returns its id."""
    result = conn.execute(
        notify_changes.insert()
        .values(client_id=client_id, incident_id=incident_id, kind=kind, at=now, detail=detail or {})
        .returning(notify_changes.c.id)
    )
    conn.info[CHANGED] = True
    return int(result.scalar_one())


def claim_change(conn: sa.Connection, skip: Collection[int] = ()) -> Change | None:
    """The oldest unprocessed change no other transaction holds (``skip``: ids the caller leaves
    alone for now); it stays claimed until the caller's transaction ends."""
    q = sa.select(notify_changes).where(notify_changes.c.processed_at.is_(None))
    if skip:
        q = q.where(notify_changes.c.id.not_in(list(skip)))
    q = q.order_by(notify_changes.c.id).limit(1)
    if _postgres(conn):
        q = q.with_for_update(skip_locked=True)
    row = conn.execute(q).first()
    if row is None:
        return None
    return Change(row.id, row.client_id, row.incident_id, row.kind, row.at, dict(row.detail or {}))


def has_pending_change(conn: sa.Connection, skip: Collection[int] = ()) -> bool:
    """Whether a claim could find a change: a read, so an idle round takes no write lock (SQLite)."""
    q = sa.select(notify_changes.c.id).where(notify_changes.c.processed_at.is_(None))
    if skip:
        q = q.where(notify_changes.c.id.not_in(list(skip)))
    return conn.execute(q.limit(1)).first() is not None


def mark_processed(conn: sa.Connection, change_id: int, now: float) -> None:
    conn.execute(notify_changes.update().where(notify_changes.c.id == change_id).values(processed_at=now))


def pending_changes(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(notify_changes)
            .where(notify_changes.c.processed_at.is_(None))
        ).scalar_one()
    )


# -- groups ----------------------------------------------------------------------------------------


def _group(row: sa.Row[Any]) -> GroupRow:
    return GroupRow(
        id=row.id,
        client_id=row.client_id,
        route_id=row.route_id,
        group_key=row.group_key,
        group_labels=dict(row.group_labels or {}),
        created_at=row.created_at,
        next_flush_at=row.next_flush_at,
        sent_firing=frozenset(row.sent_firing or ()),
        sent_resolved=frozenset(row.sent_resolved or ()),
        sent_at=row.sent_at,
        flush_count=int(row.flush_count),
    )


def lock_group(
    conn: sa.Connection,
    client_id: str,
    route_id: str,
    group_key: str,
    group_labels: Mapping[str, str],
    created_at: float,
) -> GroupRow:
    """The group of (tenant, route, key), created if new (``created_at``: when its first member's
    change happened), locked until the transaction ends."""
    conn.execute(
        insert_ignoring(conn, notify_groups, "client_id", "route_id", "group_key").values(
            id=str(uuid.uuid4()),
            client_id=client_id,
            route_id=route_id,
            group_key=group_key,
            group_labels=dict(group_labels),
            created_at=created_at,
            next_flush_at=None,
            sent_firing=[],
            sent_resolved=[],
            sent_at=None,
            flush_count=0,
        )
    )
    q = sa.select(notify_groups).where(
        notify_groups.c.client_id == client_id,
        notify_groups.c.route_id == route_id,
        notify_groups.c.group_key == group_key,
    )
    if _postgres(conn):
        q = q.with_for_update()
    return _group(conn.execute(q).one())


def lock_group_by_id(conn: sa.Connection, group_id: str) -> GroupRow | None:
    """The group, locked until the transaction ends (waits for a flush that holds it)."""
    q = sa.select(notify_groups).where(notify_groups.c.id == group_id)
    if _postgres(conn):
        q = q.with_for_update()
    row = conn.execute(q).first()
    return None if row is None else _group(row)


def get_group(conn: sa.Connection, group_id: str) -> GroupRow | None:
    row = conn.execute(sa.select(notify_groups).where(notify_groups.c.id == group_id)).first()
    return None if row is None else _group(row)


def claim_due_group(conn: sa.Connection, now: float) -> GroupRow | None:
    """The group due the longest (``next_flush_at <= now``) that no other transaction holds."""
    q = (
        sa.select(notify_groups)
        .where(notify_groups.c.next_flush_at <= now)
        .order_by(notify_groups.c.next_flush_at, notify_groups.c.id)
        .limit(1)
    )
    if _postgres(conn):
        q = q.with_for_update(skip_locked=True)
    row = conn.execute(q).first()
    return None if row is None else _group(row)


def has_due_group(conn: sa.Connection, now: float) -> bool:
    """Whether a group is due (a read; see ``has_pending_change``)."""
    q = sa.select(notify_groups.c.id).where(notify_groups.c.next_flush_at <= now).limit(1)
    return conn.execute(q).first() is not None


def set_next_flush(conn: sa.Connection, group_id: str, next_flush_at: float | None) -> None:
    conn.execute(
        notify_groups.update().where(notify_groups.c.id == group_id).values(next_flush_at=next_flush_at)
    )


def record_flush(
    conn: sa.Connection,
    group_id: str,
    *,
    sent_firing: Iterable[str],
    sent_resolved: Iterable[str],
    sent_at: float,
    flush_count: int,
    next_flush_at: float | None,
    drop: Iterable[str] = (),
) -> None:
    """Advance the notification log after a send, and drop the members it need not keep."""
    conn.execute(
        notify_groups.update()
        .where(notify_groups.c.id == group_id)
        .values(
            sent_firing=sorted(set(sent_firing)),
            sent_resolved=sorted(set(sent_resolved)),
            sent_at=sent_at,
            flush_count=flush_count,
            next_flush_at=next_flush_at,
        )
    )
    drop_members(conn, group_id, drop)


def record_hold(
    conn: sa.Connection,
    group_id: str,
    *,
    sent_firing: Iterable[str],
    sent_resolved: Iterable[str],
    next_flush_at: float | None,
    drop: Iterable[str] = (),
) -> None:
    """A flush that sent nothing: the log forgets the members dropped (``sent_at`` and the flush
    count stay: nothing was sent), and the group is due again at ``next_flush_at``."""
    conn.execute(
        notify_groups.update()
        .where(notify_groups.c.id == group_id)
        .values(
            sent_firing=sorted(set(sent_firing)),
            sent_resolved=sorted(set(sent_resolved)),
            next_flush_at=next_flush_at,
        )
    )
    drop_members(conn, group_id, drop)


# -- members ---------------------------------------------------------------------------------------


def set_member(
    conn: sa.Connection, group_id: str, client_id: str, incident_id: str, status: str, now: float
) -> str | None:
    """Put the incident in the group with ``status``; returns its previous status (None: new).

    Call with the group locked (``lock_group``): the read and the write are then one step."""
    m = notify_group_members
    key = (m.c.group_id == group_id, m.c.incident_id == incident_id)
    previous = conn.execute(sa.select(m.c.status).where(*key)).scalar()
    if previous is None:
        conn.execute(
            m.insert().values(
                group_id=group_id, incident_id=incident_id, client_id=client_id, status=status, changed_at=now
            )
        )
    elif previous != status:
        conn.execute(m.update().where(*key).values(status=status, changed_at=now))
    return None if previous is None else str(previous)


def members(conn: sa.Connection, group_id: str) -> list[MemberRow]:
    m = notify_group_members
    rows = conn.execute(
        sa.select(m.c.incident_id, m.c.status, m.c.changed_at)
        .where(m.c.group_id == group_id)
        .order_by(m.c.changed_at, m.c.incident_id)
    )
    return [MemberRow(r.incident_id, r.status, r.changed_at) for r in rows]


def groups_of(conn: sa.Connection, client_id: str, incident_id: str) -> list[str]:
    """The groups the incident is a member of (any route), in a stable order."""
    m = notify_group_members
    rows = conn.execute(
        sa.select(m.c.group_id)
        .where(m.c.client_id == client_id, m.c.incident_id == incident_id)
        .order_by(m.c.group_id)
    )
    return [r.group_id for r in rows]


def drop_members(conn: sa.Connection, group_id: str, incident_ids: Iterable[str]) -> None:
    ids = list(incident_ids)
    if ids:
        m = notify_group_members
        conn.execute(m.delete().where(m.c.group_id == group_id, m.c.incident_id.in_(ids)))
