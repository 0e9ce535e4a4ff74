"""Push delivery: retries on 5xx and transport errors with the same command id, never on 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infragent import signing
from infragent.actions.webhook import WebhookDispatcher
from infragent.wire.commands import Command
from support.servers import free_port, serve

SECRET = signing.new_secret()


@dataclass
class Script:
    statuses: list[int]
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def script() -> Script:
    return Script([])


@pytest.fixture
def url(script: Script) -> Iterator[str]:
    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        signing.verify(SECRET, dict(request.headers), body)  # each attempt is validly signed
        script.seen.append(dict(request.headers))
        status = script.statuses.pop(0)
        return JSONResponse({"status": "ok" if status == 200 else "error", "output": f"got {status}"}, status)

    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        yield f"{base}/hook"


def _command(command_id: str) -> Command:
    return Command(command_id, "restart", None, {}, [], "test", 0.0)


def _dispatcher(sleeps: list[float]) -> WebhookDispatcher:
    return WebhookDispatcher(timeout_s=2, retries=3, sleep=sleeps.append)


def test_5xx_is_retried_with_the_same_id(script: Script, url: str) -> None:
    script.statuses = [503, 502, 200]
    sleeps: list[float] = []
    d = _dispatcher(sleeps)
    result = d.send(url, SECRET, _command("cmd-1"))
    d.close()
    assert (result.status, result.attempts, result.http_status) == ("ok", 3, 200)
    assert {h["webhook-id"] for h in script.seen} == {"cmd-1"} and len(sleeps) == 2
    assert all(0 <= s <= 10 for s in sleeps)


@pytest.mark.parametrize(("status", "expected"), [(400, "rejected"), (401, "rejected"), (422, "rejected")])
def test_4xx_is_final(script: Script, url: str, status: int, expected: str) -> None:
    script.statuses = [status]
    d = _dispatcher([])
    result = d.send(url, SECRET, _command("cmd-2"))
    d.close()
    assert (result.status, result.attempts) == (expected, 1) and len(script.seen) == 1


def test_5xx_until_retries_run_out(script: Script, url: str) -> None:
    script.statuses = [500] * 4
    d = _dispatcher([])
    result = d.send(url, SECRET, _command("cmd-3"))
    d.close()
    assert (result.status, result.attempts, result.http_status) == ("error", 4, 500)


def test_unreachable_receiver_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    d = _dispatcher(sleeps)
    result = d.send(f"http://127.0.0.1:{free_port()}/hook", SECRET, _command("cmd-4"))
    d.close()
    assert result.status == "unreachable" and result.attempts == 4 and len(sleeps) == 3
