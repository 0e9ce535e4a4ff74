"""Deliveries of notifications: list and filter them, one with its attempts, the dead letters, and
re-driving a dead one (``notify.read``; retrying is ``deliveries.retry``, an operator's).

Thin: each route is one store call (``store/notify_reads.py``) in one transaction; the store raises
the notification errors, which ``server/app.py`` answers (404 for another tenant's delivery, 409 for
retrying one that is not dead, 422 for a cursor this server did not give).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from infragent.notify.model import DeliveryStatus
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.notify_schemas import AttemptOut, DeliveryDetailOut, DeliveryOut, DeliveryPageOut
from infragent.store import notify_reads

router = APIRouter(prefix="/api/v1/notify", tags=["notifications"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such delivery (another tenant's is the same)"}
}
Limit = Annotated[int, Query(ge=1, le=notify_reads.MAX_PAGE)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _page(
    svc: AppServices,
    client_id: str,
    status: str | None,
    channel: str | None,
    incident: str | None,
    cursor: str | None,
    limit: int,
) -> DeliveryPageOut:
    with svc.store.read() as conn:
        views, next_cursor = notify_reads.list_deliveries(
            conn,
            client_id,
            status=status,
            channel_id=channel,
            incident_id=incident,
            before=cursor,
            limit=limit,
        )
    return DeliveryPageOut(deliveries=[DeliveryOut.of(v) for v in views], next_cursor=next_cursor)


@router.get("/deliveries", response_model=DeliveryPageOut, responses={422: {"description": "a bad cursor"}})
def list_deliveries(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: DeliveryStatus | None = None,
    channel: Annotated[str | None, Query(description="a channel id")] = None,
    incident: Annotated[str | None, Query(description="an incident id")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DeliveryPageOut:
    """The tenant's deliveries, newest first; each names its channel, incidents and progress."""
    return _page(svc, who.client_id, status, channel, incident, cursor, limit)


@router.get("/dead-letters", response_model=DeliveryPageOut, responses={422: {"description": "a bad cursor"}})
def dead_letters(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DeliveryPageOut:
    """The deliveries that gave up (a final refusal, or retries until their deadline), newest first."""
    return _page(svc, who.client_id, "dead", None, None, cursor, limit)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetailOut, responses=NOT_FOUND)
def get_delivery(
    delivery_id: str,
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> DeliveryDetailOut:
    """One delivery with every attempt: when, how long, the outcome, the receiver's status and error."""
    with svc.store.read() as conn:
        view, attempts = notify_reads.get_delivery(conn, who.client_id, delivery_id)
    base = DeliveryOut.of(view).model_dump()
    return DeliveryDetailOut(**base, attempts_made=[AttemptOut.of(a) for a in attempts])


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=NOT_FOUND | {409: {"description": "the delivery is not dead (delivered, or still tried)"}},
)
def retry_delivery(
    delivery_id: str,
    who: Annotated[Principal, Depends(require("deliveries.retry"))],
    svc: Annotated[AppServices, Depends(services)],
) -> DeliveryOut:
    """Send a dead letter again: it is pending at once, with ``notify_retry_for_s`` to succeed. The
    same delivery id is sent, so a receiver that saw it before can tell."""
    with svc.store.write() as conn:
        view = notify_reads.retry_delivery(
            conn,
            who.client_id,
            delivery_id,
            actor=who.actor,
            now=svc.clock(),
            retry_for_s=svc.settings.notify_retry_for_s,
        )
    return DeliveryOut.of(view)
