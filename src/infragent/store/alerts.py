"""Alert state: instances with their persisted timers, transitions, and the evaluation lease.

Functions over a ``Connection``, in the evaluator's transactions (``alerting/sql.py`` composes them
with the audit chain and the incidents in one transaction per evaluation round).

Why a lease per tenant (``rule_leases``): with several server processes on one PostgreSQL, each
tenant's rules must be evaluated by exactly one of them, or two processes would each see "pending
for 2 m" and each fire. The holder renews ``until`` on its tick; anyone may take a row whose
``until`` has passed, with a fresh token. Every write of alert state first *fences* on the token
(``fence``: an ``UPDATE`` that matches only our token, so on PostgreSQL it also locks the row until
commit and a takeover waits for us); a holder that lost its lease writes nothing.

Why ``alert_transitions`` has a unique key on (tenant, rule, group, at, to): ``at`` is the due time
the rule core computes from the persisted timers, so a second evaluator that re-derives the same
transition hits the key instead of recording it twice (an ``IntegrityError``: the caller rolls
back and gives the tenant up).

Also here, read-only, what the evaluator needs of other aggregates and nothing else: each host's
last sign of life (agents and ``metric_hosts``), events received since a time, a signature of a
tenant's rules (to notice a change), and the ``NOTIFY`` that asks the lease holder to look again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.rules.state import AlertState, AlertStatus, Transition
from infragent.store.schema import (
    agents,
    alert_instances,
    alert_rules,
    alert_transitions,
    events,
    metric_hosts,
    rule_leases,
)

#: The PostgreSQL channel a process that is not the lease holder notifies, payload JSON naming the
#: tenant (``alerting/signals.py`` listens on it).
NOTIFY_CHANNEL = "infragent_alerting"
#: PostgreSQL refuses longer ``NOTIFY`` payloads.
MAX_PAYLOAD = 7900


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One persisted alert instance: ``labels`` are the alert's labels (group + rule + alertname)."""

    rule_id: str
    group_key: str
    labels: dict[str, str]
    state: AlertState
    incident_id: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as the evaluator's event rules see it (``node_id`` from its agent)."""

    id: str
    type: str
    service: str
    severity: str
    node_id: str
    data: dict[str, Any]
    received_at: float


# -- the lease ----------------------------------------------------------------------------------------


def acquire_lease(conn: sa.Connection, client_id: str, owner: str, now: float, lease_s: float) -> str | None:
    """Take the tenant's lease when nobody holds it or its holder let it expire; the new token, or None.

    Racing takers: on PostgreSQL the second ``UPDATE`` waits for the first to commit and then finds
    ``until`` in the future; on SQLite ``BEGIN IMMEDIATE`` serializes them.
    """
    token = str(uuid.uuid4())
    values = {"owner": owner, "token": token, "until": now + lease_s}
    taken = conn.execute(
        rule_leases.update()
        .where(rule_leases.c.client_id == client_id, rule_leases.c.until < now)
        .values(**values)
    ).rowcount
    if taken == 1:
        return token
    exists = conn.execute(sa.select(rule_leases.c.client_id).where(rule_leases.c.client_id == client_id))
    if exists.first() is not None:
        return None
    stmt = _insert_ignoring(conn, rule_leases, "client_id").values(client_id=client_id, **values)
    if conn.dialect.name == "postgresql":  # psycopg does not report the rowcount of ON CONFLICT
        inserted = conn.execute(stmt.returning(rule_leases.c.token)).first() is not None
    else:
        inserted = conn.execute(stmt).rowcount == 1
    return token if inserted else None


def renew_leases(conn: sa.Connection, tokens: Sequence[str], now: float, lease_s: float) -> set[str]:
    """Push ``until`` forward for every lease still held by one of ``tokens`` (one statement for
    all of a process's tenants); the tenants renewed. A token missing from the answer was taken over.
    """
    if not tokens:
        return set()
    stmt = (
        rule_leases.update()
        .where(rule_leases.c.token.in_(list(tokens)))
        .values(until=now + lease_s)
        .returning(rule_leases.c.client_id)
    )
    return {str(c) for c in conn.execute(stmt).scalars()}


def release_lease(conn: sa.Connection, client_id: str, token: str) -> None:
    """Give the tenant up at once (a clean stop), so another process need not wait for the expiry."""
    conn.execute(
        rule_leases.delete().where(rule_leases.c.client_id == client_id, rule_leases.c.token == token)
    )


def fence(conn: sa.Connection, client_id: str, token: str) -> bool:
    """True when ``token`` still holds the tenant; on PostgreSQL the row stays locked until commit,
    so nobody can take the lease over while this transaction writes."""
    res = conn.execute(
        rule_leases.update()
        .where(rule_leases.c.client_id == client_id, rule_leases.c.token == token)
        .values(token=token)
    )
    return bool(res.rowcount == 1)


def lease_holders(conn: sa.Connection) -> dict[str, tuple[str, float]]:
    """Tenant → (owner, until): who evaluates what (operators' view, tests)."""
    rows = conn.execute(sa.select(rule_leases.c.client_id, rule_leases.c.owner, rule_leases.c.until))
    return {str(r.client_id): (str(r.owner), float(r.until)) for r in rows}


# -- instances and transitions ---------------------------------------------------------------------


def _state_from_row(r: Any) -> AlertState:
    return AlertState(
        status=AlertStatus(r.status),
        active_since=r.active_since,
        firing_since=r.firing_since,
        keep_firing_since=r.keep_firing_since,
        last_value=r.last_value,
        last_eval=r.last_eval,
        resolved_at=r.resolved_at,
        memo=tuple((str(k), float(v)) for k, v in r.memo),
    )


def _row(r: Any) -> InstanceRow:
    return InstanceRow(
        str(r.rule_id),
        str(r.group_key),
        dict(r.labels),
        _state_from_row(r),
        r.incident_id,
        float(r.updated_at),
    )


def load_instances(conn: sa.Connection, client_id: str) -> list[InstanceRow]:
    """Every persisted instance of the tenant: what a new lease holder continues from."""
    q = sa.select(alert_instances).where(alert_instances.c.client_id == client_id)
    return [_row(r) for r in conn.execute(q)]


def list_instances(
    conn: sa.Connection, client_id: str, *, statuses: Sequence[str] = (), limit: int = 500
) -> list[tuple[InstanceRow, str]]:
    """The tenant's instances with their rule's name, active ones first, then the newest change."""
    c = alert_instances.c
    order = sa.case(
        (c.status == AlertStatus.FIRING.value, 0), (c.status == AlertStatus.PENDING.value, 1), else_=2
    )
    q = (
        sa.select(alert_instances, alert_rules.c.name.label("rule_name"))
        .join(alert_rules, alert_rules.c.id == c.rule_id)
        .where(c.client_id == client_id, alert_rules.c.client_id == client_id)
        .order_by(order, c.updated_at.desc(), c.rule_id, c.group_key)
        .limit(limit)
    )
    if statuses:
        q = q.where(c.status.in_(list(statuses)))
    return [(_row(r), str(r.rule_name)) for r in conn.execute(q)]


def _state_values(state: AlertState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "active_since": state.active_since,
        "firing_since": state.firing_since,
        "keep_firing_since": state.keep_firing_since,
        "last_value": state.last_value,
        "last_eval": state.last_eval,
        "resolved_at": state.resolved_at,
        "memo": [[k, v] for k, v in state.memo],
    }


def write_instance(
    conn: sa.Connection,
    client_id: str,
    *,
    rule_id: str,
    group_key: str,
    labels: Mapping[str, str],
    state: AlertState,
    incident_id: str | None,
    now: float,
) -> None:
    """Insert or replace the instance's row (its status, timers, value, memo and incident)."""
    values = {**_state_values(state), "labels": dict(labels), "incident_id": incident_id, "updated_at": now}
    keys = {"client_id": client_id, "rule_id": rule_id, "group_key": group_key}
    stmt = _upsert(conn, alert_instances, ("client_id", "rule_id", "group_key"), {**keys, **values}, values)
    conn.execute(stmt)


def set_instance_incident(
    conn: sa.Connection, client_id: str, rule_id: str, group_key: str, incident_id: str | None, now: float
) -> None:
    c = alert_instances.c
    conn.execute(
        alert_instances.update()
        .where(c.client_id == client_id, c.rule_id == rule_id, c.group_key == group_key)
        .values(incident_id=incident_id, updated_at=now)
    )


def write_values(
    conn: sa.Connection, client_id: str, values: Iterable[tuple[str, str, float | None, float | None]]
) -> None:
    """Refresh ``last_value``/``last_eval`` of existing rows (rule id, group key, value, at): the
    evaluator's occasional flush of values that changed without a transition."""
    params = [{"r": r, "g": g, "v": v, "e": e} for r, g, v, e in values]
    if not params:
        return
    c = alert_instances.c
    stmt = (
        alert_instances.update()
        .where(c.client_id == client_id, c.rule_id == sa.bindparam("r"), c.group_key == sa.bindparam("g"))
        .values(last_value=sa.bindparam("v"), last_eval=sa.bindparam("e"))
    )
    conn.execute(stmt, params)


def insert_transition(
    conn: sa.Connection,
    client_id: str,
    *,
    rule_id: str,
    group_key: str,
    labels: Mapping[str, str],
    transition: Transition,
    incident_id: str | None = None,
) -> None:
    """Record one status change; raises ``sa.exc.IntegrityError`` when it was recorded already."""
    conn.execute(
        alert_transitions.insert().values(
            client_id=client_id,
            rule_id=rule_id,
            group_key=group_key,
            at=transition.at,
            from_status=transition.from_status.value,
            to_status=transition.to_status.value,
            value=transition.value,
            reason=transition.reason[:200],
            labels=dict(labels),
            incident_id=incident_id,
        )
    )


def set_transition_incident(
    conn: sa.Connection,
    client_id: str,
    rule_id: str,
    group_key: str,
    transition: Transition,
    incident_id: str,
) -> None:
    c = alert_transitions.c
    conn.execute(
        alert_transitions.update()
        .where(
            c.client_id == client_id,
            c.rule_id == rule_id,
            c.group_key == group_key,
            c.at == transition.at,
            c.to_status == transition.to_status.value,
        )
        .values(incident_id=incident_id)
    )


def transitions(conn: sa.Connection, client_id: str, rule_id: str | None = None) -> list[dict[str, Any]]:
    """The tenant's recorded transitions in order (tests, the history of an instance)."""
    c = alert_transitions.c
    q = sa.select(alert_transitions).where(c.client_id == client_id).order_by(c.at, c.id)
    if rule_id is not None:
        q = q.where(c.rule_id == rule_id)
    return [dict(r._mapping) for r in conn.execute(q)]


# -- what the evaluator reads of other aggregates ----------------------------------------------------


def rule_signatures(conn: sa.Connection, client_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Tenant → (rule count, newest ``updated_at``): a change of either means reload (a delete
    lowers the count, a create or update raises the time)."""
    if not client_ids:
        return {}
    c = alert_rules.c
    q = (
        sa.select(c.client_id, sa.func.count(), sa.func.max(c.updated_at))
        .where(c.client_id.in_(list(client_ids)))
        .group_by(c.client_id)
    )
    found = {str(cid): (int(n), float(t or 0.0)) for cid, n, t in conn.execute(q)}
    return {cid: found.get(cid, (0, 0.0)) for cid in client_ids}


def tenants_with_active_alerts(conn: sa.Connection) -> list[str]:
    """Tenants with a pending or firing instance (a switched-off rule's alert still to retire)."""
    c = alert_instances.c
    q = sa.select(c.client_id).where(c.status != AlertStatus.INACTIVE.value).distinct()
    return sorted(str(x) for x in conn.execute(q).scalars())


def hosts_last_seen(conn: sa.Connection, client_id: str) -> dict[str, float]:
    """Host → its last sign of life: the newer of its agent's heartbeat and its newest sample."""
    seen: dict[str, float] = {}
    a = conn.execute(sa.select(agents.c.node_id, agents.c.last_seen).where(agents.c.client_id == client_id))
    m = conn.execute(
        sa.select(metric_hosts.c.host, metric_hosts.c.last_seen).where(metric_hosts.c.client_id == client_id)
    )
    for host, at in [*a, *m]:
        if at is not None:
            seen[str(host)] = max(seen.get(str(host), float("-inf")), float(at))
    return seen


def events_since(conn: sa.Connection, client_id: str, since: float, limit: int = 1000) -> list[EventRow]:
    """The tenant's events received at or after ``since``, oldest first."""
    q = (
        sa.select(events, agents.c.node_id)
        .join(agents, agents.c.id == events.c.agent_id)
        .where(events.c.client_id == client_id, events.c.received_at >= since)
        .order_by(events.c.received_at, events.c.id)
        .limit(limit)
    )
    return [
        EventRow(str(r.id), r.type, r.service, r.severity, r.node_id, dict(r.data), float(r.received_at))
        for r in conn.execute(q)
    ]


def link_events(conn: sa.Connection, client_id: str, event_ids: Sequence[str], incident_id: str) -> None:
    """Attach events an event rule claimed to the incident of that rule's alert."""
    if event_ids:
        conn.execute(
            events.update()
            .where(events.c.client_id == client_id, events.c.id.in_(list(event_ids)))
            .values(incident_id=incident_id)
        )


def notify(conn: sa.Connection, payload: str) -> None:
    """Ask the lease holder (another process) to look at a tenant again; PostgreSQL only."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:ch, :p)"), {"ch": NOTIFY_CHANNEL, "p": payload[:MAX_PAYLOAD]})


# -- dialect helpers --------------------------------------------------------------------------------


def _insert_ignoring(conn: sa.Connection, table: sa.Table, *unique: str) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique))


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    keys: Sequence[str],
    values: Mapping[str, Any],
    update: Mapping[str, Any],
) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=dict(update))
