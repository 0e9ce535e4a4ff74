"""``/responder/guardrails``: the global kill switch, the tenant's shadow mode and the rest of its
guardrails (shadow runbooks, budget, approvals, the circuit breaker's state), with the two
toggles for admins (``guardrails.write``); operators and viewers see the state only.

Why only these two toggles on the page: they are what a person reaches for during an incident
("stop every automatic action now", "let it decide but send nothing"); the budget and approval
lists are settings, changed through ``PUT /api/v1/guardrails`` or the CLI and shown here. The
toggles call the store functions behind the API (``store/run_admin.set_kill_switch``,
``set_guardrails``) under the same row, so a viewer's post is the same 403 as the API's.

The kill switch is the server's, not the tenant's: it stops every tenant's automatic actions. A
server started with ``responder_kill_switch`` has it on whatever is stored, and the page says
so rather than offering a switch that would change nothing.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.responder.guardrails import Budget
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats, run_formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import guard_reads, run_admin
from infragent.store.run_errors import RunError

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("runs.read"))]
Writer = Annotated[Principal, Depends(page("guardrails.write"))]

MAX_REASON: Final = 500


def _section(
    request: Request, who: Principal, svc: AppServices, error: str = "", saved: str = ""
) -> HTMLResponse:
    budget = Budget(svc.settings.budget_max_actions, svc.settings.budget_window_s)
    with svc.store.read() as conn:
        view = guard_reads.guardrails(
            conn, who.client_id, kill_switch_setting=svc.settings.responder_kill_switch, default_budget=budget
        )
    partial = request.headers.get("HX-Target") == "guardrails-section"
    return render(
        request,
        "responder/_guardrails.html" if partial else "responder/guardrails.html",
        who,
        ks=view.kill_switch,
        g=view.guard,
        budget=view.budget,
        error=error,
        saved=saved,
        now=svc.clock(),
        fmt=formats,
        rf=run_formats,
    )


@router.get("/responder/guardrails", response_class=HTMLResponse)
def guardrails_page(request: Request, who: Reader, svc: Svc) -> HTMLResponse:
    return _section(request, who, svc)


def _flag(value: str) -> bool | None:
    return {"on": True, "off": False}.get(value.strip().lower())


@router.post("/responder/guardrails/kill-switch", response_class=HTMLResponse)
def kill_switch(
    request: Request,
    who: Writer,
    svc: Svc,
    state: Annotated[str, Form(max_length=8)],
    reason: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Turn the server's kill switch ``on`` or ``off``; anything else is shown as refused."""
    on = _flag(state)
    if on is None:
        return _section(request, who, svc, error=f"state must be on or off, not {state!r}")
    try:
        with svc.store.write() as conn:
            run_admin.set_kill_switch(
                conn, who.client_id, on=on, by=who.actor, reason=reason.strip()[:MAX_REASON], now=svc.clock()
            )
    except RunError as exc:
        return _section(request, who, svc, error=exc.message)
    return _section(request, who, svc, saved=f"kill switch {'on' if on else 'off'}")


@router.post("/responder/guardrails/shadow", response_class=HTMLResponse)
def shadow(
    request: Request, who: Writer, svc: Svc, state: Annotated[str, Form(max_length=8)]
) -> HTMLResponse:
    """Turn the tenant's shadow mode ``on`` (decide and record, send nothing) or ``off``."""
    on = _flag(state)
    if on is None:
        return _section(request, who, svc, error=f"state must be on or off, not {state!r}")
    try:
        with svc.store.write() as conn:
            run_admin.set_guardrails(conn, who.client_id, shadow=on, by=who.actor, now=svc.clock())
    except RunError as exc:
        return _section(request, who, svc, error=exc.message)
    return _section(request, who, svc, saved=f"shadow mode {'on' if on else 'off'}")
