"""The ``Message`` snapshot a delivery carries: the incidents as they were when it was created.

Why a snapshot and not a reference read at send time: a retry an hour later must send what the
flush decided (the firing and resolved sets of that moment), not whatever the incidents became
since; the next flush tells what changed. Rendering (``notify/render.py``) happens at send time
from the snapshot, so a template fix applies to deliveries still waiting.

What an incident shows (``IncidentSummary``): its title, severity, status, labels, when it opened
and resolved, who acknowledged it, the value of its latest ``alert`` timeline entry, what the
responder did last (the newest ``decision``, and the ``result`` of its command when one came
after it) and its dashboard link (``public_url`` + ``/incidents/<id>``, empty without a
``public_url``). A group message lists at most ``MAX_LISTED`` incidents, firing ones first, and
carries the full counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from infragent.incidents.model import Incident, IncidentStatus
from infragent.notify.model import IncidentSummary, Message, NotificationKind
from infragent.store import notify_inputs

#: Incidents listed in one message; the counts say how many more there are.
MAX_LISTED = 20
_QUOTED = ("alert", "decision", "result")


def incident_url(public_url: str, incident_id: str) -> str:
    return f"{public_url.rstrip('/')}/incidents/{incident_id}" if public_url else ""


def format_value(value: Any) -> str | None:
    """A rule's value as a person reads it (``92.5``, ``1.2e+09``); None when there is none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return f"{value:.6g}"


def responder_line(decision: Mapping[str, Any] | None, result: Mapping[str, Any] | None) -> str | None:
    """``restart_service on web-1: ok`` — the newest decision, and how its command ended."""
    if decision is None:
        return None
    action = str(decision.get("action") or "").strip()
    if not action:
        return None
    target = str(decision.get("target") or "").strip()
    line = f"{action} on {target}" if target else action
    if result is not None and result.get("command_id") == decision.get("command_id"):
        outcome = result.get("result") or result.get("status")
        if outcome:
            line += f": {outcome}"
    return line


def summaries(
    conn: sa.Connection, client_id: str, incidents: Sequence[Incident], public_url: str
) -> list[IncidentSummary]:
    """One ``IncidentSummary`` per incident, in the order given (two reads for all of them)."""
    ids = [i.id for i in incidents]
    newest = notify_inputs.latest_entries(conn, client_id, ids, _QUOTED)
    out = []
    for incident in incidents:
        alert = newest.get((incident.id, "alert"))
        decision = newest.get((incident.id, "decision"))
        result = newest.get((incident.id, "result"))
        if decision is not None and result is not None and result[0] < decision[0]:
            result = None  # that result answers an older decision
        out.append(
            IncidentSummary(
                id=incident.id,
                title=incident.title,
                severity=incident.severity,
                status=incident.status.value,
                fingerprint=incident.fingerprint,
                labels=dict(incident.labels),
                opened_at=incident.opened_at,
                rule_name=incident.rule_name,
                # an escalated episode ended too (``resolved_at`` set), but nothing recovered:
                # a message says "resolved" only of a resolved incident
                resolved_at=incident.resolved_at if incident.status is IncidentStatus.RESOLVED else None,
                acknowledged_by=incident.acknowledged_by,
                value=format_value(alert[1].get("value")) if alert else None,
                responder=responder_line(decision[1] if decision else None, result[1] if result else None),
                url=incident_url(public_url, incident.id),
            )
        )
    return out


def group_message(
    conn: sa.Connection,
    *,
    client_id: str,
    kind: NotificationKind,
    firing: Sequence[Incident],
    resolved: Sequence[Incident],
    group_labels: Mapping[str, str],
    template: Mapping[str, str],
    public_url: str,
    now: float,
) -> Message:
    """A group flush's message (its ``id`` is set per delivery)."""
    listed = [*firing, *resolved][:MAX_LISTED]
    return Message(
        id="",
        client_id=client_id,
        kind=kind,
        incidents=tuple(summaries(conn, client_id, listed, public_url)),
        created_at=now,
        group_labels=dict(group_labels),
        firing_count=len(firing),
        resolved_count=len(resolved),
        template=dict(template),
    )


def incident_message(
    conn: sa.Connection,
    *,
    incident: Incident,
    kind: NotificationKind,
    detail: Mapping[str, Any],
    template: Mapping[str, str],
    public_url: str,
    now: float,
) -> Message:
    """A per-incident message: escalated, acknowledged, an escalation step, an approval request."""
    resolved = incident.status.value == "resolved"
    return Message(
        id="",
        client_id=incident.client_id,
        kind=kind,
        incidents=tuple(summaries(conn, incident.client_id, [incident], public_url)),
        created_at=now,
        firing_count=0 if resolved else 1,
        resolved_count=1 if resolved else 0,
        detail=dict(detail),
        template=dict(template),
    )
