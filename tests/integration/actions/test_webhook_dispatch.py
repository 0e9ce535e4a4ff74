"""Push delivery: retries on 5xx and transport errors with the same command id, never on 4xx; the
receiver's machine-readable ``code`` reaches ``ActionResult.code``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infragent import signing
from infragent.actions.webhook import WebhookDispatcher
from infragent.outbound.policy import OutboundPolicy
from infragent.sdk import Client
from infragent.wire.commands import Command, decode_command
from support.servers import closed_port, serve

SECRET = signing.new_secret()


@dataclass
class Script:
    statuses: list[int]
    seen: list[dict[str, str]] = field(default_factory=list)
    retry_after: str | None = None


@pytest.fixture
def script() -> Script:
    return Script([])


@pytest.fixture
def url(script: Script) -> Iterator[str]:
    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        signing.verify(SECRET, dict(request.headers), body)  # each attempt is validly signed
        assert decode_command(body).command_id == request.headers["webhook-id"]  # a typed Command
        script.seen.append(dict(request.headers))
        status = script.statuses.pop(0)
        headers = {"Retry-After": script.retry_after} if script.retry_after and status != 200 else None
        body = {"status": "ok" if status == 200 else "error", "output": f"got {status}"}
        return JSONResponse(body, status, headers=headers)

    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        yield f"{base}/hook"


def _dispatcher(sleeps: list[float]) -> WebhookDispatcher:
    loopback = OutboundPolicy.from_cidrs(["127.0.0.0/8"])  # the receiver runs on this machine
    return WebhookDispatcher(policy=loopback, timeout_s=2, retries=3, sleep=sleeps.append)


def _command(command_id: str, action: str = "restart", **params: str) -> Command:
    return Command(
        command_id=command_id,
        action=action,
        target="web-1",
        params=params,
        event_ids=["ev-1"],
        reason="app_down on web-1",
        issued_at=1_750_000_000.0,
    )


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
    result = d.send(f"http://127.0.0.1:{closed_port()}/hook", SECRET, _command("cmd-4"))
    d.close()
    assert result.status == "unreachable" and result.attempts == 4 and len(sleeps) == 3


@pytest.mark.parametrize("status", [408, 425, 429])
def test_ask_again_later_is_retried_honouring_retry_after(script: Script, url: str, status: int) -> None:
    script.statuses = [status, 200]
    script.retry_after = "1.5"
    sleeps: list[float] = []
    d = _dispatcher(sleeps)
    result = d.send(url, SECRET, _command("cmd-5"))
    d.close()
    assert (result.status, result.attempts) == ("ok", 2)
    assert sleeps == [1.5]  # the receiver's Retry-After is the floor of the jittered wait


@pytest.mark.parametrize("status", [501, 505])
def test_not_implemented_is_final(script: Script, url: str, status: int) -> None:
    script.statuses = [status]
    d = _dispatcher([])
    result = d.send(url, SECRET, _command("cmd-6"))
    d.close()
    assert (result.status, result.attempts, result.http_status) == ("error", 1, status)


@pytest.fixture
def sdk_hook(tmp_path: Path) -> Iterator[tuple[Client, str]]:
    """A real SDK webhook app (its own command ledger) under uvicorn on port 0."""
    client = Client("http://127.0.0.1:9", "key", SECRET, service="shop", data_dir=tmp_path)

    @client.action("restart", params={"name": "[a-z]+"})
    def restart(command: object) -> str:
        return "restarted"

    with serve(client.webhook_app()) as base:
        yield client, f"{base}/webhooks/agent"
    client.close()


def test_the_receivers_replay_code_reaches_the_result(sdk_hook: tuple[Client, str]) -> None:
    _, url = sdk_hook
    now = time.time()
    loopback = OutboundPolicy.from_cidrs(["127.0.0.0/8"])  # the receiver runs on this machine
    d = WebhookDispatcher(policy=loopback, timeout_s=2, retries=3, sleep=[].append, clock=lambda: now)
    command = _command("cmd-replayed", name="nginx")
    first = d.send(url, SECRET, command)
    again = d.send(url, SECRET, command)  # the same second: the byte-identical message, a replay
    d.close()
    assert (first.status, first.output, first.code) == ("ok", "restarted", None)
    assert (again.status, again.http_status, again.attempts) == ("rejected", 401, 1)
    assert again.code == "replay"
    # Signed afresh (a later timestamp), the same id is a re-send: its stored result, not a refusal.
    later = WebhookDispatcher(policy=loopback, timeout_s=2, retries=3, sleep=[].append, clock=lambda: now + 1)
    resent = later.send(url, SECRET, command)
    later.close()
    assert (resent.status, resent.output, resent.http_status, resent.code) == ("ok", "restarted", 200, None)


def test_the_code_is_read_from_the_answer_not_its_text() -> None:
    """A receiver that rewords its message still says ``replay``: only ``code`` is acted upon."""

    async def hook(request: Request) -> JSONResponse:
        return JSONResponse({"error": "déjà vu, nothing about the r-word here", "code": "replay"}, 401)

    d = _dispatcher([])
    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        result = d.send(f"{base}/hook", SECRET, _command("cmd-7"))
    d.close()
    assert (result.status, result.code) == ("rejected", "replay")
    assert "replay" not in result.output


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", None),
        (b'["a", "list"]', None),
        (b'{"error": "x", "code": 7}', None),  # not a string: ignored, not trusted
        (b'{"error": "x", "code": "stale"}', "stale"),
    ],
)
def test_the_code_is_parsed_leniently(body: bytes, code: str | None) -> None:
    async def hook(request: Request) -> Response:
        return Response(body, 401, media_type="application/json")

    d = _dispatcher([])
    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        result = d.send(f"{base}/hook", SECRET, _command("cmd-8"))
    d.close()
    assert (result.status, result.http_status, result.code) == ("rejected", 401, code)


def test_retries_within_one_second_are_fresh_messages_not_replays(script: Script, url: str) -> None:
    """A retry after a lost answer must not be byte-identical: the receiver would refuse it as a replay."""
    script.statuses = [503, 503, 200]
    loopback = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
    frozen = float(int(time.time()))  # the clock does not move between attempts
    d = WebhookDispatcher(
        policy=loopback, timeout_s=2, retries=3, sleep=lambda _s: None, clock=lambda: frozen
    )
    result = d.send(url, SECRET, _command("cmd-fresh"))
    d.close()
    stamps = [int(h["webhook-timestamp"]) - int(frozen) for h in script.seen]
    assert result.status == "ok" and stamps == [0, 1, 2]


def test_a_handler_timeout_is_recorded_as_timeout() -> None:
    async def hook(request: Request) -> JSONResponse:
        return JSONResponse({"status": "timeout", "output": "action 'restart' did not finish within 8 s"})

    d = _dispatcher([])
    with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        result = d.send(f"{base}/hook", SECRET, _command("cmd-slow"))
    d.close()
    assert (result.status, result.http_status, result.attempts) == ("timeout", 200, 1)
    assert "did not finish within 8 s" in result.output
