"""Reading runbook runs, approvals and guardrails back for people (the API, the pages, the CLI).

The executor (``responder/executor.py`` through ``store/runs.py``) writes the runs and their steps;
this module only reads them. Every read is scoped by ``client_id``: another tenant's run or
approval reads as missing (404).

What a run view shows of the step in progress: the run's stored state (``runbook_runs.state``,
decoded by ``responder/run_codec.py``) holds a ``Cursor`` with the instruction the executor was
given for it; ``waiting_for`` names what that instruction waits on (``INSTRUCTION_WAITS``), and
``deadline`` when the executor looks again without news. A state that cannot be decoded (a row
written by a newer version) shows no current step rather than failing the whole list.

Why an approval's status is computed at ``now``: a pending request past its ``expires_at`` is
already expired for everyone (``approval.Approval.status_at``), whether or not the executor has
stored that yet, so the list never offers a button that would be refused.

Guardrails are read by ``store/guard_reads.py``; effectiveness (success rate and MTTR per runbook
and per action) by ``store/run_effect.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from infragent.errors import StoreError
from infragent.responder.run_codec import decode_run
from infragent.store.run_errors import RunNotFoundError
from infragent.store.runbook_schema import run_approvals, run_steps, runbook_runs

logger = logging.getLogger(__name__)

MAX_PAGE: Final = 200
#: instruction kind → what a step with that instruction in progress waits for.
INSTRUCTION_WAITS: Final[Mapping[str, str]] = {
    "send_command": "command",
    "would_send": "nothing",
    "start_wait": "time",
    "evaluate_check": "check",
    "await_approval": "approval",
    "await_recovery": "recovery",
    "notify": "notification",
    "ask_llm": "llm",
}


@dataclass(frozen=True, slots=True)
class StepView:
    """One step execution that ended (a ``run_steps`` row), with the command it decided, if any."""

    seq: int
    step_id: str
    kind: str
    outcome: str
    started_at: float
    ended_at: float
    detail: str
    action: str | None
    target: str | None
    params: dict[str, str]
    #: who proposed the command: runbook | llm (None: no command)
    source: str | None
    approved_by: str | None
    command_id: str | None


@dataclass(frozen=True, slots=True)
class CurrentStep:
    """The step execution in progress: what it waits for and until when."""

    step_id: str
    kind: str
    seq: int
    started_at: float
    #: the instruction the executor carries out (``step_run`` kinds: send_command, await_approval…)
    instruction: str
    #: command | time | check | approval | recovery | notification | llm | nothing
    waiting_for: str
    deadline: float | None
    action: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class RunView:
    id: str
    runbook: str
    incident_id: str | None
    schedule_id: str | None
    node_id: str | None
    status: str
    outcome: str | None
    dry_run: bool
    created_at: float
    started_at: float | None
    ended_at: float | None
    verified_at: float | None
    mttr_s: float | None
    summary: str
    cancel_requested_by: str | None
    cancel_reason: str | None
    current: CurrentStep | None
    steps: tuple[StepView, ...]


@dataclass(frozen=True, slots=True)
class ApprovalView:
    id: str
    run_id: str
    seq: int
    incident_id: str | None
    node_id: str | None
    runbook: str
    action: str
    target: str | None
    params: dict[str, str]
    source: str
    reason: str
    requested_at: float
    expires_at: float
    #: the status at ``now``: a pending request past ``expires_at`` is ``expired``
    status: str
    #: seconds until it expires (0 once it is no longer pending)
    seconds_left: float
    decided_by: str | None
    decided_at: float | None
    note: str | None


def _current(state: Mapping[str, Any], run_id: str) -> CurrentStep | None:
    try:
        run = decode_run(state)
    except StoreError:
        logger.warning("run %s: stored state cannot be read; no current step shown", run_id)
        return None
    cursor = run.cursor
    if cursor is None or run.ended:
        return None
    ins = cursor.instruction
    deadline = cursor.deadline
    for name in ("deadline", "until", "expires_at"):
        if deadline is None and isinstance(getattr(ins, name, None), int | float):
            deadline = float(getattr(ins, name))
    command = cursor.command or getattr(ins, "command", None)
    return CurrentStep(
        step_id=cursor.step_id,
        kind=str(cursor.step_kind),
        seq=cursor.seq,
        started_at=cursor.started_at,
        instruction=ins.kind,
        waiting_for=INSTRUCTION_WAITS.get(ins.kind, "nothing"),
        deadline=deadline,
        action=command.action if command is not None else None,
        target=command.target if command is not None else None,
    )


def _step(r: Any) -> StepView:
    command = r.command if isinstance(r.command, dict) else {}
    params = command.get("params") if isinstance(command.get("params"), dict) else {}
    return StepView(
        seq=int(r.seq),
        step_id=r.step_id,
        kind=r.kind,
        outcome=r.outcome,
        started_at=float(r.started_at),
        ended_at=float(r.ended_at),
        detail=r.detail,
        action=command.get("action"),
        target=command.get("target"),
        params={str(k): str(v) for k, v in (params or {}).items()},
        source=command.get("source"),
        approved_by=command.get("approved_by"),
        command_id=r.command_id,
    )


def _steps_of(conn: sa.Connection, client_id: str, run_ids: Sequence[str]) -> dict[str, list[StepView]]:
    if not run_ids:
        return {}
    s = run_steps.c
    rows = conn.execute(
        sa.select(run_steps)
        .where(s.client_id == client_id, s.run_id.in_(list(run_ids)))
        .order_by(s.run_id, s.seq)
    )
    out: dict[str, list[StepView]] = {}
    for r in rows:
        out.setdefault(r.run_id, []).append(_step(r))
    return out


def _view(r: Any, steps: list[StepView]) -> RunView:
    return RunView(
        id=r.id,
        runbook=r.runbook,
        incident_id=r.incident_id,
        schedule_id=r.schedule_id,
        node_id=r.node_id,
        status=r.status,
        outcome=r.outcome,
        dry_run=bool(r.dry_run),
        created_at=float(r.created_at),
        started_at=r.started_at,
        ended_at=r.ended_at,
        verified_at=r.verified_at,
        mttr_s=r.mttr_s,
        summary=r.summary,
        cancel_requested_by=r.cancel_requested_by,
        cancel_reason=r.cancel_reason,
        current=_current(r.state, r.id),
        steps=tuple(steps),
    )


def list_runs(
    conn: sa.Connection,
    client_id: str,
    *,
    incident_id: str | None = None,
    status: str | None = None,
    runbook: str | None = None,
    limit: int = 50,
    before: float | None = None,
) -> list[RunView]:
    """The tenant's runs, newest first, at most ``limit`` (capped at ``MAX_PAGE``); ``before``
    (a ``created_at``) pages back: pass the last run's ``created_at``."""
    t = runbook_runs.c
    q = sa.select(runbook_runs).where(t.client_id == client_id)
    if incident_id is not None:
        q = q.where(t.incident_id == incident_id)
    if status is not None:
        q = q.where(t.status == status)
    if runbook is not None:
        q = q.where(t.runbook == runbook)
    if before is not None:
        q = q.where(t.created_at < before)
    limit = max(1, min(limit, MAX_PAGE))
    rows = conn.execute(q.order_by(t.created_at.desc(), t.id.desc()).limit(limit)).all()
    steps = _steps_of(conn, client_id, [r.id for r in rows])
    return [_view(r, steps.get(r.id, [])) for r in rows]


def get_run(conn: sa.Connection, client_id: str, run_id: str) -> RunView:
    """One run with its steps; ``RunNotFoundError`` when the tenant has no such run."""
    t = runbook_runs.c
    r = conn.execute(sa.select(runbook_runs).where(t.client_id == client_id, t.id == run_id)).first()
    if r is None:
        raise RunNotFoundError("run", run_id)
    return _view(r, _steps_of(conn, client_id, [run_id]).get(run_id, []))


def _approval(r: Any, now: float) -> ApprovalView:
    pending = r.status == "pending"
    status = "expired" if pending and not now < r.expires_at else r.status
    params = r.params if isinstance(r.params, dict) else {}
    return ApprovalView(
        id=r.id,
        run_id=r.run_id,
        seq=int(r.seq),
        incident_id=r.incident_id,
        node_id=r.node_id,
        runbook=r.runbook,
        action=r.action,
        target=r.target,
        params={str(k): str(v) for k, v in params.items()},
        source=r.source,
        reason=r.reason,
        requested_at=float(r.requested_at),
        expires_at=float(r.expires_at),
        status=status,
        seconds_left=max(0.0, float(r.expires_at) - now) if status == "pending" else 0.0,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        note=r.note,
    )


def list_approvals(
    conn: sa.Connection,
    client_id: str,
    now: float,
    *,
    status: str | None = None,
    incident_id: str | None = None,
    run_id: str | None = None,
    limit: int = 100,
) -> list[ApprovalView]:
    """The tenant's approval requests, newest first; ``status`` is the status at ``now`` (a
    pending request past its expiry is listed as expired, not pending)."""
    a = run_approvals.c
    q = sa.select(run_approvals).where(a.client_id == client_id)
    if status == "pending":
        q = q.where(a.status == "pending", a.expires_at > now)
    elif status == "expired":
        q = q.where(sa.or_(a.status == "expired", sa.and_(a.status == "pending", a.expires_at <= now)))
    elif status is not None:
        q = q.where(a.status == status)
    if incident_id is not None:
        q = q.where(a.incident_id == incident_id)
    if run_id is not None:
        q = q.where(a.run_id == run_id)
    limit = max(1, min(limit, MAX_PAGE))
    rows = conn.execute(q.order_by(a.requested_at.desc(), a.id.desc()).limit(limit))
    return [_approval(r, now) for r in rows]


def get_approval(conn: sa.Connection, client_id: str, approval_id: str, now: float) -> ApprovalView:
    """One approval request; ``RunNotFoundError`` when the tenant has no such request."""
    a = run_approvals.c
    r = conn.execute(sa.select(run_approvals).where(a.client_id == client_id, a.id == approval_id)).first()
    if r is None:
        raise RunNotFoundError("approval", approval_id)
    return _approval(r, now)
