"""Runbook runs, approvals and action history written the way the executor writes them, for the
tests of the runs API and its store reads.

Why not the executor: these tests are about what people read and change (views, cancel, answers,
guardrails); the rows come from the real store functions (``runs.insert_run``, ``runs.save_run``
with the pure core's ``next_step``) where they exist, and direct inserts of ``run_approvals`` and
``action_history`` rows, as ``store/runbook_schema.py`` describes them, where the executor's own
writers are not this branch's.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from infragent.responder import step_core
from infragent.responder.run_codec import decode_run
from infragent.responder.step_run import Observation, Run
from infragent.responder.steps import Act, IncidentFacts, Step, StepRunbook, Verify
from infragent.store import runs
from infragent.store.runbook_schema import action_history, run_approvals, runbook_runs
from infragent.store.sql import SqlStore

#: restart (needs a person's yes), then verify the signal recovered
APPROVED_RESTART = StepRunbook(
    "restart-web",
    (Step("restart", Act(action="restart", approval="required")), Step("verify", Verify(), timeout_s=60)),
)
PLAIN_RESTART = StepRunbook("plain-restart", (Step("restart", Act(action="restart")),))


def facts(host: str = "host-1") -> IncidentFacts:
    return IncidentFacts(incident_id="", severity="critical", service="web", node_id=host)


def queue_run(store: SqlStore, client_id: str, runbook: StepRunbook, now: float, host: str = "host-1") -> str:
    """A queued run (``runs.insert_run``), on no incident."""
    with store.write() as conn:
        return runs.insert_run(
            conn, client_id=client_id, runbook=runbook, facts=facts(host), node_id=host,
            incident_id=None, now=now, actor="responder:test",
        )  # fmt: skip


def advance(store: SqlStore, run_id: str, runbook: StepRunbook, observation: Observation, now: float) -> Run:
    """One decision of the pure core stored with ``runs.save_run`` under the run's current epoch."""
    with store.write() as conn:
        r = conn.execute(sa.select(runbook_runs).where(runbook_runs.c.id == run_id)).one()
        before = decode_run(r.state)
        row = runs.RunRow(
            r.id, r.client_id, r.incident_id, r.schedule_id, r.node_id, r.runbook, before, r.lease_epoch, None
        )
        run, _ = step_core.next_step(runbook, before, observation, now)
        runs.save_run(conn, row, run, now=now, actor="responder:test", next_at=now + 1, lease_s=30)
    return run


def add_approval(
    store: SqlStore, client_id: str, run_id: str, seq: int, now: float, expires_in: float = 900.0
) -> str:
    """A pending approval for the run's command of ``seq`` (what the executor asks on await_approval)."""
    approval_id = str(uuid.uuid4())
    with store.write() as conn:
        conn.execute(
            run_approvals.insert().values(
                id=approval_id, client_id=client_id, run_id=run_id, seq=seq, node_id="host-1",
                runbook=APPROVED_RESTART.name, action="restart", target="web", params={},
                source="runbook", reason="the runbook step requires approval", requested_at=now,
                expires_at=now + expires_in, status="pending",
            )
        )  # fmt: skip
    return approval_id


def add_action(
    store: SqlStore,
    client_id: str,
    run_id: str | None,
    action: str,
    at: float,
    outcome: str | None = "ok",
    *,
    shadow: bool = False,
    runbook: str = "plain-restart",
) -> None:
    with store.write() as conn:
        conn.execute(
            action_history.insert().values(
                client_id=client_id, node_id="host-1", action=action, at=at, automatic=True,
                shadow=shadow, run_id=run_id, runbook=runbook, command_id=str(uuid.uuid4()),
                outcome=outcome,
            )
        )  # fmt: skip


def end_run(store: SqlStore, run_id: str, **values: Any) -> None:
    """Set a run's end columns directly (status, outcome, ended_at, verified_at, mttr_s, dry_run):
    the effectiveness figures read only these."""
    with store.write() as conn:
        conn.execute(runbook_runs.update().where(runbook_runs.c.id == run_id).values(**values))


def row_of(store: SqlStore, run_id: str) -> Any:
    with store.read() as conn:
        return conn.execute(sa.select(runbook_runs).where(runbook_runs.c.id == run_id)).one()
