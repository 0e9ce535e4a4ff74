"""What the notification pipeline reads of incidents: several at once, the ones still firing (for
inhibition), the ones an escalation policy may be due for, and the newest timeline entries a
message quotes (the alert's value, what the responder did).

Why a module of its own and not ``store/incident_reads.py``: these reads serve only the pipeline
(``notify/pipeline.py``, ``notify/flush.py``, ``notify/snapshot.py``) and their shapes follow what
a message and a flush need; the incident reads serve the API and the pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from infragent.incidents.model import Incident, IncidentStatus
from infragent.store.incident_reads import incident_from_row
from infragent.store.notify_schema import notify_routing
from infragent.store.schema import incident_timeline, incidents

#: Incidents whose labels inhibit others at most (the newest): bounds one flush's read.
MAX_INHIBITING = 5000
#: Incidents looked at per tenant for due escalation steps (the most recently changed).
MAX_ESCALATING = 2000
#: Statuses an escalation policy pages for: nobody has acknowledged the incident, it is not over.
UNACKNOWLEDGED = (IncidentStatus.OPEN.value, IncidentStatus.REMEDIATING.value, IncidentStatus.ESCALATED.value)


def incidents_by_id(conn: sa.Connection, client_id: str, ids: Iterable[str]) -> dict[str, Incident]:
    """The tenant's incidents among ``ids`` (missing ones are absent)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, Incident] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            sa.select(incidents).where(
                incidents.c.client_id == client_id, incidents.c.id.in_(wanted[start : start + 500])
            )
        )
        found.update((r.id, incident_from_row(r)) for r in rows)
    return found


def unresolved(conn: sa.Connection, client_id: str, limit: int = MAX_INHIBITING) -> list[Incident]:
    """The tenant's incidents that are not resolved, newest change first: what may inhibit."""
    rows = conn.execute(
        sa.select(incidents)
        .where(incidents.c.client_id == client_id, incidents.c.status != IncidentStatus.RESOLVED.value)
        .order_by(incidents.c.updated_at.desc())
        .limit(limit)
    )
    return [incident_from_row(r) for r in rows]


def routed_tenants(conn: sa.Connection) -> list[str]:
    """Tenants with a stored route tree: only those can have escalation policies (the default
    tree has none)."""
    return list(
        conn.execute(sa.select(notify_routing.c.client_id).order_by(notify_routing.c.client_id)).scalars()
    )


def unacknowledged(
    conn: sa.Connection, client_id: str, changed_since: float, limit: int = MAX_ESCALATING
) -> list[Incident]:
    """The tenant's incidents nobody acknowledged and not over, changed since ``changed_since``."""
    rows = conn.execute(
        sa.select(incidents)
        .where(
            incidents.c.client_id == client_id,
            incidents.c.status.in_(UNACKNOWLEDGED),
            incidents.c.acknowledged_at.is_(None),
            incidents.c.updated_at >= changed_since,
        )
        .order_by(incidents.c.updated_at.desc())
        .limit(limit)
    )
    return [incident_from_row(r) for r in rows]


def latest_entries(
    conn: sa.Connection, client_id: str, incident_ids: Sequence[str], kinds: Sequence[str]
) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
    """The newest timeline entry of each kind per incident: (incident id, kind) → (entry id, detail)."""
    if not incident_ids or not kinds:
        return {}
    t = incident_timeline
    newest = (
        sa.select(sa.func.max(t.c.id).label("id"))
        .where(t.c.client_id == client_id, t.c.incident_id.in_(list(incident_ids)), t.c.kind.in_(list(kinds)))
        .group_by(t.c.incident_id, t.c.kind)
        .subquery()
    )
    rows = conn.execute(
        sa.select(t.c.id, t.c.incident_id, t.c.kind, t.c.detail).where(t.c.id.in_(sa.select(newest.c.id)))
    )
    return {(r.incident_id, r.kind): (int(r.id), dict(r.detail or {})) for r in rows}
