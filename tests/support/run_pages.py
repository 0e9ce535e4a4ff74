"""Runbook runs as the executor leaves them, for the pages' tests: queued through
``store/runs.insert_run``, driven by the pure core (``step_core.next_step``) and stored with
``runs.save_run`` after a ``claim_runs``, exactly the executor's writes; plus the approval request
the executor writes when a step waits for a person's yes.

Why drive the core rather than write rows: a page must show what a real run looks like (its state
decoded, its cursor, its step rows), and the core is the only thing that makes runs. The executor
(``responder/executor.py``) is not needed for that; the whole loop is the browser test's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from infragent.responder import step_core
from infragent.responder.run_codec import decode_run
from infragent.responder.step_run import (
    ApprovalDecision,
    AwaitApproval,
    CheckUp,
    CommandResult,
    Observation,
    Run,
    Start,
)
from infragent.responder.steps import (
    Act,
    Escalate,
    IncidentFacts,
    OnFailure,
    OnSuccess,
    Step,
    StepRunbook,
    Verify,
)
from infragent.store import runs
from infragent.store.runbook_schema import run_approvals, runbook_runs
from infragent.store.sql import SqlStore

#: The issue's runbook: restart (a person approves it), verify the check recovers, else escalate.
RESTART_WEB = StepRunbook(
    name="restart-web",
    steps=(
        Step(
            "restart", Act("restart", target="{service}", params={"name": "{service}"}, approval="required")
        ),
        Step("verify", Verify("check"), OnFailure("next"), timeout_s=120, on_success=OnSuccess("complete")),
        Step("page", Escalate("web did not recover after a restart")),
    ),
)
WORKER = "test-executor"


@dataclass(frozen=True, slots=True)
class Made:
    run_id: str
    approval_id: str | None


def _held(conn: sa.Connection, run_id: str) -> runs.RunRow:
    """The run as the executor holds it after a claim. Why not ``runs.claim_runs``: it leases every
    due run of every tenant at once, and the browser tests share one server between tests; the
    fence (``lease_epoch``) is the stored one, so ``save_run`` checks it as after a claim."""
    r = conn.execute(sa.select(runbook_runs).where(runbook_runs.c.id == run_id)).one()
    return runs.RunRow(
        r.id, r.client_id, r.incident_id, r.schedule_id, r.node_id, r.runbook, decode_run(r.state),
        r.lease_epoch, WORKER,
    )  # fmt: skip


def advance(store: SqlStore, run_id: str, obs: Observation, now: float, mttr_s: float | None = None) -> Run:
    """One executor turn: claim the run, feed ``obs`` to the core, save what it decided."""
    with store.write() as conn:
        row = _held(conn, run_id)
        run, _ = step_core.next_step(RESTART_WEB, row.run, obs, now)
        runs.save_run(conn, row, run, now=now, actor=f"responder:{WORKER}", next_at=now, lease_s=30.0,
                      release=True, mttr_s=mttr_s)  # fmt: skip
    return run


def waiting_run(store: SqlStore, client_id: str, incident_id: str, node: str, now: float) -> Made:
    """A run of ``RESTART_WEB`` for the incident, waiting for approval of its restart."""
    facts = IncidentFacts(incident_id, "critical", event_type="app_down", service="web", node_id=node)
    with store.write() as conn:
        run_id = runs.insert_run(
            conn, client_id=client_id, runbook=RESTART_WEB, facts=facts, node_id=node,
            incident_id=incident_id, now=now, actor="responder:test",
        )  # fmt: skip
    run = advance(store, run_id, Start(), now)
    cursor = run.cursor
    assert cursor is not None and isinstance(cursor.instruction, AwaitApproval)
    ask = cursor.instruction
    approval_id = str(uuid.uuid4())
    with store.write() as conn:
        conn.execute(
            run_approvals.insert().values(
                id=approval_id, client_id=client_id, run_id=run_id, seq=ask.seq, incident_id=incident_id,
                node_id=node, runbook=RESTART_WEB.name, action=ask.command.action, target=ask.command.target,
                params=ask.command.params, source=ask.command.source, reason=ask.reason, requested_at=now,
                expires_at=ask.expires_at, status="pending",
            )
        )  # fmt: skip
    return Made(run_id, approval_id)


def healed_run(store: SqlStore, client_id: str, incident_id: str, node: str, now: float) -> Made:
    """A run approved, sent, answered ok and verified (the check came back): completed, MTTR 12 s."""
    made = waiting_run(store, client_id, incident_id, node, now)
    advance(store, made.run_id, ApprovalDecision(1, "approved", "user:test"), now + 1)
    advance(store, made.run_id, CommandResult(1, "ok", "restarted web"), now + 2)
    run = advance(store, made.run_id, CheckUp(), now + 3, mttr_s=12.0)
    assert run.outcome == "completed" and run.verified_at is not None, run
    return made
