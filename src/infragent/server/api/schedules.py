"""Scheduled runbooks: list (each with its next run, its spec in words and its last run), create,
switch on or off, delete.

Reading is ``runs.read``; changing ``schedules.write`` (admin): a schedule makes the server act on
hosts at times nobody watches. A refusal is a ``ScheduleError`` (``store/schedule_specs.py``),
answered with its status and ``{"detail", "problems": [{"field", "message"}]}``: an unknown runbook
lists the runbooks this server loads, a bad cron names the field and its column, a bad zone says so.

The runbooks known are the ones the scheduler loaded (``runbooks_path``); with schedules switched off
(``schedules_enabled``) the file is read for the check alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schedule_schemas import (
    EnabledIn,
    ScheduleIn,
    ScheduleListOut,
    ScheduleOut,
    ScheduleProblemOut,
    ScheduleRefusedOut,
)
from infragent.server.scheduler import load_runbooks
from infragent.store import schedules as store
from infragent.store.schedule_specs import ScheduleError, spec_doc

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

Responses = dict[int | str, dict[str, Any]]
_MISSING: Responses = {404: {"model": ScheduleRefusedOut, "description": "no such schedule in the tenant"}}
_INVALID: Responses = {
    422: {"model": ScheduleRefusedOut, "description": "a field is invalid: `problems` names it"},
    409: {"model": ScheduleRefusedOut, "description": "the name is taken"},
}


def _refused(exc: ScheduleError) -> JSONResponse:
    problem = ScheduleProblemOut(field=exc.field, message=exc.message)
    body = ScheduleRefusedOut(detail=str(exc), problems=[problem])
    return JSONResponse(body.model_dump(), status_code=exc.status)


def _known(svc: AppServices) -> list[str]:
    if svc.scheduler is not None:
        return svc.scheduler.runbook_names()
    return sorted(load_runbooks(svc.settings))


@router.get("", response_model=ScheduleListOut)
def list_schedules(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ScheduleListOut:
    """The tenant's schedules by name."""
    with svc.store.read() as conn:
        found = store.list_schedules(conn, who.client_id)
    return ScheduleListOut(schedules=[ScheduleOut.of(s) for s in found])


@router.get("/{ident}", response_model=ScheduleOut, responses=_MISSING)
def get_schedule(
    ident: str,
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ScheduleOut | JSONResponse:
    """One schedule, by id or name."""
    try:
        with svc.store.read() as conn:
            return ScheduleOut.of(store.get_schedule(conn, who.client_id, ident))
    except ScheduleError as exc:
        return _refused(exc)


@router.post("", response_model=ScheduleOut, status_code=201, responses=_INVALID)
def create_schedule(
    body: ScheduleIn,
    who: Annotated[Principal, Depends(require("schedules.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ScheduleOut | JSONResponse:
    """A schedule of a loaded runbook: exactly one of ``cron`` (with ``timezone``), ``every`` (with
    ``start``) or ``at``; ``missed`` says what a run missed while no server was up becomes."""
    try:
        doc = spec_doc(cron=body.cron, every=body.every, start=body.start, at=body.at, tz=body.timezone)
        with svc.store.write() as conn:
            created = store.create_schedule(
                conn,
                who.client_id,
                name=body.name,
                runbook=body.runbook,
                spec=doc,
                tz=body.timezone,
                missed=body.missed,
                node_id=body.node_id,
                labels=body.labels,
                enabled=body.enabled,
                known_runbooks=_known(svc),
                now=svc.clock(),
                actor=who.actor,
            )
    except ScheduleError as exc:
        return _refused(exc)
    return ScheduleOut.of(created)


@router.patch("/{ident}", response_model=ScheduleOut, responses=_MISSING)
def switch_schedule(
    ident: str,
    body: EnabledIn,
    who: Annotated[Principal, Depends(require("schedules.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ScheduleOut | JSONResponse:
    """Switch a schedule on (its next run counted from now; runs due while it was off are not made
    up) or off."""
    try:
        with svc.store.write() as conn:
            changed = store.set_enabled(
                conn, who.client_id, ident, body.enabled, now=svc.clock(), actor=who.actor
            )
    except ScheduleError as exc:
        return _refused(exc)
    return ScheduleOut.of(changed)


@router.delete("/{ident}", status_code=204, responses=_MISSING)
def delete_schedule(
    ident: str,
    who: Annotated[Principal, Depends(require("schedules.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> Response:
    """Delete a schedule; the runs it started stay."""
    try:
        with svc.store.write() as conn:
            store.delete_schedule(conn, who.client_id, ident, now=svc.clock(), actor=who.actor)
    except ScheduleError as exc:
        return _refused(exc)
    return Response(status_code=204)
