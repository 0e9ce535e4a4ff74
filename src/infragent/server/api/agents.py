"""Agents and SDK instances announce themselves and the actions they allow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from infragent.model import ActionSpec
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import AgentIn, AgentOut
from infragent.store import agents

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.post("", response_model=AgentOut)
def register_agent(
    body: AgentIn,
    who: Annotated[Principal, Depends(require("agents.register"))],
    svc: Annotated[AppServices, Depends(services)],
) -> AgentOut:
    """The reported allowlist is what the responder may ever send to this agent."""
    with svc.store.write() as conn:
        agent = agents.register_agent(
            conn,
            who.client_id,
            body.node_id,
            kind=body.kind,
            command_mode=body.command_mode,
            actions=[ActionSpec(a.name, a.params, a.description) for a in body.actions],
            labels=body.labels,
            now=svc.clock(),
        )
    return AgentOut(
        id=agent.id,
        node_id=agent.node_id,
        kind=agent.kind,
        command_mode=agent.command_mode,
        actions=[a.name for a in agent.actions],
        last_seen=agent.last_seen,
    )
