"""Runbook runs: list and filter them, one with its steps, cancel one (``runs.read``; cancelling is
``runs.cancel``, an operator's); and the effectiveness of automatic remediation (docs/api.md).

Thin: each route is one store call (``store/run_reads.py``, ``store/run_admin.py``,
``store/run_effect.py``) in one transaction; the store raises the run errors
(``store/run_errors.py``), which ``server/app.py`` answers: 404 for another tenant's run, 409 for
cancelling one that has ended.

Why a cancel answers 202: it is a request the executor holding the run carries out (it ends the
run as ``cancelled`` and withdraws a pending approval); the answer shows the run with
``cancel_requested_by`` set, and the run's status changes when the executor has acted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.run_schemas import CancelIn, EffectivenessOut, RunListOut, RunOut, RunStatusName
from infragent.store import run_admin, run_effect, run_reads

router = APIRouter(prefix="/api/v1", tags=["runs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such run (another tenant's is the same)"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "the run has ended (`code`: ended)"}}


@router.get("/runs", response_model=RunListOut)
def list_runs(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
    incident_id: str | None = None,
    status: RunStatusName | None = None,
    runbook: str | None = None,
    before: Annotated[
        float | None, Query(description="created before (next_before of the last page)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=run_reads.MAX_PAGE)] = 50,
) -> RunListOut:
    """The tenant's runs, newest first, each with the step in progress and the steps that ended."""
    with svc.store.read() as conn:
        views = run_reads.list_runs(
            conn,
            who.client_id,
            incident_id=incident_id,
            status=status,
            runbook=runbook,
            limit=limit,
            before=before,
        )
    next_before = views[-1].created_at if len(views) == limit else None
    return RunListOut(runs=[RunOut.of(v) for v in views], next_before=next_before)


@router.get("/runs/{run_id}", response_model=RunOut, responses=NOT_FOUND)
def get_run(
    run_id: str,
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RunOut:
    """One run: its status, the step in progress (what it waits for, until when), its steps."""
    with svc.store.read() as conn:
        return RunOut.of(run_reads.get_run(conn, who.client_id, run_id))


@router.post("/runs/{run_id}/cancel", response_model=RunOut, status_code=202, responses=NOT_FOUND | CONFLICT)
def cancel_run(
    run_id: str,
    who: Annotated[Principal, Depends(require("runs.cancel"))],
    svc: Annotated[AppServices, Depends(services)],
    body: CancelIn | None = None,
) -> RunOut:
    """Ask for the run to be cancelled; the executor ends it at once (a repeat changes nothing)."""
    reason = body.reason if body else ""
    with svc.store.write() as conn:
        view = run_admin.cancel_run(conn, who.client_id, run_id, who.actor, reason, svc.clock())
    return RunOut.of(view)


@router.get("/effectiveness", response_model=EffectivenessOut)
def effectiveness(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
    since: Annotated[float | None, Query(description="only runs created at or after (unix seconds)")] = None,
) -> EffectivenessOut:
    """Per runbook and per action: runs, success rate (verified recoveries / runs that ended, dry
    runs and cancels left out), escalations, median and p95 MTTR, the last runs."""
    with svc.store.read() as conn:
        return EffectivenessOut.of(run_effect.effectiveness(conn, who.client_id, svc.clock(), since))
