"""Incidents and their timelines: functions over the caller's connection, in the caller's transaction.

The alert evaluator (``record_alert_transition``), the events path (``record_event``) and the
responder (``add_timeline``, ``set_status``) call these inside their own transactions, so an incident
change commits exactly with the alert state, event or decision that caused it. What happens to a
signal is decided by ``incidents.core``; this module finds the candidates and persists the outcome,
with a timeline row per entry, an audit entry per change (``incident.opened``, ``.reopened``,
``.joined``, ``.status``, ``.note``) and, for what people are told of, a notification change
(``store/outbox.enqueue_change``) in the same transaction.

**One writer per tenant.** Every change first takes the tenant's audit-chain lock (PostgreSQL:
``pg_advisory_xact_lock(hashtext(client_id))``, the lock ``store.audit.append`` takes anyway, held
to commit; SQLite: ``BEGIN IMMEDIATE`` already admits one writer). Three things follow:

* two transactions recording the same fingerprint (or the same group) cannot both miss the other's
  incident and open two: the second looks only after the first committed;
* no deadlock: a per-fingerprint lock taken before the audit's lock in one transaction and after it
  in another (the events path audits the event before recording it) could wait on each other; one
  lock, taken first, cannot;
* a tenant's timeline ids are allocated in commit order, so the stream's cursor
  (``changes_since(after_id)``) never skips a row committed late with a smaller id.

The serialization costs nothing the audit chain did not already impose: every change here appends
to the tenant's chain in the same transaction.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import sqlalchemy as sa

from infragent.incidents import core
from infragent.incidents.core import IncidentNotFoundError, Outcome, Signal
from infragent.incidents.model import ACTIVE_STATUSES, Incident, IncidentPolicy, IncidentStatus, TimelineEntry
from infragent.model import Event
from infragent.rules.state import AlertStatus, Transition
from infragent.store import audit, outbox
from infragent.store.incident_reads import (
    CursorError,
    IncidentChange,
    IncidentPage,
    TimelineRecord,
    active_incident_for,
    changes_since,
    decode_cursor,
    encode_cursor,
    get_incident,
    incident_from_row,
    latest_change_id,
    list_incidents,
    newest_with,
    timeline,
)
from infragent.store.schema import alert_instances, events, incident_timeline, incidents

__all__ = [
    "CursorError",
    "IncidentChange",
    "IncidentPage",
    "TimelineRecord",
    "active_incident_for",
    "add_note",
    "add_timeline",
    "changes_since",
    "decode_cursor",
    "encode_cursor",
    "get_incident",
    "incident_from_row",
    "latest_change_id",
    "list_incidents",
    "record_alert_transition",
    "record_event",
    "set_status",
    "timeline",
]

#: The actor of what the alert evaluator does (alert entries, a resolution by rules).
RULES_ACTOR = "rules"
#: Active incidents looked at, newest first, when searching for one to group with.
GROUP_SCAN_LIMIT = 200


# -- rows ------------------------------------------------------------------------------------------


def _serialize(conn: sa.Connection, client_id: str) -> None:
    """Take the tenant's lock before any lookup (the module docstring says why it is this one)."""
    audit.lock_tenant(conn, client_id)


def _mutable(incident: Incident) -> dict[str, Any]:
    return {
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status.value,
        "updated_at": incident.updated_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": incident.resolved_at,
        "resolved_by": incident.resolved_by,
        "reopen_count": incident.reopen_count,
        "flap_count": incident.flap_count,
        "flapping": incident.flapping,
        "reopened_at": list(incident.reopened_at),
    }


def _insert(conn: sa.Connection, incident: Incident) -> None:
    conn.execute(
        incidents.insert().values(
            id=incident.id,
            client_id=incident.client_id,
            fingerprint=incident.fingerprint,
            source=incident.source,
            rule_name=incident.rule_name,
            labels=incident.labels,
            opened_at=incident.opened_at,
            **_mutable(incident),
        )
    )


def _update(conn: sa.Connection, incident: Incident) -> None:
    conn.execute(
        incidents.update()
        .where(incidents.c.client_id == incident.client_id, incidents.c.id == incident.id)
        .values(**_mutable(incident))
    )


def _touch(conn: sa.Connection, client_id: str, incident_id: str, now: float) -> None:
    """Move ``updated_at`` forward (never back: entries may carry an earlier ``at``)."""
    conn.execute(
        incidents.update()
        .where(
            incidents.c.client_id == client_id, incidents.c.id == incident_id, incidents.c.updated_at < now
        )
        .values(updated_at=now)
    )


def _append(conn: sa.Connection, client_id: str, incident_id: str, entry: TimelineEntry) -> int:
    result = conn.execute(
        incident_timeline.insert()
        .values(
            incident_id=incident_id,
            client_id=client_id,
            at=entry.at,
            kind=entry.kind,
            actor=entry.actor,
            detail=entry.detail,
        )
        .returning(incident_timeline.c.id)
    )
    return int(result.scalar_one())


def _load(conn: sa.Connection, client_id: str, incident_id: str) -> Incident:
    found = get_incident(conn, client_id, incident_id)
    if found is None:
        raise IncidentNotFoundError(incident_id)
    return found


# -- placing a signal ------------------------------------------------------------------------------


def _group_candidate(
    conn: sa.Connection, client_id: str, signal: Signal, policy: IncidentPolicy, now: float
) -> Incident | None:
    """The newest active incident of the signal's ``group_by`` labels opened within the window."""
    if core.group_labels(policy, signal.labels) is None:
        return None
    rows = conn.execute(
        sa.select(incidents)
        .where(
            incidents.c.client_id == client_id,
            incidents.c.status.in_([s.value for s in ACTIVE_STATUSES]),
            incidents.c.opened_at >= now - policy.group_window_s,
        )
        .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
        .limit(GROUP_SCAN_LIMIT)
    )
    for row in rows:
        candidate = incident_from_row(row)
        if core.groups_with(policy, candidate, signal, now):
            return candidate
    return None


_AUDIT_KIND = {"open": "incident.opened", "reopen": "incident.reopened", "join": "incident.joined"}
#: Placements that are news for people (a join adds a signal to an incident already notified).
_NOTIFIED_PLACEMENTS = {"open": "opened", "reopen": "reopened"}
#: Status changes that are notified (``notify`` routes say which kinds each receiver gets).
_NOTIFIED_STATUSES = {
    IncidentStatus.RESOLVED: "resolved",
    IncidentStatus.ESCALATED: "escalated",
    IncidentStatus.ACKNOWLEDGED: "acknowledged",
}


def _place(
    conn: sa.Connection,
    client_id: str,
    signal: Signal,
    same: Incident | None,
    policy: IncidentPolicy,
    actor: str,
    now: float,
) -> Incident:
    """Decide (``core.place_signal``) and persist: the incident row, its entries and the audit entry."""
    group = None
    if same is None or same.status not in ACTIVE_STATUSES:
        group = _group_candidate(conn, client_id, signal, policy, now)
    outcome: Outcome = core.place_signal(
        signal,
        same=same,
        group=group,
        policy=policy,
        now=now,
        new_id=str(uuid.uuid4()),
        client_id=client_id,
        actor=actor,
    )
    incident = outcome.incident
    if outcome.placement == "open":
        _insert(conn, incident)
    else:
        _update(conn, incident)
    for entry in outcome.entries:
        _append(conn, client_id, incident.id, entry)
    detail: dict[str, Any] = {"fingerprint": signal.fingerprint, "source": signal.source}
    if outcome.placement == "open":
        detail |= {"title": incident.title, "severity": incident.severity}
    elif outcome.placement == "reopen":
        detail |= {"reopen_count": incident.reopen_count, "flapping": incident.flapping}
    audit.append(conn, client_id, actor, _AUDIT_KIND[outcome.placement], incident.id, detail, now)
    if outcome.placement in _NOTIFIED_PLACEMENTS:
        outbox.enqueue_change(conn, client_id, incident.id, _NOTIFIED_PLACEMENTS[outcome.placement], now)
    return incident


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def record_alert_transition(
    conn: sa.Connection,
    client_id: str,
    *,
    rule_id: str,
    rule_name: str,
    group_key: str,
    labels: dict[str, str],
    severity: str,
    annotations: dict[str, str],
    transition: Transition,
    policy: IncidentPolicy,
    now: float,
) -> str | None:
    """Record an alert instance's transition on its incident; returns the incident involved.

    Call after writing the instance row with its new status, in the same transaction, and store the
    returned id on the row. A fired transition opens, joins or reopens an incident (the incident the
    instance belonged to in its last episode, else the newest with its fingerprint); any other
    transition of an instance with an incident is a timeline entry, and a resolution resolves the
    incident (by ``rules``) once none of its alert instances is still firing.
    """
    _serialize(conn, client_id)
    previous = conn.execute(
        sa.select(alert_instances.c.incident_id).where(
            alert_instances.c.client_id == client_id,
            alert_instances.c.rule_id == rule_id,
            alert_instances.c.group_key == group_key,
        )
    ).scalar()
    entry = TimelineEntry(
        transition.at,
        "alert",
        RULES_ACTOR,
        {
            "rule_id": rule_id,
            "rule_name": rule_name,
            "group_key": group_key,
            "labels": dict(labels),
            "from": transition.from_status.value,
            "to": transition.to_status.value,
            "value": _finite(transition.value),
            "reason": transition.reason,
        },
    )
    if transition.fired:
        signal = core.alert_signal(client_id, rule_name, labels, severity, annotations)
        same = get_incident(conn, client_id, previous) if previous else None
        if same is None:
            same = newest_with(conn, client_id, signal.fingerprint)
        incident = _place(conn, client_id, signal, same, policy, RULES_ACTOR, now)
        _append(conn, client_id, incident.id, entry)
        return incident.id
    if previous is None:
        return None
    current = get_incident(conn, client_id, previous)
    if current is None:
        return None
    _append(conn, client_id, current.id, entry)
    _touch(conn, client_id, current.id, now)
    if (
        transition.resolved
        and core.can_move(current.status, IncidentStatus.RESOLVED)
        and not _still_firing(conn, client_id, current.id)
    ):
        _change_status(conn, current, IncidentStatus.RESOLVED, RULES_ACTOR, now, None)
    return current.id


def _still_firing(conn: sa.Connection, client_id: str, incident_id: str) -> bool:
    return (
        conn.execute(
            sa.select(alert_instances.c.rule_id)
            .where(
                alert_instances.c.client_id == client_id,
                alert_instances.c.incident_id == incident_id,
                alert_instances.c.status == AlertStatus.FIRING.value,
            )
            .limit(1)
        ).first()
        is not None
    )


def record_event(conn: sa.Connection, event: Event, policy: IncidentPolicy, now: float) -> str:
    """Open, join or reopen the event's incident (fingerprint: type, service, node), add an ``event``
    entry and set ``events.incident_id``; returns the incident id."""
    client_id = event.client_id
    _serialize(conn, client_id)
    signal = core.event_signal(client_id, event.type, event.service, event.node_id, event.severity.value)
    actor = f"node:{event.node_id}"
    same = newest_with(conn, client_id, signal.fingerprint)
    incident = _place(conn, client_id, signal, same, policy, actor, now)
    detail = {
        "event_id": event.id,
        "type": event.type,
        "service": event.service,
        "node_id": event.node_id,
        "severity": event.severity.value,
    }
    _append(conn, client_id, incident.id, TimelineEntry(now, "event", actor, detail))
    conn.execute(
        events.update()
        .where(events.c.client_id == client_id, events.c.id == event.id)
        .values(incident_id=incident.id)
    )
    return incident.id


# -- changes by people and the responder -----------------------------------------------------------


def add_timeline(conn: sa.Connection, client_id: str, incident_id: str, entry: TimelineEntry) -> int:
    """Append an entry (a decision, command or result); returns its id. Not audited here: the
    responder audits the decision and the command itself."""
    _serialize(conn, client_id)
    _load(conn, client_id, incident_id)
    entry_id = _append(conn, client_id, incident_id, entry)
    _touch(conn, client_id, incident_id, entry.at)
    return entry_id


def _change_status(
    conn: sa.Connection, incident: Incident, to: IncidentStatus, actor: str, now: float, note: str | None
) -> Incident:
    moved, entry = core.move(incident, to, actor, now, note)
    _update(conn, moved)
    _append(conn, incident.client_id, incident.id, entry)
    audit.append(
        conn,
        incident.client_id,
        actor,
        "incident.status",
        incident.id,
        {"from": incident.status.value, "to": to.value},
        now,
    )
    if to in _NOTIFIED_STATUSES:
        outbox.enqueue_change(
            conn, incident.client_id, incident.id, _NOTIFIED_STATUSES[to], now, {"actor": actor}
        )
    return moved


def set_status(
    conn: sa.Connection,
    client_id: str,
    incident_id: str,
    to: IncidentStatus,
    actor: str,
    now: float,
    note: str | None = None,
) -> Incident:
    """Move the incident to ``to``; ``StatusChangeError`` when the machine forbids it,
    ``IncidentNotFoundError`` for a missing one or another tenant's."""
    _serialize(conn, client_id)
    return _change_status(conn, _load(conn, client_id, incident_id), to, actor, now, note)


def add_note(
    conn: sa.Connection, client_id: str, incident_id: str, actor: str, text: str, now: float
) -> TimelineRecord:
    _serialize(conn, client_id)
    _load(conn, client_id, incident_id)
    entry = TimelineEntry(now, "note", actor, {"text": text})
    entry_id = _append(conn, client_id, incident_id, entry)
    _touch(conn, client_id, incident_id, now)
    audit.append(conn, client_id, actor, "incident.note", incident_id, {"text": text}, now)
    return TimelineRecord(entry_id, incident_id, entry)
