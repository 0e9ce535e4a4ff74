"""Reads for remote control: one command as people see it, whether one is running, whose agents.

Why a module beside ``store/commands.py``: that one writes a command's life (decide, queue, send,
record); this one answers the questions of the API and the host page about it, read-only, so the
write path stays short and every read of a command is scoped to its tenant here, in one place.

Why a running command has an age limit: a command is *open* while queued or sent, but a pull agent
that never polls again (or a server that stopped mid-send) would leave it open for ever and refuse
every later request for that action. An open command older than the command TTL is past the point
where an agent would still run it (a pulled command carries ``expires_at`` = created + TTL), so it no
longer blocks a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from infragent.store.agents import agent_from_row
from infragent.store.records import AgentRecord
from infragent.store.schema import agents, commands, decisions
from infragent.wire.commands import CommandStatus

_OPEN = (CommandStatus.QUEUED.value, CommandStatus.SENT.value)


@dataclass(frozen=True, slots=True)
class CommandView:
    """A command with its agent and the decision that asked for it: what the API and page show.

    ``output`` is stored redacted (``commands.record_result`` masks credentials once, for both the
    row and the audit log); ``requested_by`` is ``user:<id>`` / ``key:<id>``, None for the responder's.
    """

    id: str
    node_id: str
    command_mode: str
    action: str
    params: dict[str, str]
    target: str | None
    status: str
    requested_by: str | None
    source: str
    reason: str
    incident_id: str | None
    created_at: float
    sent_at: float | None
    finished_at: float | None
    attempts: int
    http_status: int | None
    output: str | None

    @property
    def finished(self) -> bool:
        """No further status change will come (done, failed, rejected or expired)."""
        return not CommandStatus(self.status).open


def _view(row: sa.Row[Any]) -> CommandView:
    return CommandView(
        id=row.id,
        node_id=row.node_id,
        command_mode=row.command_mode,
        action=row.action,
        params=dict(row.params),
        target=row.target,
        status=row.status,
        requested_by=row.requested_by,
        source=row.source,
        reason=row.rationale,
        incident_id=row.incident_id,
        created_at=row.created_at,
        sent_at=row.sent_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        http_status=row.http_status,
        output=row.output,
    )


def _views() -> sa.Select[Any]:
    return (
        sa.select(
            commands,
            agents.c.node_id,
            agents.c.command_mode,
            decisions.c.source,
            decisions.c.rationale,
            decisions.c.incident_id,
        )
        .join(agents, agents.c.id == commands.c.agent_id)
        .join(decisions, decisions.c.id == commands.c.decision_id)
    )


def get_command(conn: sa.Connection, client_id: str, command_id: str) -> CommandView | None:
    """The tenant's command ``command_id``; None when there is none (or it is another tenant's)."""
    row = conn.execute(_views().where(commands.c.id == command_id, commands.c.client_id == client_id)).first()
    return _view(row) if row is not None else None


def recent_commands(
    conn: sa.Connection, client_id: str, node_ids: list[str], limit: int = 10
) -> list[CommandView]:
    """The newest commands of these agents (the host page's recent remote-control runs)."""
    if not node_ids:
        return []
    rows = conn.execute(
        _views()
        .where(commands.c.client_id == client_id, agents.c.node_id.in_(node_ids))
        .order_by(commands.c.created_at.desc(), commands.c.id)
        .limit(limit)
    ).all()
    return [_view(r) for r in rows]


def running_command(
    conn: sa.Connection, client_id: str, agent_id: str, action: str, since: float
) -> str | None:
    """The id of an open command of ``action`` on the agent created at or after ``since``, if any."""
    found = conn.execute(
        sa.select(commands.c.id)
        .where(
            commands.c.client_id == client_id,
            commands.c.agent_id == agent_id,
            commands.c.action == action,
            commands.c.status.in_(_OPEN),
            commands.c.created_at >= since,
        )
        .order_by(commands.c.created_at.desc())
        .limit(1)
    ).scalar()
    return str(found) if found is not None else None


def list_agents(conn: sa.Connection, client_id: str) -> list[AgentRecord]:
    """The tenant's agents and SDK instances, by node id."""
    rows = conn.execute(sa.select(agents).where(agents.c.client_id == client_id).order_by(agents.c.node_id))
    return [agent_from_row(r) for r in rows]


def host_agent_filter(host: str) -> sa.ColumnElement[bool]:
    """The agents on ``host``: the host agent (node id = host) and the SDK instances named
    ``<host>/<service>`` (the SDK's default node id). One rule for the host page and its commands."""
    return sa.or_(agents.c.node_id == host, agents.c.node_id.startswith(f"{host}/", autoescape=True))


def host_agents(conn: sa.Connection, client_id: str, host: str) -> list[AgentRecord]:
    """The agents on ``host`` (``host_agent_filter``), by node id, with their allowlists."""
    rows = conn.execute(
        sa.select(agents)
        .where(agents.c.client_id == client_id, host_agent_filter(host))
        .order_by(agents.c.node_id)
    )
    return [agent_from_row(r) for r in rows]
