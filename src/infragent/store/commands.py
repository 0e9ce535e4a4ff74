"""Decisions and the commands they imply: queued → sent → done | failed | rejected | expired.

Why one module for both delivery modes: a pushed command (the responder POSTs it) and a pulled one
(the agent fetches it) are the same row, built into the same ``wire.commands.Command`` by
``command_of`` and finished by the same ``record_result``; only who carries it differs.

Each step is also written on the incident the decision is about, in the same transaction
(``store/remediation.py``): the decision, the command sent or queued, its result, and the incident's
status (remediating once a command is on its way, escalated on an escalate decision).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa

from infragent.model import ActionResult, Decision
from infragent.redact import redact
from infragent.store import audit, remediation
from infragent.store import events as event_rows
from infragent.store.records import PulledCommand
from infragent.store.schema import agents, clients, commands, decisions
from infragent.wire.commands import STATUS_OF_RESULT, Command, CommandStatus

#: Stored output is capped; the audit entry keeps a shorter excerpt.
MAX_OUTPUT = 10_000
MAX_AUDIT_OUTPUT = 2_000


def record_decision(
    conn: sa.Connection,
    *,
    client_id: str,
    agent_id: str,
    event_ids: Sequence[str],
    decision: Decision,
    now: float,
    actor: str,
    incident_id: str | None = None,
    requested_by: str | None = None,
) -> tuple[str, str | None]:
    """Store the decision, the command it implies (queued) and the link from its events; with an
    incident, write it on the incident's timeline (escalated on an escalate decision).

    Returns (decision id, command id or None when the decision does not act). Raises
    ``IncidentDecidedError``, writing nothing, when the incident already has a decision since it
    (re)opened: one decision per incident episode. ``requested_by`` names the person or key that
    asked (remote control, ``server/remote.py``); None for the responder's own decisions.
    """
    if incident_id is not None:
        remediation.lock_and_check(conn, client_id, incident_id)
    decision_id = str(uuid.uuid4())
    command_id = str(uuid.uuid4()) if decision.acts else None
    conn.execute(
        decisions.insert().values(
            id=decision_id,
            client_id=client_id,
            agent_id=agent_id,
            source=decision.source,
            action=decision.action,
            target=decision.target,
            params=decision.params,
            rationale=decision.rationale,
            prompt=decision.prompt,
            answer=decision.answer,
            created_at=now,
            incident_id=incident_id,
        )
    )
    if command_id:
        conn.execute(
            commands.insert().values(
                id=command_id,
                client_id=client_id,
                agent_id=agent_id,
                decision_id=decision_id,
                action=decision.action,
                target=decision.target,
                params=decision.params,
                status=CommandStatus.QUEUED.value,
                created_at=now,
                attempts=0,
                requested_by=requested_by,
            )
        )
    event_rows.link_decision(conn, event_ids, decision_id)
    audit.append(
        conn,
        client_id,
        actor,
        "decision.made",
        decision_id,
        {
            "source": decision.source,
            "action": decision.action,
            "target": decision.target,
            "params": decision.params,
            "rationale": decision.rationale,
            "event_ids": list(event_ids),
            "command_id": command_id,
            "prompt": decision.prompt,
            "answer": decision.answer,
            "incident_id": incident_id,
        }
        | ({"requested_by": requested_by} if requested_by is not None else {}),
        now,
    )
    if incident_id is not None:
        remediation.on_decision(
            conn, client_id, incident_id, decision_id, decision, command_id, len(event_ids), now, actor
        )
    return decision_id, command_id


def _command_rows() -> sa.Select[Any]:
    return sa.select(commands, decisions.c.rationale, decisions.c.incident_id).join(
        decisions, decisions.c.id == commands.c.decision_id
    )


def command_of(conn: sa.Connection, row: sa.Row[Any], now: float, expires_at: float | None = None) -> Command:
    """The one place a command body is built: from the stored command, its decision and events.

    ``row`` is a row of ``_command_rows()``. A re-send after a crash therefore carries exactly what
    was decided, under the same id.
    """
    return Command(
        command_id=row.id,
        action=row.action,
        target=row.target,
        params=dict(row.params),
        event_ids=event_rows.decision_event_ids(conn, row.decision_id),
        reason=row.rationale,
        issued_at=now,
        expires_at=expires_at,
    )


def mark_sent(
    conn: sa.Connection, client_id: str, command_id: str, now: float, actor: str, url: str
) -> Command:
    """Mark a pushed command sent (before the POST: a crash after it must look "maybe delivered")."""
    conn.execute(
        commands.update()
        .where(commands.c.id == command_id)
        .values(status=CommandStatus.SENT.value, sent_at=now)
    )
    audit.append(conn, client_id, actor, "command.sent", command_id, {"url": url}, now)
    row = conn.execute(_command_rows().where(commands.c.id == command_id)).one()
    remediation.on_command(conn, client_id, row, "sent", now, actor)
    return command_of(conn, row, now)


def queue_for_pull(
    conn: sa.Connection, client_id: str, command_id: str, node_id: str, now: float, actor: str
) -> None:
    """Leave a decided command queued; it is signed and handed over when the agent polls."""
    audit.append(conn, client_id, actor, "command.queued", command_id, {"node_id": node_id}, now)
    row = conn.execute(_command_rows().where(commands.c.id == command_id)).one()
    remediation.on_command(conn, client_id, row, "queued", now, actor)


def take(
    conn: sa.Connection, client_id: str, node_id: str, now: float, ttl_s: float, limit: int = 10
) -> list[PulledCommand]:
    """Hand a pull-mode agent its queued commands (marking them sent); expire those older than ``ttl_s``."""
    q = (
        _command_rows()
        .join(agents, agents.c.id == commands.c.agent_id)
        .where(
            agents.c.client_id == client_id,
            agents.c.node_id == node_id,
            commands.c.status == CommandStatus.QUEUED.value,
        )
        .order_by(commands.c.created_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, of=commands)
    rows = conn.execute(q).all()
    if not rows:
        return []
    secret = conn.execute(sa.select(clients.c.webhook_secret).where(clients.c.id == client_id)).scalar_one()
    out: list[PulledCommand] = []
    for row in rows:
        expired = row.created_at < now - ttl_s
        status = CommandStatus.EXPIRED if expired else CommandStatus.SENT
        conn.execute(
            commands.update().where(commands.c.id == row.id).values(status=status.value, sent_at=now)
        )
        kind = "command.expired" if expired else "command.sent"
        audit.append(conn, client_id, f"agent:{node_id}", kind, row.id, {"mode": "pull"}, now)
        if expired:
            remediation.on_result(
                conn, client_id, row.incident_id, row.id, CommandStatus.EXPIRED, None, now, f"agent:{node_id}"
            )
        else:
            command = command_of(conn, row, now, expires_at=row.created_at + ttl_s)
            out.append(PulledCommand(secret, command))
    return out


def record_result(
    conn: sa.Connection,
    client_id: str,
    command_id: str,
    result: ActionResult,
    now: float,
    actor: str,
    mode: Literal["push", "pull"],
) -> bool:
    """Store what became of a command, pushed or pulled; False when it is not this client's.

    Only an open (queued or sent) command takes a result: a repeated report (an agent retried after
    a lost answer) changes nothing.
    """
    row = conn.execute(
        sa.select(commands.c.status, decisions.c.incident_id)
        .join(decisions, decisions.c.id == commands.c.decision_id)
        .where(commands.c.id == command_id, commands.c.client_id == client_id)
    ).first()
    if row is None:
        return False
    if not CommandStatus(row.status).open:
        return True
    # What an action printed is served back by the API and copied to the audit log; a credential in it
    # (a connection string, a token in a config dump) is masked once, here, for both.
    output = redact(result.output)
    status = STATUS_OF_RESULT[result.status]
    conn.execute(
        commands.update()
        .where(commands.c.id == command_id)
        .values(
            status=status.value,
            finished_at=now,
            attempts=result.attempts,
            http_status=result.http_status,
            output=output[:MAX_OUTPUT],
        )
    )
    detail = {
        "status": result.status,
        "http_status": result.http_status,
        "attempts": result.attempts,
        "output": output[:MAX_AUDIT_OUTPUT],
        "mode": mode,
    }
    if result.code is not None:
        detail["code"] = result.code
    audit.append(conn, client_id, actor, "command.result", command_id, detail, now)
    remediation.on_result(conn, client_id, row.incident_id, command_id, status, result, now, actor)
    return True
