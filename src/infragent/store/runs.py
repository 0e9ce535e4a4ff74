"""Runbook runs: queued for an incident or a schedule, claimed under a fenced lease, saved per step.

Why a lease with an epoch: a run is carried out by one responder at a time, and a responder that
stalls (or is SIGKILLed) must not write after another took the run over. ``claim_runs`` bumps
``lease_epoch``; ``save_run`` writes only where the epoch is still the one it claimed with, else
``LeaseLostError`` and nothing changes. The run's state is written *before* its instruction is
carried out (``responder/executor.py``), so a responder that takes a run over after a crash
carries on with the same instruction, the same ``seq`` and the same command key: a command sent
before the crash is re-sent under the same id and refused by the receiver as a replay, never run
twice.

Why a run on an incident is the incident's decision: one decision per incident episode
(``store/remediation.py``). ``insert_run`` writes the ``decision`` timeline entry under the
tenant's lock, after checking the episode is undecided (``IncidentDecidedError`` otherwise), so
events of one incident claimed by two responders start one run.

``next_at``: when the run must be looked at again without news. Approvals and cancels set it to
now (``store/run_admin.py``); command results, recoveries and deadlines are polled at
``run_poll_s`` while a step waits on them.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from infragent.incidents.model import TimelineEntry
from infragent.responder.ports import LeaseLostError
from infragent.responder.run_codec import decode_run, encode_run, encode_value
from infragent.responder.run_ports import RunRow
from infragent.responder.step_core import new_run
from infragent.responder.step_run import ENDED, Run, RunStatus
from infragent.responder.steps import IncidentFacts, StepRunbook
from infragent.store import audit, remediation
from infragent.store import incidents as incident_rows
from infragent.store.runbook_schema import run_steps, runbook_runs

ACTIVE = tuple(s.value for s in RunStatus if s not in ENDED)


def insert_run(
    conn: sa.Connection,
    *,
    client_id: str,
    runbook: StepRunbook,
    facts: IncidentFacts,
    node_id: str | None,
    incident_id: str | None,
    now: float,
    actor: str,
    schedule_id: str | None = None,
    dry_run: bool = False,
) -> str:
    """Queue a run of ``runbook``; with an incident, it is the episode's decision (the module
    docstring). Returns the run id."""
    run_id = str(uuid.uuid4())
    if incident_id is not None:
        remediation.lock_and_check(conn, client_id, incident_id)
    run = new_run(run_id, runbook, facts, now)
    if dry_run:
        run = replace(run, dry_run=True)
    conn.execute(
        runbook_runs.insert().values(
            id=run_id,
            client_id=client_id,
            incident_id=incident_id,
            schedule_id=schedule_id,
            runbook=runbook.name,
            node_id=node_id,
            status=run.status.value,
            dry_run=run.dry_run,
            state=encode_run(run),
            next_at=now,
            lease_epoch=0,
            created_at=now,
            summary="",
        )
    )
    detail = {"run_id": run_id, "runbook": runbook.name, "node_id": node_id, "schedule_id": schedule_id}
    audit.append(conn, client_id, actor, "run.queued", run_id, detail | {"incident_id": incident_id}, now)
    if incident_id is not None:
        entry = TimelineEntry(now, "decision", actor, {"source": "runbook", "action": "run"} | detail)
        incident_rows.add_timeline(conn, client_id, incident_id, entry)
    return run_id


def _row(r: sa.Row[Any]) -> RunRow:
    return RunRow(
        id=r.id,
        client_id=r.client_id,
        incident_id=r.incident_id,
        schedule_id=r.schedule_id,
        node_id=r.node_id,
        runbook=r.runbook,
        run=decode_run(r.state),
        lease_epoch=r.lease_epoch,
        lease_owner=r.lease_owner,
        cancel_requested_by=r.cancel_requested_by,
        cancel_reason=r.cancel_reason,
    )


def claim_runs(conn: sa.Connection, worker: str, lease_s: float, now: float, limit: int = 20) -> list[RunRow]:
    """Lease the active runs that are due (``next_at`` reached) and not held by a live lease."""
    t = runbook_runs
    q = (
        sa.select(t)
        .where(
            t.c.status.in_(ACTIVE),
            sa.or_(t.c.next_at.is_(None), t.c.next_at <= now),
            sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now),
        )
        .order_by(t.c.next_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = conn.execute(q).all()
    out: list[RunRow] = []
    for r in rows:
        epoch = r.lease_epoch + 1
        conn.execute(
            t.update()
            .where(t.c.id == r.id)
            .values(lease_owner=worker, lease_until=now + lease_s, lease_epoch=epoch)
        )
        if r.lease_owner is not None and r.lease_owner != worker and r.lease_until is not None:
            audit.append(
                conn, r.client_id, f"responder:{worker}", "run.taken_over", r.id,
                {"from": r.lease_owner, "lease_until": r.lease_until}, now,
            )  # fmt: skip
        out.append(replace(_row(r), lease_owner=worker, lease_epoch=epoch))
    return out


def next_due(conn: sa.Connection, now: float) -> float | None:
    """When the earliest active run is due (its ``next_at`` or the end of a dead lease)."""
    t = runbook_runs
    due = conn.execute(
        sa.select(sa.func.min(sa.func.coalesce(t.c.next_at, now))).where(t.c.status.in_(ACTIVE))
    ).scalar()
    return None if due is None else float(due)


def save_run(
    conn: sa.Connection,
    row: RunRow,
    run: Run,
    *,
    now: float,
    actor: str,
    next_at: float | None,
    lease_s: float,
    release: bool = False,
    mttr_s: float | None = None,
) -> RunRow:
    """Store ``run`` if ``row``'s lease still holds (else ``LeaseLostError``): the state, its
    step results not stored yet (each audited as ``run.step``), the end (``run.ended``)."""
    t = runbook_runs
    values: dict[str, Any] = {
        "status": run.status.value,
        "outcome": run.outcome,
        "dry_run": run.dry_run,
        "state": encode_run(run),
        "next_at": None if run.ended else next_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "verified_at": run.verified_at,
        "summary": run.summary,
        "lease_until": None if release or run.ended else now + lease_s,
    }
    if release or run.ended:
        values["lease_owner"] = None
    if mttr_s is not None:
        values["mttr_s"] = mttr_s
    done = conn.execute(
        t.update().where(t.c.id == row.id, t.c.lease_epoch == row.lease_epoch).values(**values)
    )
    if done.rowcount != 1:
        raise LeaseLostError(f"run {row.id} was taken over by another responder")
    stored = set(conn.execute(sa.select(run_steps.c.seq).where(run_steps.c.run_id == row.id)).scalars())
    for result in run.results:
        if result.seq in stored:
            continue
        command = encode_value(result.command) if result.command is not None else None
        conn.execute(
            run_steps.insert().values(
                run_id=row.id,
                seq=result.seq,
                client_id=row.client_id,
                step_id=result.step_id,
                kind=result.kind,
                outcome=result.outcome,
                started_at=result.started_at,
                ended_at=result.ended_at,
                detail=result.detail[:4000],
                command=command,
                command_id=command_id_of(result.command.key) if result.command is not None else None,
            )
        )
        step = {"seq": result.seq, "step": result.step_id, "kind": result.kind, "outcome": result.outcome}
        audit.append(
            conn, row.client_id, actor, "run.step", row.id, step | {"detail": result.detail[:500]}, now
        )
        stored.add(result.seq)
    before = row.run
    detail: dict[str, Any]
    if run.ended and not before.ended:
        detail = {"status": run.status.value, "outcome": run.outcome, "summary": run.summary[:2000]}
        audit.append(conn, row.client_id, actor, "run.ended", row.id, detail | {"mttr_s": mttr_s}, now)
    elif run.status is not before.status or run.cursor != before.cursor:
        cursor = run.cursor
        detail = {"status": run.status.value}
        if cursor is not None:
            detail |= {"seq": cursor.seq, "step": cursor.step_id, "kind": cursor.instruction.kind}
        audit.append(conn, row.client_id, actor, "run.progress", row.id, detail, now)
    return RunRow(
        row.id,
        row.client_id,
        row.incident_id,
        row.schedule_id,
        row.node_id,
        row.runbook,
        run,
        row.lease_epoch,
        None if release or run.ended else row.lease_owner,
        row.cancel_requested_by,
        row.cancel_reason,
    )


#: The namespace of command ids derived from a run's command key: the same key, the same id.
_COMMANDS = uuid.UUID("6b2f3c1e-0a4d-4c36-9a55-6d1a0f1c2b7e")


def command_id_of(key: str) -> str:
    """The command id of a run's command key (``<run id>:<seq>``): stable across re-sends and
    responders, so a receiver refuses a second delivery as a replay."""
    return str(uuid.uuid5(_COMMANDS, key))


def release_run(conn: sa.Connection, row: RunRow, next_at: float) -> None:
    """Give the lease up until ``next_at``; ``LeaseLostError`` when it was taken over."""
    t = runbook_runs
    done = conn.execute(
        t.update()
        .where(t.c.id == row.id, t.c.lease_epoch == row.lease_epoch)
        .values(lease_owner=None, lease_until=None, next_at=next_at)
    )
    if done.rowcount != 1:
        raise LeaseLostError(f"run {row.id} was taken over by another responder")
