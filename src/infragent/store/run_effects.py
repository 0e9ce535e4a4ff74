"""What a runbook run's step does to the world, written in the transaction that saves the step.

Why here and together: each effect must commit with the run state that caused it
(``responder/run_ports.py`` says why): a command recorded (decision, command, action history), an
approval requested (and notified), a would-be command recorded in shadow mode, a runbook's note,
and the end of a run on its incident (escalated with the summary, or resolved with its MTTR).
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from infragent.incidents.core import can_move
from infragent.incidents.model import IncidentStatus, TimelineEntry
from infragent.model import Decision
from infragent.redact import redact
from infragent.responder.run_ports import Receiver, RunRow, Sending
from infragent.responder.step_run import AwaitApproval, Command
from infragent.store import audit, outbox, remediation
from infragent.store import commands as command_rows
from infragent.store import incidents as incident_rows
from infragent.store.incident_reads import get_incident
from infragent.store.runbook_schema import action_history, run_approvals
from infragent.store.runs import command_id_of
from infragent.store.schema import agents, commands, decisions
from infragent.wire.commands import CommandStatus


def record_command(
    conn: sa.Connection, row: RunRow, command: Command, receiver: Receiver, now: float, actor: str
) -> Sending:
    """The run's command as a decision + command row (id from its key) + an action-history row;
    a second call for the same key returns the stored command (a resume)."""
    command_id = command_id_of(command.key)
    found = conn.execute(sa.select(commands.c.status).where(commands.c.id == command_id)).first()
    if found is not None:
        return Sending(command_id, None, str(found.status))
    agent_id = conn.execute(
        sa.select(agents.c.id).where(
            agents.c.client_id == row.client_id, agents.c.node_id == receiver.node_id
        )
    ).scalar_one()
    decision_id = str(uuid.uuid4())
    why = f"runbook {row.runbook!r} step {command.key.rsplit(':', 1)[-1]} (run {row.id})"
    if command.approved_by:
        why += f", approved by {command.approved_by}"
    decision = Decision(command.source, command.action, why, command.target, dict(command.params))
    conn.execute(
        decisions.insert().values(
            id=decision_id,
            client_id=row.client_id,
            agent_id=agent_id,
            source=command.source,
            action=command.action,
            target=command.target,
            params=dict(command.params),
            rationale=why,
            created_at=now,
            incident_id=row.incident_id,
        )
    )
    conn.execute(
        commands.insert().values(
            id=command_id,
            client_id=row.client_id,
            agent_id=agent_id,
            decision_id=decision_id,
            action=command.action,
            target=command.target,
            params=dict(command.params),
            status=CommandStatus.QUEUED.value,
            created_at=now,
            attempts=0,
        )
    )
    conn.execute(
        action_history.insert().values(
            client_id=row.client_id,
            node_id=receiver.node_id,
            action=command.action,
            at=now,
            automatic=True,
            shadow=False,
            run_id=row.id,
            runbook=row.runbook,
            command_id=command_id,
            incident_id=row.incident_id,
        )
    )
    detail = {
        "run_id": row.id,
        "action": command.action,
        "target": command.target,
        "params": dict(command.params),
        "command_id": command_id,
        "approved_by": command.approved_by,
    }
    audit.append(
        conn, row.client_id, actor, "decision.made", decision_id, detail | {"source": command.source}, now
    )
    if row.incident_id is not None:
        remediation.on_decision(
            conn, row.client_id, row.incident_id, decision_id, decision, command_id, 0, now, actor
        )
    if receiver.command_mode == "pull":
        command_rows.queue_for_pull(conn, row.client_id, command_id, receiver.node_id, now, actor)
    return Sending(command_id, None, CommandStatus.QUEUED.value)


def record_would_send(conn: sa.Connection, row: RunRow, command: Command, now: float, actor: str) -> None:
    """Shadow mode or a dry run: exactly what would have been sent, and nothing sent."""
    conn.execute(
        action_history.insert().values(
            client_id=row.client_id,
            node_id=row.node_id or "",
            action=command.action,
            at=now,
            automatic=True,
            shadow=True,
            run_id=row.id,
            runbook=row.runbook,
            incident_id=row.incident_id,
            outcome="would_send",
        )
    )
    detail = {
        "run_id": row.id,
        "node_id": row.node_id,
        "action": command.action,
        "target": command.target,
        "params": dict(command.params),
        "key": command.key,
    }
    audit.append(conn, row.client_id, actor, "command.would_send", row.id, detail, now)
    if row.incident_id is not None:
        entry = TimelineEntry(now, "command", actor, detail | {"status": "would_send"})
        incident_rows.add_timeline(conn, row.client_id, row.incident_id, entry)


def request_approval(conn: sa.Connection, row: RunRow, ask: AwaitApproval, now: float, actor: str) -> None:
    """A pending approval of the exact command (once per run step), notified to the routes that
    notify on ``approval`` and put on the incident's timeline."""
    exists = conn.execute(
        sa.select(run_approvals.c.id).where(run_approvals.c.run_id == row.id, run_approvals.c.seq == ask.seq)
    ).first()
    if exists is not None:
        return
    approval_id = str(uuid.uuid4())
    command = ask.command
    conn.execute(
        run_approvals.insert().values(
            id=approval_id,
            client_id=row.client_id,
            run_id=row.id,
            seq=ask.seq,
            incident_id=row.incident_id,
            node_id=row.node_id,
            runbook=row.runbook,
            action=command.action,
            target=command.target,
            params=dict(command.params),
            source=command.source,
            reason=ask.reason or "approval required",
            requested_at=now,
            expires_at=ask.expires_at,
            status="pending",
        )
    )
    detail: dict[str, Any] = {
        "approval_id": approval_id,
        "run_id": row.id,
        "runbook": row.runbook,
        "node_id": row.node_id,
        "action": command.action,
        "target": command.target,
        "params": dict(command.params),
        "reason": ask.reason,
        "expires_at": ask.expires_at,
    }
    audit.append(conn, row.client_id, actor, "approval.requested", approval_id, detail, now)
    if row.incident_id is not None:
        entry = TimelineEntry(
            now, "decision", actor, detail | {"source": command.source, "action": "approval"}
        )
        incident_rows.add_timeline(conn, row.client_id, row.incident_id, entry)
        outbox.enqueue_change(conn, row.client_id, row.incident_id, "approval", now, detail)


def expire_approval(conn: sa.Connection, row: RunRow, seq: int, now: float, actor: str) -> None:
    """Mark the step's pending approval expired (the core ended the step: nothing was run)."""
    done = conn.execute(
        run_approvals.update()
        .where(
            run_approvals.c.run_id == row.id, run_approvals.c.seq == seq, run_approvals.c.status == "pending"
        )
        .values(status="expired", decided_by="expiry", decided_at=now)
    )
    if done.rowcount:
        audit.append(conn, row.client_id, actor, "approval.expired", row.id, {"seq": seq}, now)


def note(conn: sa.Connection, row: RunRow, message: str, now: float, actor: str) -> None:
    """A runbook's ``notify`` step: on the incident's timeline (audited)."""
    text = redact(message)[:2000]
    if row.incident_id is not None:
        incident_rows.add_note(conn, row.client_id, row.incident_id, actor, text, now)
    else:
        audit.append(conn, row.client_id, actor, "run.notify", row.id, {"text": text}, now)


def escalate(conn: sa.Connection, row: RunRow, summary: str, now: float, actor: str) -> None:
    """Hand the incident to a person with the run's summary (notified through the outbox)."""
    if row.incident_id is None:
        audit.append(conn, row.client_id, actor, "run.escalated", row.id, {"summary": summary[:2000]}, now)
        return
    incident = get_incident(conn, row.client_id, row.incident_id)
    text = f"escalated by runbook {row.runbook!r}: {redact(summary)[:2000]}"
    if incident is not None and can_move(incident.status, IncidentStatus.ESCALATED):
        incident_rows.set_status(
            conn, row.client_id, row.incident_id, IncidentStatus.ESCALATED, actor, now, text
        )
    else:
        incident_rows.add_note(conn, row.client_id, row.incident_id, actor, text, now)


def resolve(conn: sa.Connection, row: RunRow, summary: str, now: float, actor: str) -> float | None:
    """A verified recovery resolves the incident; the MTTR from the episode's start (opened, or
    the last reopening) to now. None when there is no incident (a scheduled run)."""
    if row.incident_id is None:
        return None
    incident = get_incident(conn, row.client_id, row.incident_id)
    if incident is None:
        return None
    start = max((incident.opened_at, *incident.reopened_at))
    # an alert's incident is resolved by the evaluator as the alert clears: recovered then
    end = incident.resolved_at if incident.status == IncidentStatus.RESOLVED and incident.resolved_at else now
    mttr = max(0.0, end - start)
    text = f"recovery verified by runbook {row.runbook!r} in {mttr:.1f} s: {redact(summary)[:1500]}"
    if can_move(incident.status, IncidentStatus.RESOLVED):
        incident_rows.set_status(
            conn, row.client_id, row.incident_id, IncidentStatus.RESOLVED, actor, now, text
        )
    else:
        incident_rows.add_note(conn, row.client_id, row.incident_id, actor, text, now)
    return mttr
