"""Approvals: the requests for a person's yes before a command runs, and answering them
(``runs.read`` to list; ``approvals.decide`` to answer: operators and admins, never viewers).

Thin: one store call per route (``store/run_reads.py``, ``store/run_admin.py``). Who answered is
recorded as the principal's actor (``user:<id>`` for a signed-in user, ``key:<id>`` for a key),
as every other route records people's actions.

Refusals (``store/run_errors.py``, answered by ``server/app.py``): 404 for another tenant's
request; 409 with ``code`` ``decided`` (answered already: an answer is given once), ``ended``
(its run has ended) or ``expired`` (it ran out unanswered: it is stored as expired and the run
escalates; nothing was run). An expired request is refused *after* its expiry is committed
(``run_admin.Decided``), so the refusal and the stored state agree.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.run_schemas import ApprovalListOut, ApprovalOut, ApprovalStatusName, DecisionIn
from infragent.store import run_admin, run_reads

router = APIRouter(prefix="/api/v1/approvals", tags=["runs"])

ANSWER_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such approval request (another tenant's is the same)"},
    409: {
        "description": "answered already (`code`: decided), its run ended (ended), or it expired (expired)"
    },
}


@router.get("", response_model=ApprovalListOut)
def list_approvals(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: ApprovalStatusName | None = None,
    incident_id: str | None = None,
    run_id: str | None = None,
) -> ApprovalListOut:
    """The tenant's approval requests, newest first, with their expiry and the seconds left."""
    with svc.store.read() as conn:
        views = run_reads.list_approvals(
            conn, who.client_id, svc.clock(), status=status, incident_id=incident_id, run_id=run_id
        )
    return ApprovalListOut(approvals=[ApprovalOut.of(v) for v in views])


def _decide(
    svc: AppServices, who: Principal, approval_id: str, approve: bool, body: DecisionIn | None
) -> ApprovalOut:
    note = body.note if body else ""
    with svc.store.write() as conn:
        decided = run_admin.decide_approval(
            conn, who.client_id, approval_id, who.actor, approve, note, svc.clock()
        )
    return ApprovalOut.of(decided.checked())


@router.post("/{approval_id}/approve", response_model=ApprovalOut, responses=ANSWER_REFUSED)
def approve(
    approval_id: str,
    who: Annotated[Principal, Depends(require("approvals.decide"))],
    svc: Annotated[AppServices, Depends(services)],
    body: DecisionIn | None = None,
) -> ApprovalOut:
    """Approve the command: the run carries on with it at once (its guardrails are checked again)."""
    return _decide(svc, who, approval_id, True, body)


@router.post("/{approval_id}/reject", response_model=ApprovalOut, responses=ANSWER_REFUSED)
def reject(
    approval_id: str,
    who: Annotated[Principal, Depends(require("approvals.decide"))],
    svc: Annotated[AppServices, Depends(services)],
    body: DecisionIn | None = None,
) -> ApprovalOut:
    """Reject the command: it is never sent, and the run escalates."""
    return _decide(svc, who, approval_id, False, body)
