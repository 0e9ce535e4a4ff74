"""``GET /api/v1/stream``: the tenant's live stream (Server-Sent Events; docs/api.md "Live stream").

Thin: the hub (``server/stream``) owns the feeds, the cap and the catch-up; this route turns a
request into a subscriber and the subscriber's queue into SSE frames.

Why the subscription is a dependency with ``yield``: its teardown runs when the response is over,
however it ends (the client left, the subscriber was dropped as slow, the server stops), so the
subscriber count and the per-user cap never leak. The refusals (404 unknown host, 429 past the cap,
503 database unreachable) are decided there too, before the first byte of the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.stream import Cursor, Event
from infragent.server.stream.feeds import Subscriber

router = APIRouter(prefix="/api/v1", tags=["stream"])

#: Seconds a refused client should wait before trying again (the cap frees as streams close).
RETRY_AFTER_S = 5
#: ``retry:`` sent first: the browser's reconnect delay (ms) after a drop or a restart.
RECONNECT_MS = 2000

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: incident, command, notification, run, host, metrics, "
        "reset, ready; comments"
    },
    404: {"description": "``host`` is not one of the tenant's hosts"},
    429: {"description": "the user or key already holds ``stream_max_connections`` streams"},
    503: {"description": "the database cannot be read; try again"},
}


@dataclass(frozen=True, slots=True)
class Opened:
    sub: Subscriber
    first: list[Event]


async def _subscription(
    who: Annotated[Principal, Depends(require("stream.read"))],
    svc: Annotated[AppServices, Depends(services)],
    host: Annotated[
        str | None, Query(min_length=1, max_length=255, description="add this host's metrics")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(description="the id of the last event received: the stream resumes after it")
    ] = None,
) -> AsyncIterator[Opened]:
    hub = svc.stream
    if host is not None and not await anyio.to_thread.run_sync(hub.source.host_exists, who.client_id, host):
        raise HTTPException(status_code=404, detail=f"host {host!r} not found")
    sub = hub.open(who.client_id, who.actor, host)
    if sub is None:
        detail = f"at most {hub.config.max_per_owner} live streams per user or key; close one first"
        raise HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(RETRY_AFTER_S)})
    try:
        try:
            first = await hub.attach(sub, Cursor.decode(last_event_id))
        except TimeoutError:
            raise HTTPException(
                status_code=503,
                detail="the live stream cannot read the database",
                headers={"Retry-After": "5"},
            ) from None
        yield Opened(sub, first)
    finally:
        hub.close(sub)


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(event=event.name, id=event.id, data=event.data)


@router.get("/stream", response_class=EventSourceResponse, responses=RESPONSES)
async def stream(
    opened: Annotated[Opened, Depends(_subscription)],
    svc: Annotated[AppServices, Depends(services)],
) -> AsyncIterator[ServerSentEvent]:
    """The tenant's incident changes, command status changes, runbook run and approval changes
    (``run``), host online/offline changes and (to
    the users they were written for) in-app notifications, and with ``?host=`` that host's live
    chart values. Each resumable event's ``id`` is a cursor; send
    it back as ``Last-Event-ID`` to get what was missed (``reset`` when that is too much)."""
    hub, sub = svc.stream, opened.sub
    yield ServerSentEvent(retry=RECONNECT_MS, comment="infragent live stream")
    for first in opened.first:
        yield _sse(first)
    while True:
        try:
            event: Event | None = await asyncio.wait_for(sub.queue.get(), hub.config.heartbeat_s)
        except TimeoutError:
            cursor = hub.heartbeat_cursor(sub)
            yield ServerSentEvent(comment="heartbeat", id=None if cursor is None else cursor.encode())
            continue
        if event is None:  # dropped as slow, or the server is stopping
            return
        yield _sse(event)
