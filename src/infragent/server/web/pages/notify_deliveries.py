"""``/notify/deliveries``: every notification the tenant's channels were sent or were to be sent,
newest first, with its status (pending, sending, delivered, dead, suppressed), channel, kind,
incident, attempts, last error and, for a suppressed one, what held it back (``silence <id>``,
``inhibited by …``, ``muted: …``); ``/notify/deliveries/{id}`` with every attempt; and "Retry" on a
dead one (``deliveries.retry``: operators and admins).

Why this page is the dead-letter list: the promise of notifications is "delivered, or shown here
with its reason"; a dead delivery keeps its last error and every attempt, and Retry hands it back
to the delivery worker as the same delivery (same id: receivers that deduplicate on it still
can), with ``notify_retry_for_s`` more to succeed (``store/notify_reads.retry_delivery``, the
function behind ``POST /api/v1/notify/deliveries/{id}/retry``).

Live: while the page shows a pending or sending delivery, its results re-ask every 2 s (a retried
delivery turns delivered on screen); the first page also re-asks after an ``incident`` event.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from infragent.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from infragent.notify.model import DELIVERY_STATUSES
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import notify_config, notify_reads

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("notify.read"))]
Retrier = Annotated[Principal, Depends(page("deliveries.retry"))]

PER_PAGE: Final = 50
#: statuses a delivery may still leave by itself: a page showing one keeps asking
MOVING: Final = frozenset({"pending", "sending"})
#: the htmx event a retry answer triggers: the list it came from refreshes
RETRIED_EVENT: Final = "notify-retried"


@router.get("/notify/deliveries", response_class=HTMLResponse)
def deliveries_page(
    request: Request,
    who: Reader,
    svc: Svc,
    status: str = "",
    channel: Annotated[str, Query(max_length=100)] = "",
    incident: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """An unknown status shows all; a cursor this server did not give is shown as an error above
    the first page."""
    status = status if status in DELIVERY_STATUSES else ""
    channel, incident = channel.strip(), incident.strip()
    error = ""
    with svc.store.read() as conn:
        find = {"status": status or None, "channel_id": channel or None, "incident_id": incident or None}
        try:
            views, after = notify_reads.list_deliveries(
                conn, who.client_id, **find, before=cursor or None, limit=PER_PAGE
            )
        except NotifyConfigError:
            error, cursor = "That page link is no longer valid: showing the newest deliveries.", ""
            views, after = notify_reads.list_deliveries(conn, who.client_id, **find, limit=PER_PAGE)
        channels = notify_config.list_channels(conn, who.client_id)
    filters = {"status": status, "channel": channel, "incident": incident}
    query = urlencode({k: v for k, v in filters.items() if v} | ({"cursor": cursor} if cursor else {}))
    partial = request.headers.get("HX-Target") == "deliveries-results"
    return render(
        request,
        "notify/deliveries_results.html" if partial else "notify/deliveries.html",
        who,
        views=views,
        next_query=urlencode({k: v for k, v in filters.items() if v} | {"cursor": after}) if after else "",
        query=query,
        first_page=not cursor,
        moving=any(v.status in MOVING for v in views),
        filters=filters,
        statuses=DELIVERY_STATUSES,
        channels=channels,
        error=error,
        now=svc.clock(),
        fmt=formats,
    )


def _detail(
    request: Request, who: Principal, svc: AppServices, delivery_id: str, template: str, error: str = ""
) -> HTMLResponse:
    try:
        with svc.store.read() as conn:
            view, attempts = notify_reads.get_delivery(conn, who.client_id, delivery_id)
    except NotifyNotFoundError as exc:
        return render(request, "notify/missing.html", who, status_code=404, message=exc.message)
    return render(
        request,
        template,
        who,
        d=view,
        attempts=attempts,
        error=error,
        moving=view.status in MOVING,
        now=svc.clock(),
        fmt=formats,
    )


@router.get("/notify/deliveries/{delivery_id}", response_class=HTMLResponse)
def delivery_page(request: Request, delivery_id: str, who: Reader, svc: Svc, part: str = "") -> HTMLResponse:
    template = "notify/delivery_body.html" if part == "body" else "notify/delivery.html"
    return _detail(request, who, svc, delivery_id, template)


@router.post("/notify/deliveries/{delivery_id}/retry", response_class=HTMLResponse)
def retry(request: Request, delivery_id: str, who: Retrier, svc: Svc) -> HTMLResponse:
    """Hand a dead delivery back to the worker, woken once the answer is ready (so the answer shows
    the delivery as the retry left it: pending). The answer is the refreshed row (from the list) or
    the refreshed detail; a delivery that is not dead is refused, shown."""
    error = ""
    try:
        with svc.store.write() as conn:
            notify_reads.retry_delivery(
                conn,
                who.client_id,
                delivery_id,
                actor=who.actor,
                now=svc.clock(),
                retry_for_s=svc.settings.notify_retry_for_s,
            )
    except NotifyConflictError as exc:
        error = exc.message
    except NotifyNotFoundError as exc:
        return render(request, "notify/missing.html", who, status_code=404, message=exc.message)
    if request.headers.get("HX-Target") == "delivery-detail":
        answer = _detail(request, who, svc, delivery_id, "notify/delivery_body.html", error)
    else:
        with svc.store.read() as conn:
            view, _ = notify_reads.get_delivery(conn, who.client_id, delivery_id)
        answer = render(
            request, "notify/delivery_row.html", who, d=view, error=error, now=svc.clock(), fmt=formats
        )
    if not error:
        answer.headers["HX-Trigger"] = RETRIED_EVENT  # the list re-asks, and keeps asking meanwhile
        if svc.notifier is not None:
            svc.notifier.wake()
    return answer
