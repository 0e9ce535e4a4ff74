"""Reading incidents back: one incident, its timeline, a filtered page, and the live stream's changes.

Split from ``store/incidents.py`` (the writes), which re-exports every name here, so callers use
``store.incidents`` alone. Every read is scoped by ``client_id``: another tenant's incident reads as
missing.

Why keyset paging on (``updated_at``, ``id``): an offset walks every skipped row again and shifts
when an incident changes; the cursor seeks in ``ix_incidents_client_updated`` and costs the same on
page 1 and page 100.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from infragent.incidents.core import IncidentError
from infragent.incidents.model import ACTIVE_STATUSES, Incident, IncidentStatus, TimelineEntry
from infragent.store.schema import incident_timeline, incidents


class CursorError(IncidentError):
    """A paging cursor this server did not give out: answered 422 naming ``cursor``."""

    def __init__(self, cursor: str) -> None:
        super().__init__("cursor: not a cursor from a previous page of this list")
        self.cursor = cursor


@dataclass(frozen=True, slots=True)
class TimelineRecord:
    id: int
    incident_id: str
    entry: TimelineEntry


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """One timeline row with its incident as it is now: an item of the live stream."""

    id: int
    incident: Incident
    entry: TimelineEntry


@dataclass(frozen=True, slots=True)
class IncidentPage:
    incidents: list[Incident]
    #: pass back as ``cursor`` for the next page; None on the last one
    next_cursor: str | None


def incident_from_row(row: sa.Row[Any]) -> Incident:
    return Incident(
        id=row.id,
        client_id=row.client_id,
        fingerprint=row.fingerprint,
        title=row.title,
        severity=row.severity,
        status=IncidentStatus(row.status),
        source=row.source,
        labels=dict(row.labels),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        rule_name=row.rule_name,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        reopen_count=row.reopen_count,
        flap_count=row.flap_count,
        flapping=bool(row.flapping),
        reopened_at=tuple(row.reopened_at),
    )


def newest_with(conn: sa.Connection, client_id: str, fingerprint: str) -> Incident | None:
    row = conn.execute(
        sa.select(incidents)
        .where(incidents.c.client_id == client_id, incidents.c.fingerprint == fingerprint)
        .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else incident_from_row(row)


def get_incident(conn: sa.Connection, client_id: str, incident_id: str) -> Incident | None:
    """None for a missing incident and for another tenant's, alike."""
    row = conn.execute(
        sa.select(incidents).where(incidents.c.client_id == client_id, incidents.c.id == incident_id)
    ).first()
    return None if row is None else incident_from_row(row)


def active_incident_for(conn: sa.Connection, client_id: str, fingerprint: str) -> Incident | None:
    """The fingerprint's incident if it is open, acknowledged or remediating."""
    found = newest_with(conn, client_id, fingerprint)
    return found if found is not None and found.status in ACTIVE_STATUSES else None


def _entry(row: sa.Row[Any]) -> TimelineEntry:
    return TimelineEntry(row.at, row.kind, row.actor, dict(row.detail))


def timeline(conn: sa.Connection, client_id: str, incident_id: str) -> list[TimelineRecord]:
    """The incident's entries in the order they were written ([] for another tenant's)."""
    rows = conn.execute(
        sa.select(incident_timeline)
        .where(incident_timeline.c.client_id == client_id, incident_timeline.c.incident_id == incident_id)
        .order_by(incident_timeline.c.id)
    )
    return [TimelineRecord(r.id, r.incident_id, _entry(r)) for r in rows]


def encode_cursor(incident: Incident) -> str:
    raw = orjson.dumps([incident.updated_at, incident.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise CursorError(cursor) from exc
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int | float)
        and not isinstance(value[0], bool)
        and isinstance(value[1], str)
    )
    if not ok:
        raise CursorError(cursor)
    return float(value[0]), value[1]


def list_incidents(
    conn: sa.Connection,
    client_id: str,
    *,
    status: IncidentStatus | Sequence[IncidentStatus] | None = None,
    severity: str | None = None,
    source: str | None = None,
    since: float | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> IncidentPage:
    """Most recently changed first, ``limit`` a page, keyset-paged on (``updated_at``, ``id``):
    ``since`` keeps incidents changed at or after it. An incident that changes while a client
    pages moves to the front, so it may be seen twice or, if it was ahead, not at all on this walk.
    """
    q = sa.select(incidents).where(incidents.c.client_id == client_id)
    if status is not None:
        wanted = [status] if isinstance(status, IncidentStatus) else list(status)
        q = q.where(incidents.c.status.in_([IncidentStatus(s).value for s in wanted]))
    if severity is not None:
        q = q.where(incidents.c.severity == severity)
    if source is not None:
        q = q.where(incidents.c.source == source)
    if since is not None:
        q = q.where(incidents.c.updated_at >= since)
    if cursor is not None:
        updated_at, last_id = decode_cursor(cursor)
        q = q.where(
            sa.or_(
                incidents.c.updated_at < updated_at,
                sa.and_(incidents.c.updated_at == updated_at, incidents.c.id < last_id),
            )
        )
    rows = conn.execute(q.order_by(incidents.c.updated_at.desc(), incidents.c.id.desc()).limit(limit + 1))
    found = [incident_from_row(r) for r in rows]
    more = len(found) > limit
    page = found[:limit]
    return IncidentPage(page, encode_cursor(page[-1]) if more and page else None)


def changes_since(
    conn: sa.Connection, client_id: str, after_id: int, limit: int = 100
) -> list[IncidentChange]:
    """Timeline rows after ``after_id``, oldest first, each with its incident as it is now."""
    rows = conn.execute(
        sa.select(incident_timeline)
        .where(incident_timeline.c.client_id == client_id, incident_timeline.c.id > after_id)
        .order_by(incident_timeline.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    ids = {r.incident_id for r in rows}
    found = {
        r.id: incident_from_row(r)
        for r in conn.execute(
            sa.select(incidents).where(incidents.c.client_id == client_id, incidents.c.id.in_(ids))
        )
    }
    return [IncidentChange(r.id, found[r.incident_id], _entry(r)) for r in rows]


def latest_change_id(conn: sa.Connection, client_id: str) -> int:
    """The newest timeline id of the tenant (0 when none): where a new stream starts."""
    newest = conn.execute(
        sa.select(sa.func.max(incident_timeline.c.id)).where(incident_timeline.c.client_id == client_id)
    ).scalar()
    return int(newest or 0)
