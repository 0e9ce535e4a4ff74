"""``/audit``: the tenant's audit log, newest first, under the verdict of its hash-chain check.

Why the verdict heads the page: "who did what" is only worth reading if the log is the one that was
written; ``audit-chain`` says "verified" or "broken at entry N", recomputed from the rows on each load
(``store/audit_reads.py``). Why details are cut short here: an LLM decision's prompt and answer run
to kilobytes; the list shows each value's start, ``GET /api/v1/audit`` gives them whole (already
redacted when written).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import audit_reads
from infragent.store.records import AuditRecord

router = APIRouter()

PAGE_SIZE: Final = 50
#: A string value in a detail is shown up to this many characters, then "…".
VALUE_CHARS: Final = 80
#: The whole detail column, as compact JSON, is cut at this many characters.
DETAIL_CHARS: Final = 300


def shorten(value: Any) -> Any:
    """``value`` with every string inside cut to ``VALUE_CHARS``: a prompt is summarized, not shown."""
    if isinstance(value, str):
        return value if len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    return value


def summary(detail: dict[str, Any]) -> str:
    """One line for the list: the detail as compact JSON, its long values and its length cut."""
    text = orjson.dumps(shorten(detail), option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _row(e: AuditRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": when(e.at),
        "actor": e.actor,
        "kind": e.kind,
        "subject": e.subject,
        "detail": summary(e.detail),
    }


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    who: Annotated[Principal, Depends(page("audit.read"))],
    svc: Annotated[AppServices, Depends(services)],
    before: str | None = None,
) -> HTMLResponse:
    """A page of entries (``?before=<id>`` for older ones) and the chain's verdict; a bad ``before``
    shows the newest page with the error (422)."""
    cursor: int | None = None
    error = ""
    if before:
        if before.isdigit() and int(before) >= 1:
            cursor = int(before)
        else:
            error = f"'before' must be a positive entry id, not {before!r}: showing the newest entries"
    found, chain = await anyio.to_thread.run_sync(
        audit_reads.read, svc.store, who.client_id, PAGE_SIZE, cursor
    )
    return render(
        request,
        "audit.html",
        who,
        status_code=422 if error else 200,
        rows=[_row(e) for e in found.entries],
        chain=chain,
        next_before=found.next_before,
        paged=cursor is not None,
        error=error,
    )
