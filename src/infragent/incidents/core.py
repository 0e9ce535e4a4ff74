"""Where a signal goes (open, join or reopen an incident) and how an incident's status may move.

Pure: the store finds the candidates and passes ``now``; this module decides. Why the decision is
here and not in SQL: the rules for reopening, flapping and grouping are the part users argue about
(Alertmanager's re-notify storms, Beszel's 402 e-mails from one flapping app), so they are one
function that tests walk as a table, and the store only persists what it returns.

The decision for a signal, given ``same`` (the incident this fingerprint belongs to: the newest
with it) and ``group`` (the newest active incident of the same ``group_by`` labels, opened within
``group_window_s``):

1. ``same`` is active → **join** it;
2. ``same`` ended (resolved or escalated) within ``reopen_window_s`` → **reopen** it, and a
   flapping ``same`` is reopened as long as it ended within ``flap_window_s`` (a flapping incident
   is reopened, never replaced by a new one);
3. ``group`` qualifies → **join** it (another fingerprint joined: a ``joined`` entry);
4. otherwise → **open** a new incident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import orjson

from infragent.errors import InfrAgentError
from infragent.incidents.model import (
    ACTIVE_STATUSES,
    Incident,
    IncidentPolicy,
    IncidentSource,
    IncidentStatus,
    TimelineEntry,
)

if TYPE_CHECKING:
    from infragent.config import Settings

#: The ``title`` column's width: a longer summary is cut, never refused.
TITLE_MAX = 500
SEVERITY_RANK: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}

S = IncidentStatus
#: status → where it may go. ``open`` out of an ended status is a reopening. An escalated incident
#: is handed to people, so a person may acknowledge it (someone took it) or resolve it, and the
#: evaluator resolves it once its alerts have cleared.
MOVES: Mapping[IncidentStatus, frozenset[IncidentStatus]] = {
    S.OPEN: frozenset({S.ACKNOWLEDGED, S.REMEDIATING, S.RESOLVED, S.ESCALATED}),
    S.ACKNOWLEDGED: frozenset({S.REMEDIATING, S.RESOLVED}),
    S.REMEDIATING: frozenset({S.RESOLVED, S.ESCALATED}),
    S.RESOLVED: frozenset({S.OPEN}),
    S.ESCALATED: frozenset({S.OPEN, S.ACKNOWLEDGED, S.RESOLVED}),
}
ENDED_STATUSES = frozenset({S.RESOLVED, S.ESCALATED})

Placement = Literal["open", "join", "reopen"]


class IncidentError(InfrAgentError):
    """An incident cannot be changed as asked; the subclass says why."""


class StatusChangeError(IncidentError):
    """A move the status machine does not allow (acknowledging a resolved incident): answered 409.

    Why its own type: the HTTP edge answers it 409 (a conflict with the incident's current state,
    not bad input), and the responder treats it as "someone else moved it first".
    """

    def __init__(self, incident_id: str, from_status: IncidentStatus, to_status: IncidentStatus) -> None:
        allowed = ", ".join(sorted(MOVES[from_status])) or "nothing"
        super().__init__(
            f"incident {incident_id} is {from_status.value}: it cannot become {to_status.value} "
            f"(from {from_status.value} it may become {allowed})"
        )
        self.incident_id = incident_id
        self.from_status = from_status
        self.to_status = to_status


class IncidentNotFoundError(IncidentError):
    """No such incident for this tenant (another tenant's is the same): answered 404."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"incident {incident_id!r} not found")
        self.incident_id = incident_id


@dataclass(frozen=True, slots=True)
class Signal:
    """What opens or joins an incident: one fired alert or one reported event."""

    source: IncidentSource
    fingerprint: str
    title: str
    severity: str
    labels: dict[str, str]
    rule_name: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a signal went: the incident as it is now, and the timeline entries that say so."""

    placement: Placement
    incident: Incident
    entries: tuple[TimelineEntry, ...]


def policy_from_settings(settings: Settings) -> IncidentPolicy:
    """The server-wide policy from ``incident_*`` settings (``group_by`` keeps its default)."""
    return IncidentPolicy(
        reopen_window_s=settings.incident_reopen_window_s,
        flap_threshold=settings.incident_flap_threshold,
        flap_window_s=settings.incident_flap_window_s,
        group_window_s=settings.incident_group_window_s,
        auto_pause_s=settings.incident_auto_pause_s,
    )


def _digest(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def alert_fingerprint(client_id: str, rule_name: str, group_labels: Mapping[str, str]) -> str:
    """One alert instance's identity across episodes: tenant, rule and group labels (order-free)."""
    return _digest("alert", client_id, rule_name, sorted(group_labels.items()))


def event_fingerprint(client_id: str, type: str, service: str, node_id: str) -> str:
    """One kind of trouble of one service on one node: 1,000 ``app_down`` of it are one incident."""
    return _digest("event", client_id, type, service, node_id)


def _cut(title: str) -> str:
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def alert_title(rule_name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str:
    """The rule's ``summary`` annotation when it has one, else ``<alertname> on <host>``."""
    summary = annotations.get("summary", "").strip()
    if summary:
        return _cut(summary)
    host = labels.get("host")
    return _cut(f"{rule_name} on {host}" if host else rule_name)


def event_title(type: str, service: str, node_id: str) -> str:
    return _cut(f"{type} on {service} ({node_id})")


def alert_signal(
    client_id: str,
    rule_name: str,
    labels: Mapping[str, str],
    severity: str,
    annotations: Mapping[str, str],
) -> Signal:
    return Signal(
        "alert",
        alert_fingerprint(client_id, rule_name, labels),
        alert_title(rule_name, labels, annotations),
        severity,
        dict(labels),
        rule_name,
    )


def event_signal(client_id: str, type: str, service: str, node_id: str, severity: str) -> Signal:
    return Signal(
        "event",
        event_fingerprint(client_id, type, service, node_id),
        event_title(type, service, node_id),
        severity,
        {"type": type, "service": service, "node_id": node_id},
    )


def group_labels(policy: IncidentPolicy, labels: Mapping[str, str]) -> dict[str, str] | None:
    """The labels a signal groups by, or None when grouping is off or it lacks one of them."""
    if policy.group_window_s <= 0 or not policy.group_by:
        return None
    if any(name not in labels for name in policy.group_by):
        return None
    return {name: labels[name] for name in policy.group_by}


def groups_with(policy: IncidentPolicy, incident: Incident, signal: Signal, now: float) -> bool:
    """Whether ``signal`` may join ``incident`` by the grouping window."""
    wanted = group_labels(policy, signal.labels)
    return (
        wanted is not None
        and incident.status in ACTIVE_STATUSES
        and incident.opened_at >= now - policy.group_window_s
        and all(incident.labels.get(k) == v for k, v in wanted.items())
    )


def _severer(a: str, b: str) -> str:
    return a if SEVERITY_RANK.get(a, -1) >= SEVERITY_RANK.get(b, -1) else b


def _may_reopen(policy: IncidentPolicy, incident: Incident, now: float) -> bool:
    if incident.status not in ENDED_STATUSES:
        return False
    ended = incident.resolved_at if incident.resolved_at is not None else incident.updated_at
    window = (
        max(policy.reopen_window_s, policy.flap_window_s) if incident.flapping else policy.reopen_window_s
    )
    return now - ended <= window


def place_signal(
    signal: Signal,
    *,
    same: Incident | None,
    group: Incident | None,
    policy: IncidentPolicy,
    now: float,
    new_id: str,
    client_id: str,
    actor: str,
) -> Outcome:
    """Open, join or reopen (the module docstring has the order); ``new_id`` names a new incident."""
    if same is not None and same.status in ACTIVE_STATUSES:
        return _join(same, signal, now, actor)
    if same is not None and _may_reopen(policy, same, now):
        return _reopen(same, signal, policy, now, actor)
    if group is not None and groups_with(policy, group, signal, now):
        return _join(group, signal, now, actor)
    incident = Incident(
        id=new_id,
        client_id=client_id,
        fingerprint=signal.fingerprint,
        title=signal.title,
        severity=signal.severity,
        status=S.OPEN,
        source=signal.source,
        labels=dict(signal.labels),
        opened_at=now,
        updated_at=now,
        rule_name=signal.rule_name,
    )
    detail = {"fingerprint": signal.fingerprint, "source": signal.source, "title": signal.title}
    return Outcome("open", incident, (TimelineEntry(now, "opened", actor, detail),))


def _join(incident: Incident, signal: Signal, now: float, actor: str) -> Outcome:
    joined = replace(incident, severity=_severer(incident.severity, signal.severity), updated_at=now)
    if signal.fingerprint == incident.fingerprint:
        return Outcome("join", joined, ())  # a repeat: the signal's own entry says it
    detail = {"fingerprint": signal.fingerprint, "title": signal.title, "labels": dict(signal.labels)}
    return Outcome("join", joined, (TimelineEntry(now, "joined", actor, detail),))


def _reopen(incident: Incident, signal: Signal, policy: IncidentPolicy, now: float, actor: str) -> Outcome:
    recent = (*(t for t in incident.reopened_at if t > now - policy.flap_window_s), now)
    flapping = len(recent) >= policy.flap_threshold
    reopened = replace(
        incident,
        status=S.OPEN,
        severity=signal.severity,
        updated_at=now,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        reopen_count=incident.reopen_count + 1,
        flap_count=len(recent),
        flapping=flapping,
        reopened_at=recent,
    )
    detail = {
        "from": incident.status.value,
        "reopen_count": reopened.reopen_count,
        "flap_count": reopened.flap_count,
    }
    entries = [TimelineEntry(now, "reopened", actor, detail)]
    if flapping and not incident.flapping:
        flap = {"flap_count": len(recent), "flap_window_s": policy.flap_window_s}
        entries.append(TimelineEntry(now, "flapping", actor, flap))
    return Outcome("reopen", reopened, tuple(entries))


def can_move(from_status: IncidentStatus, to_status: IncidentStatus) -> bool:
    return to_status in MOVES[from_status]


def move(
    incident: Incident, to: IncidentStatus, actor: str, now: float, note: str | None = None
) -> tuple[Incident, TimelineEntry]:
    """The incident after ``to`` and its ``status`` entry; ``StatusChangeError`` if not allowed.

    ``resolved_at``/``resolved_by`` record when and by whom an episode ended, for ``escalated`` too:
    the reopen window counts from there.
    """
    if not can_move(incident.status, to):
        raise StatusChangeError(incident.id, incident.status, to)
    moved = replace(incident, status=to, updated_at=now)
    if incident.status in ENDED_STATUSES and to in ACTIVE_STATUSES:  # the episode goes on
        moved = replace(moved, resolved_at=None, resolved_by=None)
    if to is S.ACKNOWLEDGED:
        moved = replace(moved, acknowledged_at=now, acknowledged_by=actor)
    elif to in ENDED_STATUSES:
        moved = replace(moved, resolved_at=now, resolved_by=actor)
    elif to is S.OPEN:  # reopened by hand: a new episode, nobody on it yet
        moved = replace(moved, acknowledged_at=None, acknowledged_by=None)
    detail: dict[str, object] = {"from": incident.status.value, "to": to.value}
    if note:
        detail["note"] = note
    return moved, TimelineEntry(now, "status", actor, detail)
