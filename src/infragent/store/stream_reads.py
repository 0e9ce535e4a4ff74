"""The live stream's reads (``server/stream``): tail positions, the incident timeline and the audit
entries the stream tells of (command status changes, in-app notifications) between two positions,
the hosts' last-seen times and one host's newest values.

Why positions are ids of ``incident_timeline`` and ``audit_log``: both are written under the tenant's
lock (``audit.lock_tenant``), so within a tenant their ids grow in commit order. A reader that takes
the newest ids first and then reads the rows up to them never skips a row committed later with a
smaller id, and a client that hands back the last ids it saw misses nothing and sees nothing twice.

Why every read has an upper bound (``upto``) as well as a lower one: the stream's feed reads the
tail up to the positions it took at the start of its poll, and a reconnecting client's catch-up
reads up to where the feed was when it joined, so catch-up and live events meet without overlap.
Every read is scoped by ``client_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from infragent.store.notify_schema import inbox
from infragent.store.schema import agents, audit_log, commands, incident_timeline, incidents, metric_hosts

#: The audit kinds that change a command's status, with the status they mean. A ``decision.*``
#: entry names a decision; its command (if it acts) is queued by it. Any other ``command.*`` kind
#: (``command.result`` and kinds added later) reports the command's stored status.
COMMAND_STATUS_OF_KIND = {
    "decision.made": "queued",
    "command.queued": "queued",
    "command.sent": "sent",
    "command.expired": "expired",
}

#: The audit kind the delivery worker writes with the inbox rows of an in-app notification.
INAPP_KIND = "notify.inapp"


@dataclass(frozen=True, slots=True)
class Positions:
    """The newest timeline id and audit id of a tenant (0 when none)."""

    timeline: int
    audit: int


@dataclass(frozen=True, slots=True)
class TimelineChange:
    """One timeline row with its incident's title, severity and status as they are now."""

    id: int
    incident_id: str
    kind: str
    at: float
    title: str
    severity: str
    status: str


@dataclass(frozen=True, slots=True)
class CommandChange:
    """One audit entry about a command: what its status became, on which host."""

    audit_id: int
    command_id: str
    host: str
    action: str
    status: str
    output: str | None
    requested_by: str | None
    at: float


@dataclass(frozen=True, slots=True)
class NotificationChange:
    """One in-app notification (an audit entry ``notify.inapp``) and the users it was written for.

    ``users`` are the ids of the inbox rows of its delivery, read in the same snapshot: the stream
    tells only them (each then fetches their own unread count), so a notification's title never
    reaches a member it was not for.
    """

    audit_id: int
    delivery_id: str
    incident_ids: tuple[str, ...]
    title: str
    users: frozenset[str]
    at: float


@dataclass(frozen=True, slots=True)
class RunChange:
    """One audit entry about a runbook run or an approval (kinds ``run.*``, ``approval.*``): which
    run, what happened. The page re-reads the run (``GET /api/v1/runs/{id}``) for the rest."""

    audit_id: int
    kind: str
    run_id: str
    approval_id: str | None
    status: str | None
    outcome: str | None
    seq: int | None
    step: str | None
    at: float


AuditChange = CommandChange | NotificationChange | RunChange
#: The audit kinds told as ``run`` events (``RUN_KIND_PREFIXES``: every kind starting so).
RUN_KIND_PREFIXES = ("run.", "approval.")


@dataclass(frozen=True, slots=True)
class HostValues:
    """A host's newest fleet values as the write path keeps them (``store/metrics/hosts.py``):
    (sample time, value) or None; ``cpu`` is the CPU's *idle* share, as stored."""

    host: str
    last_seen: float
    cpu: tuple[float, float] | None
    memory: tuple[float, float] | None
    filesystem: tuple[float, float] | None


def positions(conn: sa.Connection, client_id: str) -> Positions:
    """Both tails' newest ids in one round trip (two index-only max lookups)."""
    tl = sa.select(sa.func.max(incident_timeline.c.id)).where(incident_timeline.c.client_id == client_id)
    au = sa.select(sa.func.max(audit_log.c.id)).where(audit_log.c.client_id == client_id)
    row = conn.execute(sa.select(tl.scalar_subquery(), au.scalar_subquery())).one()
    return Positions(int(row[0] or 0), int(row[1] or 0))


def timeline_between(
    conn: sa.Connection, client_id: str, after: int, upto: int, limit: int
) -> list[TimelineChange]:
    """Timeline rows with ``after < id <= upto``, oldest first, at most ``limit``."""
    if upto <= after:
        return []
    tl = incident_timeline.c
    rows = conn.execute(
        sa.select(
            tl.id, tl.incident_id, tl.kind, tl.at, incidents.c.title, incidents.c.severity, incidents.c.status
        )
        .join(incidents, incidents.c.id == tl.incident_id)
        .where(tl.client_id == client_id, tl.id > after, tl.id <= upto)
        .order_by(tl.id)
        .limit(limit)
    )
    return [
        TimelineChange(int(r.id), r.incident_id, r.kind, float(r.at), r.title, r.severity, r.status)
        for r in rows
    ]


def audit_between(
    conn: sa.Connection, client_id: str, after: int, upto: int, limit: int
) -> tuple[list[AuditChange], int]:
    """Command status changes, in-app notifications and run changes among audit entries
    ``after < id <= upto``, in audit order.

    Returns (changes, the last audit id examined): at most ``limit`` entries are examined, so a
    caller that got back less than ``upto`` reads again from there. A decision that does not act
    (no command) is examined but yields no change.
    """
    if upto <= after:
        return [], after
    a = audit_log.c
    entries = conn.execute(
        sa.select(a.id, a.kind, a.subject, a.at, a.detail)
        .where(
            a.client_id == client_id,
            a.id > after,
            a.id <= upto,
            sa.or_(
                a.kind.like("command.%"),
                a.kind.like("decision.%"),
                a.kind == INAPP_KIND,
                *(a.kind.like(f"{prefix}%") for prefix in RUN_KIND_PREFIXES),
            ),
        )
        .order_by(a.id)
        .limit(limit)
    ).all()
    if not entries:
        return [], upto
    examined = int(entries[-1].id) if len(entries) == limit else upto
    of_command, of_decision = _commands_of(conn, client_id, entries)
    recipients = _recipients(conn, client_id, [_delivery_id(e) for e in entries if e.kind == INAPP_KIND])
    changes: list[AuditChange] = []
    for e in entries:
        if e.kind == INAPP_KIND:
            changes.append(_notification(e, recipients.get(_delivery_id(e), frozenset())))
            continue
        if e.kind.startswith(RUN_KIND_PREFIXES):
            changes.append(_run_change(e))
            continue
        row = (of_command if e.kind.startswith("command.") else of_decision).get(e.subject)
        if row is not None:
            changes.append(_change(e, row))
    return changes, examined


def _commands_of(
    conn: sa.Connection, client_id: str, entries: Sequence[Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The commands the entries name, by command id and by decision id (one query)."""
    by_command = [e.subject for e in entries if e.kind.startswith("command.")]
    by_decision = [e.subject for e in entries if e.kind.startswith("decision.")]
    if not by_command and not by_decision:
        return {}, {}
    rows = conn.execute(
        sa.select(commands, agents.c.node_id)
        .join(agents, agents.c.id == commands.c.agent_id)
        .where(
            commands.c.client_id == client_id,
            sa.or_(commands.c.id.in_(by_command), commands.c.decision_id.in_(by_decision)),
        )
    ).all()
    return {r.id: r for r in rows}, {r.decision_id: r for r in rows}


def _delivery_id(entry: Any) -> str:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    return str(detail.get("delivery_id") or entry.subject)


def _recipients(conn: sa.Connection, client_id: str, delivery_ids: list[str]) -> dict[str, frozenset[str]]:
    """The users each delivery's inbox rows were written for (one query)."""
    if not delivery_ids:
        return {}
    rows = conn.execute(
        sa.select(inbox.c.delivery_id, inbox.c.user_id).where(
            inbox.c.client_id == client_id, inbox.c.delivery_id.in_(delivery_ids)
        )
    )
    found: dict[str, set[str]] = {}
    for delivery_id, user_id in rows:
        found.setdefault(str(delivery_id), set()).add(str(user_id))
    return {k: frozenset(v) for k, v in found.items()}


def _notification(entry: Any, users: frozenset[str]) -> NotificationChange:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    ids = detail.get("incident_ids") or []
    return NotificationChange(
        audit_id=int(entry.id),
        delivery_id=_delivery_id(entry),
        incident_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        title=str(detail.get("title") or ""),
        users=users,
        at=float(entry.at),
    )


def _run_change(entry: Any) -> RunChange:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    is_run = entry.kind.startswith("run.")
    seq = detail.get("seq")

    def text(key: str) -> str | None:
        value = detail.get(key)
        return str(value) if value is not None else None

    return RunChange(
        audit_id=int(entry.id),
        kind=str(entry.kind),
        run_id=str(entry.subject) if is_run else str(detail.get("run_id") or ""),
        approval_id=None if is_run else str(entry.subject),
        status=text("status"),
        outcome=text("outcome"),
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        step=text("step"),
        at=float(entry.at),
    )


def _change(entry: Any, row: Any) -> CommandChange:
    status = COMMAND_STATUS_OF_KIND.get(entry.kind)
    return CommandChange(
        audit_id=int(entry.id),
        command_id=row.id,
        host=row.node_id,
        action=row.action,
        status=status or row.status,
        output=None if status else row.output,
        requested_by=row.requested_by,
        at=float(entry.at),
    )


def host_last_seen(
    conn: sa.Connection, client_id: str, since: float | None = None
) -> list[tuple[str, float]]:
    """(host, newest sample time) of the tenant's hosts, optionally only those seen after ``since``."""
    q = sa.select(metric_hosts.c.host, metric_hosts.c.last_seen).where(metric_hosts.c.client_id == client_id)
    if since is not None:
        q = q.where(metric_hosts.c.last_seen > since)
    return [(str(h), float(ts)) for h, ts in conn.execute(q)]


def host_exists(conn: sa.Connection, client_id: str, host: str) -> bool:
    """Whether ``host`` is one of the tenant's: it sent metrics, or an agent runs there."""
    with_metrics = sa.select(metric_hosts.c.host).where(
        metric_hosts.c.client_id == client_id, metric_hosts.c.host == host
    )
    with_agent = sa.select(agents.c.node_id).where(agents.c.client_id == client_id, agents.c.node_id == host)
    return conn.execute(with_metrics.union_all(with_agent).limit(1)).first() is not None


def host_values(conn: sa.Connection, client_id: str, host: str) -> HostValues | None:
    """The host's ``metric_hosts`` row (one primary-key lookup), or None."""
    h = metric_hosts.c
    r = conn.execute(sa.select(metric_hosts).where(h.client_id == client_id, h.host == host)).first()
    if r is None:
        return None
    return HostValues(
        str(r.host),
        float(r.last_seen),
        _pair(r.cpu_ts, r.cpu),
        _pair(r.memory_ts, r.memory),
        _pair(r.filesystem_ts, r.filesystem),
    )


def _pair(ts: float | None, value: float | None) -> tuple[float, float] | None:
    return None if ts is None or value is None else (float(ts), float(value))
