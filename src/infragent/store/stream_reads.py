"""The live stream's reads (``server/stream``): tail positions, the incident timeline and command
audit entries between two positions, the hosts' last-seen times and one host's newest values.

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

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

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


def commands_between(
    conn: sa.Connection, client_id: str, after: int, upto: int, limit: int
) -> tuple[list[CommandChange], int]:
    """Command status changes among audit entries ``after < id <= upto``, oldest first.

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
            sa.or_(a.kind.like("command.%"), a.kind.like("decision.%")),
        )
        .order_by(a.id)
        .limit(limit)
    ).all()
    if not entries:
        return [], upto
    examined = int(entries[-1].id) if len(entries) == limit else upto
    by_command = [e.subject for e in entries if e.kind.startswith("command.")]
    by_decision = [e.subject for e in entries if e.kind.startswith("decision.")]
    rows = conn.execute(
        sa.select(commands, agents.c.node_id)
        .join(agents, agents.c.id == commands.c.agent_id)
        .where(
            commands.c.client_id == client_id,
            sa.or_(commands.c.id.in_(by_command), commands.c.decision_id.in_(by_decision)),
        )
    ).all()
    of_command = {r.id: r for r in rows}
    of_decision = {r.decision_id: r for r in rows}
    changes: list[CommandChange] = []
    for e in entries:
        row = (of_command if e.kind.startswith("command.") else of_decision).get(e.subject)
        if row is not None:
            changes.append(_change(e, row))
    return changes, examined


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
