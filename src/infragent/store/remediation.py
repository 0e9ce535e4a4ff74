"""The responder's steps on an incident: whether its episode is decided, and what was done about it.

Why the timeline says whether an incident is decided: an incident is decided once per *episode*
(from its opening or reopening until it ends), and the timeline orders both kinds of entry by one
sequence (``incident_timeline.id``). An incident is decided when its newest ``decision`` entry is
newer than its newest ``opened`` / ``reopened`` entry (or status move to ``open``: reopened by
hand). Ids, not times: two steps in the same second (or under a test's frozen clock) are still
ordered, and a reopening that the incident row no longer lists (``reopened_at`` is pruned to the
flap window) is still on the timeline.

Why the tenant's lock before the check: two claims of events of one incident (an event rule's
incident spans agents, and claims are per agent) could both find it undecided. On PostgreSQL the
check runs under the advisory lock every audited write of the tenant takes first (``store/audit.py``
locks the tenant's hash chain with it), so the second decision waits, then sees the first and is
refused (``IncidentDecidedError``); taking that lock first keeps the lock order of every other
audited write. SQLite admits one writer (``BEGIN IMMEDIATE``).

Statuses: ``remediating`` once a command is sent or queued, ``escalated`` on an escalate decision.
A successful result does not resolve the incident (verification is a later step); alerts and people
resolve it. A move the incident's state does not allow (it was resolved meanwhile) is skipped: the
step is still on the timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import sqlalchemy as sa

from infragent.incidents.core import can_move
from infragent.incidents.model import IncidentStatus, TimelineEntry
from infragent.model import ESCALATE, ActionResult, Decision
from infragent.redact import redact
from infragent.responder.ports import IncidentDecidedError
from infragent.store import audit
from infragent.store import incidents as incident_rows
from infragent.store.schema import incident_timeline
from infragent.wire.commands import CommandStatus

#: Timeline kinds that start an episode.
_STARTS = ("opened", "reopened")


def decided_incidents(conn: sa.Connection, client_id: str, incident_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``incident_ids`` with a decision since they last (re)opened."""
    ids = list(dict.fromkeys(incident_ids))
    if not ids:
        return frozenset()
    t = incident_timeline
    scope = (t.c.client_id == client_id, t.c.incident_id.in_(ids))
    rows = conn.execute(
        sa.select(t.c.incident_id, t.c.kind, sa.func.max(t.c.id).label("last"))
        .where(*scope, t.c.kind.in_((*_STARTS, "decision")))
        .group_by(t.c.incident_id, t.c.kind)
    ).all()
    started: dict[str, int] = {}
    decided: dict[str, int] = {}
    for r in rows:
        into = decided if r.kind == "decision" else started
        into[r.incident_id] = max(into.get(r.incident_id, 0), int(r.last))
    if decided:  # a person reopening an ended incident (a status move to open) starts an episode too
        moves = conn.execute(
            sa.select(t.c.incident_id, t.c.id, t.c.detail).where(
                *scope, t.c.kind == "status", t.c.incident_id.in_(list(decided))
            )
        )
        for m in moves:
            if m.detail.get("to") == IncidentStatus.OPEN.value:
                started[m.incident_id] = max(started.get(m.incident_id, 0), int(m.id))
    return frozenset(i for i, last in decided.items() if last > started.get(i, 0))


def lock_and_check(conn: sa.Connection, client_id: str, incident_id: str) -> None:
    """Raise ``IncidentDecidedError`` when the incident's episode is decided, under the tenant's lock."""
    audit.lock_tenant(conn, client_id)
    if incident_id in decided_incidents(conn, client_id, [incident_id]):
        raise IncidentDecidedError(incident_id)


def on_decision(
    conn: sa.Connection,
    client_id: str,
    incident_id: str,
    decision_id: str,
    decision: Decision,
    command_id: str | None,
    events: int,
    now: float,
    actor: str,
) -> None:
    """The decision on the timeline (its rationale quotes host data: redacted, like the log line)."""
    detail: dict[str, Any] = {
        "decision_id": decision_id,
        "source": decision.source,
        "action": decision.action,
        "target": decision.target,
        "rationale": redact(decision.rationale),
        "command_id": command_id,
        "events": events,
    }
    incident_rows.add_timeline(conn, client_id, incident_id, TimelineEntry(now, "decision", actor, detail))
    if decision.action == ESCALATE:
        _move(conn, client_id, incident_id, IncidentStatus.ESCALATED, actor, now)


def on_command(
    conn: sa.Connection,
    client_id: str,
    row: sa.Row[Any],
    status: Literal["sent", "queued"],
    now: float,
    actor: str,
) -> None:
    """A command on its way (``row``: a command row with its decision's ``incident_id``)."""
    if row.incident_id is None:
        return
    detail = {"command_id": row.id, "action": row.action, "target": row.target, "status": status}
    incident_rows.add_timeline(conn, client_id, row.incident_id, TimelineEntry(now, "command", actor, detail))
    _move(conn, client_id, row.incident_id, IncidentStatus.REMEDIATING, actor, now)


def on_result(
    conn: sa.Connection,
    client_id: str,
    incident_id: str | None,
    command_id: str,
    status: CommandStatus,
    result: ActionResult | None,
    now: float,
    actor: str,
) -> None:
    """What became of a command (``result`` None: it expired before the agent fetched it)."""
    if incident_id is None:
        return
    detail: dict[str, Any] = {"command_id": command_id, "status": status.value}
    if result is not None:
        detail |= {"result": result.status, "code": result.code, "http_status": result.http_status}
    incident_rows.add_timeline(conn, client_id, incident_id, TimelineEntry(now, "result", actor, detail))


def _move(
    conn: sa.Connection, client_id: str, incident_id: str, to: IncidentStatus, actor: str, now: float
) -> None:
    current = incident_rows.get_incident(conn, client_id, incident_id)
    if current is not None and can_move(current.status, to):  # else it stays (an ack keeps its owner)
        incident_rows.set_status(conn, client_id, incident_id, to, actor, now)
