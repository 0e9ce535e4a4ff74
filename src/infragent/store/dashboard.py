"""The dashboard's reads: overview counts, the host list (search, filter, paging), one host's agents,
checks and incidents, and the incident list with a text filter. Every query is scoped by tenant.

Why a module of its own: the pages must not hold SQL (import-linter forbids it in ``server/web``),
and these reads cross aggregates (metric hosts and agents, events and agents, commands) in ways no
single aggregate module owns.

**A host** is a name that sent metrics (a ``metric_hosts`` row, kept at ingest) or a registered host
agent (``agents.kind = 'host'``); its ``last_seen`` is the newer of the two. **Online** means seen
within ``ONLINE_WINDOW_S`` (90 s: three intervals of an agent sending every 30 s, nine at the
default 10 s), so one late or lost batch never flips a host offline. The rule is evaluated in SQL,
so the status filter and the counts page and count correctly at any fleet size.

Why offset paging for hosts (not keyset): the list is sorted by name and grouped over two small
indexed tables (one row per host), so a page of 50 out of 1,000 reads 1,000 short index rows either
way (a few ms, measured in ``bench/web.py``), and page numbers are what an operator clicks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from infragent.incidents.model import ACTIVE_STATUSES, Incident, IncidentStatus
from infragent.store.command_reads import host_agent_filter
from infragent.store.incident_reads import (
    IncidentPage,
    decode_cursor,
    encode_cursor,
    incident_from_row,
)
from infragent.store.schema import agents, commands, events, incidents, metric_hosts

ONLINE_WINDOW_S: Final = 90.0
HOSTS_PER_PAGE: Final = 50
#: Event types the agent's health checks send (``agent/runtime.py``: ``CheckTransition.kind``).
CHECK_EVENTS: Final = ("app_down", "app_recovered")
#: Command statuses that ended: the success rate is ``done`` over these.
FINISHED: Final = ("done", "failed", "rejected", "expired")


@dataclass(frozen=True, slots=True)
class HostSummary:
    """One host's row of the list: fleet values are fractions (0..1) or None when not reported."""

    host: str
    last_seen: float
    online: bool
    cpu: float | None
    memory: float | None
    filesystem: float | None


@dataclass(frozen=True, slots=True)
class HostPage:
    hosts: list[HostSummary]
    total: int
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """A health check of the host's agents, as its newest transition event says."""

    name: str
    up: bool
    at: float
    error: str | None


@dataclass(frozen=True, slots=True)
class Overview:
    hosts_online: int
    hosts_offline: int
    open_by_severity: dict[str, int]
    actions_24h: int
    actions_finished: int
    actions_done: int

    @property
    def incidents_open(self) -> int:
        return sum(self.open_by_severity.values())

    @property
    def success_rate(self) -> float | None:
        """``done`` over finished commands of the last 24 h; None when none finished."""
        return self.actions_done / self.actions_finished if self.actions_finished else None


@dataclass(frozen=True, slots=True)
class CommandView:
    id: str
    action: str
    status: str
    output: str | None
    requested_by: str | None


def _seen(client_id: str) -> sa.Subquery:
    """(host, last_seen) per host of the tenant: metric hosts and host agents, merged by name."""
    both = sa.union_all(
        sa.select(metric_hosts.c.host.label("host"), metric_hosts.c.last_seen.label("seen")).where(
            metric_hosts.c.client_id == client_id
        ),
        sa.select(agents.c.node_id.label("host"), agents.c.last_seen.label("seen")).where(
            agents.c.client_id == client_id, agents.c.kind == "host"
        ),
    ).subquery("both_hosts")
    return (
        sa.select(both.c.host, sa.func.max(both.c.seen).label("last_seen"))
        .group_by(both.c.host)
        .subquery("seen")
    )


def _filtered(client_id: str, now: float, q: str, status: str | None) -> sa.Select[Any]:
    seen = _seen(client_id)
    query = sa.select(seen.c.host, seen.c.last_seen)
    if q:
        query = query.where(sa.func.lower(seen.c.host).contains(q.lower(), autoescape=True))
    if status == "online":
        query = query.where(seen.c.last_seen >= now - ONLINE_WINDOW_S)
    elif status == "offline":
        query = query.where(seen.c.last_seen < now - ONLINE_WINDOW_S)
    return query


def _summaries(conn: sa.Connection, client_id: str, rows: Sequence[Any], now: float) -> list[HostSummary]:
    names = [str(r.host) for r in rows]
    m = metric_hosts.c
    values = {
        str(r.host): r
        for r in conn.execute(
            sa.select(m.host, m.cpu, m.memory, m.filesystem).where(
                m.client_id == client_id, m.host.in_(names)
            )
        )
    }
    out = []
    for r in rows:
        v = values.get(str(r.host))
        out.append(
            HostSummary(
                str(r.host),
                float(r.last_seen),
                float(r.last_seen) >= now - ONLINE_WINDOW_S,
                None if v is None or v.cpu is None else 1.0 - float(v.cpu),  # stored: the idle share
                None if v is None or v.memory is None else float(v.memory),
                None if v is None or v.filesystem is None else float(v.filesystem),
            )
        )
    return out


def host_page(
    conn: sa.Connection,
    client_id: str,
    now: float,
    *,
    q: str = "",
    status: str | None = None,
    page: int = 1,
    per_page: int = HOSTS_PER_PAGE,
) -> HostPage:
    """Hosts whose name contains ``q`` (case-insensitive), ``status`` online/offline or all, by
    name; page ``page`` (1-based, clamped to the last page)."""
    query = _filtered(client_id, now, q, status)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    sub = query.subquery()
    rows = conn.execute(
        sa.select(sub.c.host, sub.c.last_seen)
        .order_by(sub.c.host)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return HostPage(_summaries(conn, client_id, rows, now), total, page, pages)


def get_host(conn: sa.Connection, client_id: str, host: str, now: float) -> HostSummary | None:
    """The tenant's host ``host``; None when it has no such host (another tenant's is the same)."""
    seen = _seen(client_id)
    rows = conn.execute(sa.select(seen.c.host, seen.c.last_seen).where(seen.c.host == host)).all()
    found = _summaries(conn, client_id, rows, now)
    return found[0] if found else None


def host_counts(conn: sa.Connection, client_id: str, now: float) -> tuple[int, int]:
    """(online, offline) hosts of the tenant."""
    seen = _seen(client_id)
    online = sa.func.coalesce(
        sa.func.sum(sa.case((seen.c.last_seen >= now - ONLINE_WINDOW_S, 1), else_=0)), 0
    )
    total, up = conn.execute(sa.select(sa.func.count(), online).select_from(seen)).one()
    return int(up), int(total) - int(up)


def overview(conn: sa.Connection, client_id: str, now: float) -> Overview:
    """The overview's figures: hosts, open incidents by severity, the last 24 h of commands."""
    online, offline = host_counts(conn, client_id, now)
    active = [s.value for s in ACTIVE_STATUSES]
    by_severity = {
        str(sev): int(n)
        for sev, n in conn.execute(
            sa.select(incidents.c.severity, sa.func.count())
            .where(incidents.c.client_id == client_id, incidents.c.status.in_(active))
            .group_by(incidents.c.severity)
        )
    }
    c = commands.c
    rows = conn.execute(
        sa.select(c.status, sa.func.count())
        .where(c.client_id == client_id, c.created_at >= now - 86_400.0)
        .group_by(c.status)
    ).all()
    counts = {str(s): int(n) for s, n in rows}
    return Overview(
        online,
        offline,
        by_severity,
        sum(counts.values()),
        sum(counts.get(s, 0) for s in FINISHED),
        counts.get("done", 0),
    )


def host_checks(conn: sa.Connection, client_id: str, host: str) -> list[CheckStatus]:
    """Each health check of the host's agents with its newest transition (``app_down`` or
    ``app_recovered``), by name. A check that never failed sent no event and is not listed."""
    e = events.c
    newest = (
        sa.select(e.service, sa.func.max(e.received_at).label("at"))
        .select_from(events.join(agents, agents.c.id == e.agent_id))
        .where(e.client_id == client_id, e.type.in_(CHECK_EVENTS), host_agent_filter(host))
        .group_by(e.service)
        .subquery()
    )
    rows = conn.execute(
        sa.select(e.service, e.type, e.received_at, e.data)
        .select_from(events.join(agents, agents.c.id == e.agent_id))
        .join(newest, sa.and_(newest.c.service == e.service, newest.c.at == e.received_at))
        .where(e.client_id == client_id, e.type.in_(CHECK_EVENTS), host_agent_filter(host))
        .order_by(e.service)
    ).all()
    out: dict[str, CheckStatus] = {}
    for service, kind, at, data in rows:
        error = data.get("error") if isinstance(data, dict) else None
        out[str(service)] = CheckStatus(str(service), kind == "app_recovered", float(at), error)
    return list(out.values())


def host_incidents(conn: sa.Connection, client_id: str, host: str, limit: int = 20) -> list[Incident]:
    """The host's incidents, most recently changed first: alerts labelled ``host``, events of its
    agents (labelled ``node_id``)."""
    labels = incidents.c.labels
    node = labels["node_id"].as_string()
    mine = sa.or_(
        labels["host"].as_string() == host, node == host, node.startswith(f"{host}/", autoescape=True)
    )
    rows = conn.execute(
        sa.select(incidents)
        .where(incidents.c.client_id == client_id, mine)
        .order_by(incidents.c.updated_at.desc(), incidents.c.id.desc())
        .limit(limit)
    )
    return [incident_from_row(r) for r in rows]


def find_incidents(
    conn: sa.Connection,
    client_id: str,
    *,
    status: Sequence[IncidentStatus] = (),
    severity: str | None = None,
    text: str = "",
    limit: int = 50,
    cursor: str | None = None,
) -> IncidentPage:
    """``incident_reads.list_incidents`` plus a case-insensitive substring of the title, keyset-paged
    the same way (the same cursors); ``CursorError`` for a cursor it did not give out."""
    i = incidents.c
    q = sa.select(incidents).where(i.client_id == client_id)
    if status:
        q = q.where(i.status.in_([s.value for s in status]))
    if severity:
        q = q.where(i.severity == severity)
    if text:
        q = q.where(sa.func.lower(i.title).contains(text.lower(), autoescape=True))
    if cursor:
        updated_at, last_id = decode_cursor(cursor)
        q = q.where(sa.or_(i.updated_at < updated_at, sa.and_(i.updated_at == updated_at, i.id < last_id)))
    rows = conn.execute(q.order_by(i.updated_at.desc(), i.id.desc()).limit(limit + 1))
    found = [incident_from_row(r) for r in rows]
    page = found[:limit]
    return IncidentPage(page, encode_cursor(page[-1]) if len(found) > limit and page else None)


def commands_by_id(conn: sa.Connection, client_id: str, ids: Sequence[str]) -> dict[str, CommandView]:
    """The tenant's commands among ``ids`` (an incident timeline's), with their output."""
    if not ids:
        return {}
    c = commands.c
    rows = conn.execute(
        sa.select(c.id, c.action, c.status, c.output, c.requested_by).where(
            c.client_id == client_id, c.id.in_(list(ids))
        )
    )
    return {str(r.id): CommandView(str(r.id), r.action, r.status, r.output, r.requested_by) for r in rows}
