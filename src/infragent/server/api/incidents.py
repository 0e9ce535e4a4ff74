"""Incidents: list, detail with timeline, acknowledge, resolve, note, and a live stream (docs/api.md).

Thin: each route is one store call in one transaction. Human actions are recorded with the actor
``key:<key_id>`` of the API key that made them. Another tenant's incident is a 404 like a missing
one; a move the status machine forbids (acknowledging a resolved incident) is a 409 saying what the
incident may become.

Why the stream polls the store (every ``POLL_S``) rather than waiting on an in-process signal:
incident changes are committed by other processes too (a second server's evaluator, a separate
responder), and one indexed query a quarter-second per open stream finds them all. Its cursor is
the timeline id, which grows in commit order within a tenant (``store/incidents.py`` says why), so
a client reconnecting with ``Last-Event-ID`` misses nothing and sees nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from infragent.incidents.core import IncidentNotFoundError, StatusChangeError
from infragent.incidents.model import IncidentStatus
from infragent.model import Severity
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.incident_schemas import (
    IncidentChangeOut,
    IncidentDetailOut,
    IncidentOut,
    IncidentPageOut,
    NoteIn,
    ResolveIn,
    TimelineEntryOut,
)
from infragent.store import incidents
from infragent.store.incidents import CursorError, IncidentChange

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

#: How often an open stream looks for new timeline rows.
POLL_S = 0.25
#: An idle stream sends a ``: keep-alive`` comment this often (proxies close silent connections).
KEEPALIVE_S = 15.0
#: Changes read per poll; a longer backlog is sent in several reads without waiting.
STREAM_BATCH = 100

T = TypeVar("T")
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such incident (another tenant's is the same)"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the incident's status does not allow this move; the body says why"}
}


def _change(svc: AppServices, change: Callable[..., T], *args: object) -> T:
    """Run one change in a transaction; a missing incident is 404, a forbidden move 409."""
    try:
        with svc.store.write() as conn:
            return change(conn, *args)
    except IncidentNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except StatusChangeError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.get("", response_model=IncidentPageOut, responses={422: {"description": "a bad filter or cursor"}})
def list_incidents(
    who: Annotated[Principal, Depends(require("incidents.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: Annotated[list[IncidentStatus] | None, Query(description="repeatable: any of these")] = None,
    severity: Severity | None = None,
    source: Literal["alert", "event"] | None = None,
    since: Annotated[float | None, Query(description="changed at or after (unix seconds)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> IncidentPageOut:
    """The tenant's incidents, most recently changed first."""
    try:
        with svc.store.read() as conn:
            page = incidents.list_incidents(
                conn,
                who.client_id,
                status=status or None,
                severity=severity.value if severity else None,
                source=source,
                since=since,
                limit=limit,
                cursor=cursor,
            )
    except CursorError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return IncidentPageOut(
        incidents=[IncidentOut.of(i) for i in page.incidents], next_cursor=page.next_cursor
    )


def _resume_after(
    last_event_id: Annotated[
        str | None, Header(description="the id of the last event received: the stream resumes after it")
    ] = None,
) -> int | None:
    """Parsed before the stream starts, so a bad header is a 422 and not a broken stream."""
    if last_event_id is None:
        return None
    try:
        value = int(last_event_id)
    except ValueError:
        value = -1
    if value < 0:
        raise HTTPException(status_code=422, detail="Last-Event-ID: not an event id of this stream")
    return value


def _latest(svc: AppServices, client_id: str) -> int:
    with svc.store.read() as conn:
        return incidents.latest_change_id(conn, client_id)


def _changes(svc: AppServices, client_id: str, after: int) -> list[IncidentChange]:
    with svc.store.read() as conn:
        return incidents.changes_since(conn, client_id, after, STREAM_BATCH)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"description": "Server-Sent Events: `incident` events, `: keep-alive` comments"}},
)
async def stream(
    who: Annotated[Principal, Depends(require("incidents.read"))],
    svc: Annotated[AppServices, Depends(services)],
    resume_after: Annotated[int | None, Depends(_resume_after)],
) -> AsyncIterator[ServerSentEvent]:
    """The tenant's incident changes as they commit: event ``incident``, id = the timeline entry's id,
    data = ``{"incident": …, "entry": …}``. Without ``Last-Event-ID`` it starts with the next change."""
    after = (
        resume_after
        if resume_after is not None
        else await anyio.to_thread.run_sync(_latest, svc, who.client_id)
    )
    quiet_since = time.monotonic()
    while True:
        changes = await anyio.to_thread.run_sync(_changes, svc, who.client_id, after)
        for change in changes:
            data = IncidentChangeOut.of(change).model_dump(mode="json")
            yield ServerSentEvent(event="incident", id=str(change.id), data=data)
            after = change.id
        if changes:
            quiet_since = time.monotonic()
            if len(changes) == STREAM_BATCH:
                continue  # more are waiting
        elif time.monotonic() - quiet_since >= KEEPALIVE_S - POLL_S:  # sent before FastAPI's own ping
            yield ServerSentEvent(comment="keep-alive")
            quiet_since = time.monotonic()
        await anyio.sleep(POLL_S)


@router.get("/{incident_id}", response_model=IncidentDetailOut, responses=NOT_FOUND)
def get_incident(
    incident_id: str,
    who: Annotated[Principal, Depends(require("incidents.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> IncidentDetailOut:
    """The incident with its whole timeline, oldest entry first."""
    with svc.store.read() as conn:
        found = incidents.get_incident(conn, who.client_id, incident_id)
        entries = incidents.timeline(conn, who.client_id, incident_id) if found else []
    if found is None:
        raise HTTPException(status_code=404, detail=f"incident {incident_id!r} not found")
    base = IncidentOut.of(found).model_dump()
    return IncidentDetailOut(**base, timeline=[TimelineEntryOut.of(e) for e in entries])


@router.post("/{incident_id}/acknowledge", response_model=IncidentOut, responses=NOT_FOUND | CONFLICT)
def acknowledge(
    incident_id: str,
    who: Annotated[Principal, Depends(require("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> IncidentOut:
    """Someone is on it: ``open`` → ``acknowledged`` (409 from any other status)."""
    to = IncidentStatus.ACKNOWLEDGED
    moved = _change(svc, incidents.set_status, who.client_id, incident_id, to, who.actor, svc.clock())
    return IncidentOut.of(moved)


@router.post("/{incident_id}/resolve", response_model=IncidentOut, responses=NOT_FOUND | CONFLICT)
def resolve(
    incident_id: str,
    who: Annotated[Principal, Depends(require("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
    body: ResolveIn | None = None,
) -> IncidentOut:
    """Resolve an open, acknowledged or remediating incident, with an optional note on its status entry."""
    note = body.note if body else None
    to = IncidentStatus.RESOLVED
    moved = _change(svc, incidents.set_status, who.client_id, incident_id, to, who.actor, svc.clock(), note)
    return IncidentOut.of(moved)


@router.post("/{incident_id}/notes", response_model=TimelineEntryOut, status_code=201, responses=NOT_FOUND)
def add_note(
    body: NoteIn,
    incident_id: str,
    who: Annotated[Principal, Depends(require("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> TimelineEntryOut:
    """Add a note (1 to 10,000 characters) to the timeline, in any status."""
    record = _change(svc, incidents.add_note, who.client_id, incident_id, who.actor, body.text, svc.clock())
    return TimelineEntryOut.of(record)
