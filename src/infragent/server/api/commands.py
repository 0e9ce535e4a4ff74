"""Commands: remote control (a person asks an agent to run an allowlisted action), a command's status,
and pull mode (agents that accept no inbound connections long-poll for their signed commands).

Why sign at delivery: the Standard Webhooks timestamp window (±300 s) must hold when the agent
verifies, so the signature is made when the command leaves, not when it was decided.

Why ``{node_id:path}``: node ids may contain ``/`` (the SDK's default is ``<host>/<service>``); the
agent sends it percent-encoded, which the server decodes before routing, so a plain ``{node_id}``
segment would never match such an agent.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field

from infragent import signing
from infragent.model import ActionResult
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.remote import MAX_ACTION, MAX_REASON, MAX_TARGET, CommandRequest, Refused
from infragent.server.schemas import Strict
from infragent.store import commands
from infragent.store.command_reads import CommandView
from infragent.store.records import PulledCommand
from infragent.wire.commands import encode_command

router = APIRouter(tags=["commands"])
POLL_STEP_S = 0.25


class SignedCommandOut(Strict):
    headers: dict[str, str]
    body: str = Field(description="The raw JSON the signature covers; verify before parsing.")


class CommandsOut(Strict):
    commands: list[SignedCommandOut]


class ResultIn(Strict):
    status: Literal["ok", "error", "rejected", "timeout"]
    output: str = Field(default="", max_length=1_000_000)
    exit_code: int | None = None
    duration_ms: float | None = Field(default=None, ge=0)
    duplicate: bool = False


class CommandIn(Strict):
    action: str = Field(
        min_length=1, max_length=MAX_ACTION, description="An action on the agent's allowlist."
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="Each must be declared by the action and fully match its pattern."
    )
    target: str | None = Field(default=None, max_length=MAX_TARGET)
    reason: str = Field(default="", max_length=MAX_REASON, description="The decision's rationale.")


class CommandOut(BaseModel):
    command_id: str
    node_id: str
    command_mode: str
    action: str
    params: dict[str, str]
    target: str | None
    status: str = Field(description="queued, sent, done, failed, rejected or expired")
    finished: bool
    requested_by: str | None = Field(description="user:<id> or key:<id>; null: the responder's own")
    source: str = Field(description="user, runbook, llm or policy")
    reason: str
    incident_id: str | None
    created_at: float
    sent_at: float | None
    finished_at: float | None
    attempts: int
    http_status: int | None
    output: str | None = Field(description="What the action printed, credentials masked.")


def command_out(view: CommandView) -> CommandOut:
    return CommandOut(
        command_id=view.id,
        node_id=view.node_id,
        command_mode=view.command_mode,
        action=view.action,
        params=view.params,
        target=view.target,
        status=view.status,
        finished=view.finished,
        requested_by=view.requested_by,
        source=view.source,
        reason=view.reason,
        incident_id=view.incident_id,
        created_at=view.created_at,
        sent_at=view.sent_at,
        finished_at=view.finished_at,
        attempts=view.attempts,
        http_status=view.http_status,
        output=view.output,
    )


@router.post(
    "/api/v1/agents/{node_id:path}/commands",
    status_code=202,
    response_model=CommandOut,
    responses={
        404: {"description": "No such agent in this tenant."},
        409: {"description": "This action is already running on the agent."},
        422: {"description": "The action or a parameter is not allowed (the detail names it)."},
    },
)
def send_command(
    node_id: str,
    body: CommandIn,
    who: Annotated[Principal, Depends(require("commands.send"))],
    svc: Annotated[AppServices, Depends(services)],
) -> CommandOut:
    """Run an allowlisted action on an agent: checked like the responder's commands, recorded with
    who asked, queued for a pull agent or pushed (off the request) to a push agent."""
    request = CommandRequest(node_id, body.action, body.params, body.target, body.reason)
    outcome = svc.remote.send(who, request)
    if isinstance(outcome, Refused):
        raise HTTPException(status_code=outcome.status, detail=outcome.detail)
    return command_out(outcome)


@router.get("/api/v1/commands/{command_id}", response_model=CommandOut)
def get_command(
    command_id: str,
    who: Annotated[Principal, Depends(require("commands.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> CommandOut:
    view = svc.remote.view(who.client_id, command_id)
    if view is None:
        raise HTTPException(status_code=404, detail=f"command {command_id!r} not found")
    return command_out(view)


@router.get(
    "/api/v1/agents/{node_id:path}/commands",
    response_model=CommandsOut,
    responses={204: {"description": "No command arrived within `wait` seconds."}},
)
async def poll_commands(
    node_id: str,
    who: Annotated[Principal, Depends(require("commands.poll"))],
    svc: Annotated[AppServices, Depends(services)],
    wait: Annotated[float, Query(ge=0, le=30, description="Seconds to hold the request open.")] = 25.0,
) -> Response:
    ttl = svc.command_ttl_s
    deadline = time.monotonic() + wait

    def take() -> list[PulledCommand]:
        with svc.store.write() as conn:
            return commands.take(conn, who.client_id, node_id, svc.clock(), ttl)

    while True:
        pulled = await anyio.to_thread.run_sync(take)
        if pulled or time.monotonic() >= deadline:
            break
        await anyio.sleep(min(POLL_STEP_S, max(0.0, deadline - time.monotonic())))
    if not pulled:
        return Response(status_code=204)
    out = []
    for cmd in pulled:
        body = encode_command(cmd.command)
        out.append(
            SignedCommandOut(headers=signing.signed_headers(cmd.secret, cmd.id, body), body=body.decode())
        )
    return Response(CommandsOut(commands=out).model_dump_json(), media_type="application/json")


@router.post("/api/v1/commands/{command_id}/result")
def report_result(
    command_id: str,
    body: ResultIn,
    who: Annotated[Principal, Depends(require("commands.report"))],
    svc: Annotated[AppServices, Depends(services)],
) -> dict[str, bool]:
    output = body.output if body.exit_code is None else f"exit {body.exit_code}: {body.output}"
    result = ActionResult(status=body.status, output=output)
    with svc.store.write() as conn:
        recorded = commands.record_result(
            conn, who.client_id, command_id, result, svc.clock(), f"agent:{who.key_id}", mode="pull"
        )
    if not recorded:
        raise HTTPException(status_code=404, detail=f"command {command_id!r} not found")
    return {"recorded": True}
