"""``/responder/effectiveness``: how often each runbook and each action healed what it was run
for (success rate, median and p95 MTTR, escalations, last runs); ``/responder/schedules``: the
scheduled runbooks with their next run. Both read-only, for every role (``runs.read``).

Why these figures on a page: the promise of the responder is "measured": an operator deciding
whether to trust a runbook with ``approval: auto`` looks here first. The numbers are the API's
(``GET /api/v1/effectiveness``, ``store/run_reads.effectiveness``), defined once there; the page
only lays them out. Schedules are ``store/schedules.list_schedules`` (the API's list), each spec
written for a person by the pure core's ``describe``.

Live: the effectiveness tables re-ask on ``run`` events (a run ending changes them), at most every
5 s; the schedules list every 30 s (the next run moves when a run is claimed).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from infragent.errors import InfrAgentError
from infragent.responder.schedule import describe
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats, run_formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import run_effect, schedules
from infragent.store.schedule_specs import spec_from_doc

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("runs.read"))]

#: the effectiveness windows offered (days); the page's default is the first
WINDOWS_DAYS: Final = (30, 7, 1, 90)


@router.get("/responder", response_class=HTMLResponse)
@router.get("/responder/effectiveness", response_class=HTMLResponse)
def effectiveness_page(request: Request, who: Reader, svc: Svc, days: int = WINDOWS_DAYS[0]) -> HTMLResponse:
    """Figures over the last ``days`` (one of ``WINDOWS_DAYS``; anything else: the default)."""
    days = days if days in WINDOWS_DAYS else WINDOWS_DAYS[0]
    now = svc.clock()
    with svc.store.read() as conn:
        figures = run_effect.effectiveness(conn, who.client_id, now=now, since=now - days * 86_400.0)
    partial = request.headers.get("HX-Target") == "effectiveness-results"
    return render(
        request,
        "responder/_effectiveness.html" if partial else "responder/effectiveness.html",
        who,
        figures=figures,
        days=days,
        windows=WINDOWS_DAYS,
        now=now,
        fmt=formats,
        rf=run_formats,
    )


def _described(doc: dict[str, object], tz: str | None) -> str:
    try:
        return describe(spec_from_doc(doc, tz), tz)
    except InfrAgentError as exc:  # a row written by hand or an older server: shown, not fatal
        return f"unreadable spec {doc!r}: {exc}"


@router.get("/responder/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, who: Reader, svc: Svc) -> HTMLResponse:
    now = svc.clock()
    with svc.store.read() as conn:
        found = schedules.list_schedules(conn, who.client_id)
    rows = [(s, _described(s.spec_doc, s.tz)) for s in found]
    partial = request.headers.get("HX-Target") == "schedules-results"
    return render(
        request,
        "responder/_schedules.html" if partial else "responder/schedules.html",
        who,
        rows=rows,
        enabled=svc.settings.schedules_enabled,
        now=now,
        fmt=formats,
        rf=run_formats,
    )
