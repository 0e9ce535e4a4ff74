"""``/``: the overview: hosts online/offline, open incidents by severity, the last 24 h of actions
with their success rate, and the most recently changed incidents.

The figures refresh live: ``overview.html`` re-fetches its body (``/?fragment=1``, throttled to
once a second) on every ``incident``, ``host`` and ``command`` event of the tenant's stream, so the
page never counts in the browser what the database already knows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import dashboard

router = APIRouter()

#: Incidents listed under the figures.
RECENT = 10


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    who: Annotated[Principal, Depends(page("hosts.read"))],
    svc: Annotated[AppServices, Depends(services)],
    fragment: bool = False,
) -> HTMLResponse:
    now = svc.clock()
    with svc.store.read() as conn:
        figures = dashboard.overview(conn, who.client_id, now)
        recent = dashboard.find_incidents(conn, who.client_id, limit=RECENT).incidents
    template = "overview_body.html" if fragment else "overview.html"
    return render(request, template, who, o=figures, recent=recent, now=now, fmt=formats)
