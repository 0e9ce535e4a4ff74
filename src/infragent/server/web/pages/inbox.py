"""``/inbox``: the signed-in user's in-app notifications (mark one or all read), and
``/inbox/count``: the unread badge every page's menu shows.

Why the badge asks for its count rather than being told it: the stream's ``notification`` event
(``server/stream``) goes only to the streams of the users a notification was written for, and
carries what it is about, not anyone's count; each badge then asks for its own user's count, so one
user's reading never shows in another's menu and the event needs no per-user state. The badge
asks on page load, on ``live:notification``, on ``live:reset`` (the stream missed too much) and on
``inbox-changed`` (this page marked something read: the answer's ``HX-Trigger``). An ask made
while one is in flight runs after it (``hx-sync="this:queue last"``): htmx's default would drop
the newer, leaving the count of before the change on screen.

In-app notifications belong to people: an API key cannot sign in to a page, so ``who.user_id`` is
always set here; the rows are the store's (``store/notify_reads.py``), read for this user and
tenant only, the same as ``GET /api/v1/notify/inbox``.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render, render_part
from infragent.store import notify_reads

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("inbox.read"))]

#: notifications listed on the page, newest first
PER_PAGE: Final = 100
#: the badge shows "99+" past this
BADGE_MAX: Final = 99
#: the htmx event the badge listens for after this page changed what is unread
CHANGED_EVENT: Final = "inbox-changed"


def _user(who: Principal) -> str:
    assert who.user_id is not None, "pages are for signed-in users"
    return who.user_id


def _section(
    request: Request, who: Principal, svc: AppServices, *, unread: bool, changed: bool = False
) -> HTMLResponse:
    with svc.store.read() as conn:
        items = notify_reads.inbox_list(conn, who.client_id, _user(who), unread_only=unread, limit=PER_PAGE)
        count = notify_reads.inbox_unread_count(conn, who.client_id, _user(who))
    answer = render_part(
        request,
        "notify/inbox_section.html",
        "notify/inbox.html",
        who,
        items=items,
        unread=unread,
        count=count,
        now=svc.clock(),
        fmt=formats,
    )
    if changed:
        answer.headers["HX-Trigger"] = CHANGED_EVENT
    return answer


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, who: Reader, svc: Svc, unread: bool = False) -> HTMLResponse:
    """The list; htmx re-asks for it (the section alone) when a notification arrives."""
    return _section(request, who, svc, unread=unread)


@router.get("/inbox/count", response_class=HTMLResponse)
def inbox_count(request: Request, who: Reader, svc: Svc) -> HTMLResponse:
    """The menu's badge: this user's unread count (empty when none)."""
    with svc.store.read() as conn:
        count = notify_reads.inbox_unread_count(conn, who.client_id, _user(who))
    shown = f"{BADGE_MAX}+" if count > BADGE_MAX else str(count)
    return render(request, "notify/inbox_count.html", who, count=count, shown=shown)


@router.post("/inbox/read", response_class=HTMLResponse)
def mark_read(
    request: Request,
    who: Reader,
    svc: Svc,
    ids: Annotated[list[int] | None, Form(alias="id")] = None,
    unread: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    """Mark the given notifications read, or every unread one when no ``id`` is sent. Ids of
    another user or tenant are left alone, as if they did not exist."""
    with svc.store.write() as conn:
        notify_reads.inbox_mark_read(conn, who.client_id, _user(who), ids or None, svc.clock())
    return _section(request, who, svc, unread=unread, changed=True)
