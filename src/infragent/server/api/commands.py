"""Pull mode: agents that accept no inbound connections long-poll for their signed commands.

Why sign at delivery: the Standard Webhooks timestamp window (±300 s) must hold when the agent
verifies, so the signature is made when the command leaves, not when it was decided.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import Field

from infragent import signing
from infragent.model import ActionResult
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import Strict
from infragent.store import commands
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


@router.get(
    "/api/v1/agents/{node_id}/commands",
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
