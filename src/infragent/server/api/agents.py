"""Agents and SDK instances announce themselves and the actions they allow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from infragent.model import ActionSpec
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import AgentIn, AgentOut
from infragent.store import agents, command_reads

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


class ActionOut(BaseModel):
    name: str
    params: dict[str, str] = Field(description="parameter name → regex its value must fully match")
    description: str


class AgentInfoOut(BaseModel):
    node_id: str
    kind: str
    command_mode: str
    actions: list[ActionOut]
    last_seen: float


class AgentsOut(BaseModel):
    agents: list[AgentInfoOut]


@router.get("", response_model=AgentsOut)
def list_agents(
    who: Annotated[Principal, Depends(require("hosts.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> AgentsOut:
    """The tenant's agents with the actions (and parameter patterns) remote control may run on them."""
    with svc.store.read() as conn:
        found = command_reads.list_agents(conn, who.client_id)
    return AgentsOut(
        agents=[
            AgentInfoOut(
                node_id=a.node_id,
                kind=a.kind,
                command_mode=a.command_mode,
                actions=[
                    ActionOut(name=x.name, params=x.params, description=x.description) for x in a.actions
                ],
                last_seen=a.last_seen,
            )
            for a in found
        ]
    )
