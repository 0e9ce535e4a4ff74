"""A signed-in user's in-app notifications (``inbox.read``): list, count unread, mark read.

Why users only: an ``inapp`` channel delivers one row per member of the tenant (by role), so an
inbox belongs to a person; an API key has none and is answered 422 saying so. A user sees and marks
only their own rows in the tenant they are signed in to.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.notify_schemas import InboxCountOut, InboxItemOut, InboxOut, InboxReadIn, InboxReadOut
from infragent.store import notify_reads

router = APIRouter(prefix="/api/v1/notify/inbox", tags=["notifications"])

NOT_A_USER = "in-app notifications belong to users; sign in"
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "the caller is an API key, not a signed-in user"}
}


def _user(who: Principal) -> str:
    if who.user_id is None:
        raise HTTPException(status_code=422, detail=NOT_A_USER)
    return who.user_id


@router.get("", response_model=InboxOut, responses=REFUSED)
def list_inbox(
    who: Annotated[Principal, Depends(require("inbox.read"))],
    svc: Annotated[AppServices, Depends(services)],
    unread: Annotated[bool, Query(description="only the unread ones")] = False,
    limit: Annotated[int, Query(ge=1, le=notify_reads.MAX_PAGE)] = 50,
) -> InboxOut:
    """The caller's notifications in this tenant, newest first, with the unread count."""
    user_id = _user(who)
    with svc.store.read() as conn:
        items = notify_reads.inbox_list(conn, who.client_id, user_id, unread_only=unread, limit=limit)
        count = notify_reads.inbox_unread_count(conn, who.client_id, user_id)
    return InboxOut(items=[InboxItemOut.of(i) for i in items], unread=count)


@router.get("/count", response_model=InboxCountOut, responses=REFUSED)
def count_unread(
    who: Annotated[Principal, Depends(require("inbox.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> InboxCountOut:
    """How many of the caller's notifications are unread (the dashboard's badge)."""
    user_id = _user(who)
    with svc.store.read() as conn:
        return InboxCountOut(unread=notify_reads.inbox_unread_count(conn, who.client_id, user_id))


@router.post("/read", response_model=InboxReadOut, responses=REFUSED)
def mark_read(
    who: Annotated[Principal, Depends(require("inbox.read"))],
    svc: Annotated[AppServices, Depends(services)],
    body: InboxReadIn | None = None,
) -> InboxReadOut:
    """Mark the items ``ids`` read, or every one when ``ids`` is omitted; others' ids are ignored."""
    user_id = _user(who)
    ids = body.ids if body is not None else None
    with svc.store.write() as conn:
        marked = notify_reads.inbox_mark_read(conn, who.client_id, user_id, ids, svc.clock())
        count = notify_reads.inbox_unread_count(conn, who.client_id, user_id)
    return InboxReadOut(marked=marked, unread=count)
