"""Reading the notification outbox back for people (the API, the pages, the CLI), re-driving a dead
delivery, and each user's in-app inbox.

The pipeline (``notify/pipeline.py``, ``notify/deliver.py``) writes the deliveries and their
attempts; this module only reads them, except ``retry_delivery``, which hands a dead letter back to
the delivery worker as a fresh pending delivery (same id: the receiver can still deduplicate on it).

Why keyset paging on (``created_at``, ``id``): deliveries pile up fast and the newest are wanted;
the cursor seeks in ``ix_notify_deliveries_client_created`` and costs the same on every page. Every
read is scoped by ``client_id``: another tenant's delivery reads as missing (404).

What a view shows of a delivery's message: the incident ids and the title, read from the stored
``Message`` snapshot; never a channel's secrets (they are not in the message, and this module never
selects ``notify_channels.secrets``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from infragent.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from infragent.store import audit
from infragent.store.notify_schema import inbox, notify_attempts, notify_channels, notify_deliveries

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery as people see it: where it goes, what it is about, how far it got."""

    id: str
    client_id: str
    channel_id: str
    #: None when the channel was deleted since (its deliveries stay, as history)
    channel_name: str | None
    channel_kind: str | None
    kind: str
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    deadline_at: float
    delivered_at: float | None
    last_error: str | None
    last_status_code: int | None
    suppressed_by: str | None
    incident_ids: list[str]
    title: str
    group_id: str | None
    route_id: str | None


@dataclass(frozen=True, slots=True)
class AttemptView:
    n: int
    started_at: float
    duration_s: float
    outcome: str
    status_code: int | None
    retry_after_s: float | None
    error: str | None
    worker: str


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    kind: str
    title: str
    body: str
    incident_id: str | None
    created_at: float
    read_at: float | None


# -- deliveries ----------------------------------------------------------------------------------------

_d = notify_deliveries.c
_VIEW_COLUMNS = (
    *(col for col in notify_deliveries.c if col.name not in ("lease_owner", "lease_until", "cause")),
    notify_channels.c.name.label("channel_name"),
    notify_channels.c.kind.label("channel_kind"),
)


def _view_query() -> sa.Select[Any]:
    joined = notify_deliveries.outerjoin(
        notify_channels,
        sa.and_(notify_channels.c.id == _d.channel_id, notify_channels.c.client_id == _d.client_id),
    )
    return sa.select(*_VIEW_COLUMNS).select_from(joined)


def _about(message: Any) -> tuple[list[str], str]:
    """The incident ids and the title of a stored message (tolerant of an older or partial shape)."""
    if not isinstance(message, dict):
        return [], ""
    found = [i for i in message.get("incidents") or () if isinstance(i, dict)]
    ids = [str(i["id"]) for i in found if "id" in i]
    title = message.get("title") or (str(found[0].get("title", "")) if found else "")
    return ids, str(title)


def _view(row: sa.Row[Any]) -> DeliveryView:
    ids, title = _about(row.message)
    if row.incident_id and row.incident_id not in ids:
        ids.insert(0, row.incident_id)
    return DeliveryView(
        id=row.id,
        client_id=row.client_id,
        channel_id=row.channel_id,
        channel_name=row.channel_name,
        channel_kind=row.channel_kind,
        kind=row.kind,
        status=row.status,
        attempts=int(row.attempts),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        deadline_at=row.deadline_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        last_status_code=row.last_status_code,
        suppressed_by=row.suppressed_by,
        incident_ids=ids,
        title=title,
        group_id=row.group_id,
        route_id=row.route_id,
    )


def _encode_cursor(created_at: float, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, delivery_id])).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, delivery_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(delivery_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise NotifyConfigError([("cursor", "not a cursor from a previous page of this list")]) from None


def _about_incident(conn: sa.Connection, incident_id: str) -> sa.ColumnElement[bool]:
    """Deliveries naming ``incident_id``: its own ones (the column) and group ones (the message)."""
    if conn.dialect.name == "postgresql":
        in_message = sa.type_coerce(_d.message, JSONB)["incidents"].contains([{"id": incident_id}])
    else:
        each = sa.func.json_each(_d.message, "$.incidents").table_valued("value")
        in_message = sa.exists(
            sa.select(sa.literal(1))
            .select_from(each)
            .where(sa.func.json_extract(each.c.value, "$.id") == incident_id)
        )
    return sa.or_(_d.incident_id == incident_id, in_message)


def list_deliveries(
    conn: sa.Connection,
    client_id: str,
    *,
    status: str | None = None,
    channel_id: str | None = None,
    incident_id: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> tuple[list[DeliveryView], str | None]:
    """The tenant's deliveries, newest first, and the cursor of the next page (None on the last).
    ``before`` is a cursor of a previous page; one this server did not give is a 422 (``cursor``)."""
    limit = max(1, min(limit, MAX_PAGE))
    q = _view_query().where(_d.client_id == client_id)
    if status is not None:
        q = q.where(_d.status == status)
    if channel_id is not None:
        q = q.where(_d.channel_id == channel_id)
    if incident_id is not None:
        q = q.where(_about_incident(conn, incident_id))
    if before is not None:
        at, last_id = _decode_cursor(before)
        q = q.where(sa.or_(_d.created_at < at, sa.and_(_d.created_at == at, _d.id < last_id)))
    rows = conn.execute(q.order_by(_d.created_at.desc(), _d.id.desc()).limit(limit + 1)).all()
    views = [_view(r) for r in rows[:limit]]
    more = len(rows) > limit
    return views, (_encode_cursor(views[-1].created_at, views[-1].id) if more else None)


def get_delivery(
    conn: sa.Connection, client_id: str, delivery_id: str
) -> tuple[DeliveryView, list[AttemptView]]:
    """One delivery with every attempt, first attempt first. ``NotifyNotFoundError`` otherwise."""
    row = conn.execute(_view_query().where(_d.client_id == client_id, _d.id == delivery_id)).first()
    if row is None:
        raise NotifyNotFoundError("delivery", delivery_id)
    a = notify_attempts.c
    attempts = conn.execute(
        sa.select(notify_attempts)
        .where(a.delivery_id == delivery_id, a.client_id == client_id)
        .order_by(a.n, a.id)
    )
    return _view(row), [
        AttemptView(
            r.n, r.started_at, r.duration_s, r.outcome, r.status_code, r.retry_after_s, r.error, r.worker
        )
        for r in attempts
    ]


def retry_delivery(
    conn: sa.Connection, client_id: str, delivery_id: str, *, actor: str, now: float, retry_for_s: float
) -> DeliveryView:
    """Hand a dead delivery back to the worker: pending, due now, ``retry_for_s`` more to succeed.
    Any other status is ``NotifyConflictError`` (it is delivered, or still being tried)."""
    audit.lock_tenant(conn, client_id)
    view, _ = get_delivery(conn, client_id, delivery_id)
    if view.status != "dead":
        raise NotifyConflictError(
            f"delivery {delivery_id!r} is {view.status}; only a dead delivery can be retried"
        )
    conn.execute(
        notify_deliveries.update()
        .where(_d.client_id == client_id, _d.id == delivery_id, _d.status == "dead")
        .values(
            status="pending",
            next_attempt_at=now,
            deadline_at=now + retry_for_s,
            lease_owner=None,
            lease_until=None,
        )
    )
    detail = {"channel_id": view.channel_id, "attempts": view.attempts, "retry_for_s": retry_for_s}
    audit.append(conn, client_id, actor, "notify.delivery.retried", delivery_id, detail, now)
    return get_delivery(conn, client_id, delivery_id)[0]


# -- the in-app inbox ----------------------------------------------------------------------------------

_i = inbox.c


def _mine(client_id: str, user_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(_i.client_id == client_id, _i.user_id == user_id)


def inbox_add(
    conn: sa.Connection,
    client_id: str,
    user_id: str,
    *,
    delivery_id: str,
    kind: str,
    title: str,
    body: str,
    incident_id: str | None,
    now: float,
) -> int:
    """One in-app notification for one user (a test send to an ``inapp`` channel); returns its id."""
    result = conn.execute(
        inbox.insert()
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
        .returning(_i.id)
    )
    return int(result.scalar_one())


def inbox_list(
    conn: sa.Connection, client_id: str, user_id: str, *, unread_only: bool = False, limit: int = 50
) -> list[InboxItem]:
    """The user's notifications in this tenant, newest first."""
    q = sa.select(inbox).where(_mine(client_id, user_id))
    if unread_only:
        q = q.where(_i.read_at.is_(None))
    rows = conn.execute(q.order_by(_i.id.desc()).limit(max(1, min(limit, MAX_PAGE))))
    return [InboxItem(r.id, r.kind, r.title, r.body, r.incident_id, r.created_at, r.read_at) for r in rows]


def inbox_unread_count(conn: sa.Connection, client_id: str, user_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(inbox).where(_mine(client_id, user_id), _i.read_at.is_(None))
    return int(conn.execute(q).scalar_one())


def inbox_mark_read(
    conn: sa.Connection, client_id: str, user_id: str, ids: Sequence[int] | None, now: float
) -> int:
    """Mark the user's unread notifications among ``ids`` (None: all of them) read; returns how many
    changed. Ids of another user or tenant are left alone, as if they did not exist."""
    q = inbox.update().where(_mine(client_id, user_id), _i.read_at.is_(None))
    if ids is not None:
        if not ids:
            return 0
        q = q.where(_i.id.in_(list(ids)))
    return int(conn.execute(q.values(read_at=now)).rowcount)
