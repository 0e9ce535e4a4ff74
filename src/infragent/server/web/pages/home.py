"""``/``: the overview page (the pages issue fills it: hosts online/offline, incidents, actions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from infragent.server.auth import Principal
from infragent.server.web.deps import page
from infragent.server.web.templating import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Annotated[Principal, Depends(page("hosts.read"))]) -> HTMLResponse:
    return render(request, "overview.html", who)
