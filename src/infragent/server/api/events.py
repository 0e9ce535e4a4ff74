"""Events: reported by SDKs and agents, read back with their incident, decision, command and audit trail.

Why the event rule is asked before the event is stored: an event an event rule matches belongs to
that rule's alert incident (``svc.alerting``), so it must not also open a default event incident;
every other event is recorded on its incident in the transaction that stores it.
"""

from __future__ import annotations

import socket
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from infragent.incidents.core import policy_from_settings
from infragent.model import Event
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import AuditOut, EventAccepted, EventDetailOut, EventIn, EventOut
from infragent.store import events

router = APIRouter(prefix="/api/v1/events", tags=["events"])


def _out(e: Event) -> EventOut:
    return EventOut(
        id=e.id,
        type=e.type,
        service=e.service,
        severity=e.severity,
        node_id=e.node_id,
        data=e.data,
        received_at=e.received_at,
        processed_at=e.processed_at,
        status="pending" if e.processed_at is None else "processed",
        incident_id=e.incident_id,
    )


@router.post("", response_model=EventAccepted, status_code=202)
def report_event(
    body: EventIn,
    who: Annotated[Principal, Depends(require("events.report"))],
    svc: Annotated[AppServices, Depends(services)],
) -> EventAccepted:
    """Store the event as pending on its incident and wake the responder; decisions happen
    asynchronously."""
    node_id = body.node_id or f"{socket.gethostname()}/{body.service}"
    alerting = getattr(svc, "alerting", None)  # the alert evaluator, when the server runs one
    claimed = alerting is not None and bool(
        alerting.claims_event(who.client_id, body.type, body.service, body.severity, body.data)
    )
    with svc.store.write() as conn:
        event = events.insert_event(
            conn,
            who.client_id,
            type=body.type,
            service=body.service,
            severity=body.severity,
            data=body.data,
            node_id=node_id,
            now=svc.clock(),
            incidents=None if claimed else policy_from_settings(svc.settings),
        )
    if alerting is not None:  # after the commit: the evaluator reads what was stored
        alerting.observe_event(who.client_id, event)
    svc.on_event()
    # None when an event rule claimed it: the evaluator links it to the rule's incident afterwards.
    return EventAccepted(event_id=event.id, incident_id=event.incident_id)


@router.get("", response_model=list[EventOut])
def list_events(
    who: Annotated[Principal, Depends(require("events.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: Literal["pending", "processed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    with svc.store.read() as conn:
        found = events.list_events(conn, who.client_id, status, limit)
    return [_out(e) for e in found]


@router.get("/{event_id}", response_model=EventDetailOut)
def get_event(
    event_id: str,
    who: Annotated[Principal, Depends(require("events.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> EventDetailOut:
    """Another client's event is a 404, exactly like a missing one."""
    with svc.store.read() as conn:
        detail = events.get_event_detail(conn, who.client_id, event_id)
    if detail is None:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} not found")
    base = _out(detail.event).model_dump()
    audit = [
        AuditOut(
            id=a.id, at=a.at, actor=a.actor, kind=a.kind, subject=a.subject, detail=a.detail, hash=a.hash
        )
        for a in detail.audit
    ]
    return EventDetailOut(**base, decision=detail.decision, command=detail.command, audit=audit)
