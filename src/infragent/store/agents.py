"""Agents and SDK instances: who may receive commands, with which actions, by push or pull.

Why an event may create its agent: an SDK reports before (or without) registering; the event still
needs an agent to be leased under, so ``ensure_agent`` adds a push-mode agent with no actions,
to which the responder can send nothing until it registers its allowlist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from infragent.model import ActionSpec
from infragent.store import audit
from infragent.store.records import AgentRecord
from infragent.store.schema import agents


def agent_from_row(row: sa.Row[Any]) -> AgentRecord:
    specs = tuple(
        ActionSpec(a["name"], dict(a.get("params", {})), a.get("description", "")) for a in row.actions
    )
    return AgentRecord(
        row.id,
        row.client_id,
        row.node_id,
        row.kind,
        row.command_mode,
        specs,
        row.last_seen,
        row.cooldown_until,
    )


def ensure_agent(conn: sa.Connection, client_id: str, node_id: str, now: float) -> str:
    """The id of the client's agent ``node_id``, seen now; created (push, no actions) if new."""
    found = conn.execute(
        sa.select(agents.c.id).where(agents.c.client_id == client_id, agents.c.node_id == node_id)
    ).scalar()
    if found is not None:
        conn.execute(agents.update().where(agents.c.id == found).values(last_seen=now))
        return str(found)
    # Two first events of a new node can arrive at once: insert-if-absent, then read whichever row won,
    # so the loser neither fails on the unique key nor creates a second agent.
    values = {
        "id": str(uuid.uuid4()),
        "client_id": client_id,
        "node_id": node_id,
        "kind": "sdk",
        "command_mode": "push",
        "actions": [],
        "labels": {},
        "last_seen": now,
    }
    insert = pg_insert(agents) if conn.dialect.name == "postgresql" else sqlite_insert(agents)
    conn.execute(insert.values(**values).on_conflict_do_nothing(index_elements=["client_id", "node_id"]))
    agent_id = conn.execute(
        sa.select(agents.c.id).where(agents.c.client_id == client_id, agents.c.node_id == node_id)
    ).scalar_one()
    return str(agent_id)


def register_agent(
    conn: sa.Connection,
    client_id: str,
    node_id: str,
    *,
    kind: str,
    command_mode: str,
    actions: Sequence[ActionSpec],
    labels: dict[str, str],
    now: float,
) -> AgentRecord:
    """Record (or replace) the agent's reported allowlist: all the responder may ever send it."""
    agent_id = ensure_agent(conn, client_id, node_id, now)
    conn.execute(
        agents.update()
        .where(agents.c.id == agent_id)
        .values(
            kind=kind,
            command_mode=command_mode,
            labels=labels,
            actions=[{"name": a.name, "params": a.params, "description": a.description} for a in actions],
        )
    )
    audit.append(
        conn,
        client_id,
        "api",
        "agent.registered",
        agent_id,
        {"node_id": node_id, "actions": [a.name for a in actions]},
        now,
    )
    return agent_from_row(conn.execute(sa.select(agents).where(agents.c.id == agent_id)).one())


def get_agent(conn: sa.Connection, client_id: str, node_id: str) -> AgentRecord | None:
    row = conn.execute(
        sa.select(agents).where(agents.c.client_id == client_id, agents.c.node_id == node_id)
    ).first()
    return agent_from_row(row) if row else None
