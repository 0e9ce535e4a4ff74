"""The runbook runs of an incident, on its page (``/incidents/{id}/runs``, a fragment the incident
page loads), with approve / reject for a pending approval and cancel for a run still going.

Why a fragment of its own rather than more of ``incidents/_body.html``: the incident's body
re-renders on ``incident`` events, the runs on ``run`` events (and on the incident's, since a run
writes its decisions and commands on the incident's timeline), and while a run is going its
fragment also re-asks every 2 s, so a step's progress shows even on a stream that has not sent
``run`` events (a server from before them, a reconnecting browser). Keeping the two apart means an
operator's half-typed note is not wiped by a step finishing, and the incident page's module does
not grow with the runs.

The buttons post to page handlers that call the store functions behind the API
(``store/run_admin.decide_approval``, ``cancel_run``) under the API's permission rows
(``approvals.decide``, ``runs.cancel``: operators and admins); a viewer sees no button and a
viewer's post is the same 403 as the API's. A refusal (the approval expired, someone answered
first, the run has ended) is shown in the fragment. The store makes the run due at once; the
executor acts on the answer at its next look at waiting runs (``approval_poll_s``, 5 s), since
the pages have no handle on the responder thread to wake it.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.responder import step_run
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats, run_formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import dashboard, incidents, run_admin, run_reads
from infragent.store.run_errors import RunError

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("runs.read"))]
Decider = Annotated[Principal, Depends(page("approvals.decide"))]
Canceller = Annotated[Principal, Depends(page("runs.cancel"))]

#: at most this many runs of one incident are shown (newest first): an incident reopened many
#: times keeps every run in the API, the page shows the recent ones
RUNS_SHOWN: Final = 20
MAX_NOTE: Final = 2_000
#: run statuses that will not change again: a page showing only these stops polling
ENDED: Final = frozenset(s.value for s in step_run.ENDED)


def _fragment(
    request: Request, who: Principal, svc: AppServices, incident_id: str, error: str = ""
) -> HTMLResponse:
    now = svc.clock()
    with svc.store.read() as conn:
        if incidents.get_incident(conn, who.client_id, incident_id) is None:
            return render(request, "incidents/missing.html", who, status_code=404, incident_id=incident_id)
        runs = run_reads.list_runs(conn, who.client_id, incident_id=incident_id, limit=RUNS_SHOWN)
        approvals = run_reads.list_approvals(conn, who.client_id, incident_id=incident_id, now=now)
        ids = [s.command_id for r in runs for s in r.steps if s.command_id]
        outputs = dashboard.commands_by_id(conn, who.client_id, ids)
    pending = {(a.run_id, a.seq): a for a in approvals if a.status == "pending"}
    return render(
        request,
        "runs/_incident.html",
        who,
        incident_id=incident_id,
        runs=runs,
        pending=pending,
        decided={(a.run_id, a.seq): a for a in approvals if a.status != "pending"},
        outputs=outputs,
        going=any(r.status not in ENDED for r in runs),
        error=error,
        now=now,
        fmt=formats,
        rf=run_formats,
    )


@router.get("/incidents/{incident_id}/runs", response_class=HTMLResponse)
def incident_runs(request: Request, incident_id: str, who: Reader, svc: Svc) -> HTMLResponse:
    return _fragment(request, who, svc, incident_id)


def _decide(
    request: Request,
    who: Principal,
    svc: AppServices,
    approval_id: str,
    incident_id: str,
    approve: bool,
    note: str,
) -> HTMLResponse:
    note = note.strip()[:MAX_NOTE]
    error = ""
    try:
        with svc.store.write() as conn:
            decided = run_admin.decide_approval(
                conn, who.client_id, approval_id, by=who.actor, approve=approve, note=note, now=svc.clock()
            )
        decided.checked()  # an expired request is stored as expired, then refused
    except RunError as exc:  # expired, answered already, unknown: shown in the fragment
        error = exc.message
    return _fragment(request, who, svc, incident_id, error)


@router.post("/approvals/{approval_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request,
    approval_id: str,
    who: Decider,
    svc: Svc,
    incident_id: Annotated[str, Form(max_length=36)],
    note: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Approve the pending request; the answer is the incident's refreshed runs."""
    return _decide(request, who, svc, approval_id, incident_id, True, note)


@router.post("/approvals/{approval_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request,
    approval_id: str,
    who: Decider,
    svc: Svc,
    incident_id: Annotated[str, Form(max_length=36)],
    note: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Reject the pending request: the run takes its failure path (escalation, by default)."""
    return _decide(request, who, svc, approval_id, incident_id, False, note)


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse)
def cancel(
    request: Request,
    run_id: str,
    who: Canceller,
    svc: Svc,
    incident_id: Annotated[str, Form(max_length=36)],
    reason: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Ask the executor holding the run to cancel it (it withdraws a pending approval too)."""
    error = ""
    try:
        with svc.store.write() as conn:
            run_admin.cancel_run(
                conn, who.client_id, run_id, by=who.actor, reason=reason.strip()[:MAX_NOTE], now=svc.clock()
            )
    except RunError as exc:  # ended already, unknown: shown in the fragment
        error = exc.message
    return _fragment(request, who, svc, incident_id, error)
