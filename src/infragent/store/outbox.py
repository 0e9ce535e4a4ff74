"""The notification outbox: changes written with the incident change that caused them, the
aggregation groups with their notification log, deliveries and their attempts.

``enqueue_change`` is called by ``store/incidents.py`` inside the transaction of the incident change
(opened, reopened, resolved, escalated, acknowledged) and by the responder for approval requests:
the change commits exactly with its cause, or not at all. It marks the connection
(``conn.info[CHANGED]``) so that a commit listener of the pipeline in this process wakes it at once
(``notify/pipeline.py``); other processes find the row at their next tick.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from infragent.store.notify_schema import notify_changes

#: ``conn.info`` key set when a change was written in the connection's transaction.
CHANGED = "infragent.notify_changed"


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
