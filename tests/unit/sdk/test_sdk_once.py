"""Commands run once, with their real outcome: the persisted ledger, re-sends, restarts, slow handlers.

Why these tests: the dispatcher re-sends a command id (after a 5xx or a lost answer, or from a
responder that took over), each time signed afresh. The SDK used to answer such a re-send with 401
``replay``, so the server recorded a command that had run as "rejected"; and it forgot every id on
restart, so a captured message could run the action again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infragent import signing
from infragent.actions.webhook import WebhookDispatcher
from infragent.outbound.policy import OutboundPolicy
from infragent.sdk import Client, Command
from infragent.wire.commands import Command as WireCommand
from support.servers import serve

SECRET = signing.new_secret()


@dataclass
class Runs:
    """What the handlers did; ``gate`` holds the slow handlers until the test lets them go."""

    ids: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, command_id: str) -> int:
        with self.lock:
            return self.ids.count(command_id)


def make_client(data_dir: Path, runs: Runs, **kwargs: Any) -> Client:
    client = Client("http://127.0.0.1:9", "ia_test_key", SECRET, service="shop", data_dir=data_dir, **kwargs)

    @client.action("restart", params={"name": r"[a-z]+"})
    def restart(command: Command) -> str:
        with runs.lock:
            runs.ids.append(command.command_id)
        return f"restarted {command.params['name']}"

    @client.action("slow")
    def slow(command: Command) -> str:
        with runs.lock:
            runs.ids.append(command.command_id)
        runs.gate.wait(60)
        return "finished late"

    @client.action("slow_async")
    async def slow_async(command: Command) -> str:
        with runs.lock:
            runs.ids.append(command.command_id)
        await anyio.to_thread.run_sync(runs.gate.wait, 60, abandon_on_cancel=True)
        return "finished late"

    return client


@pytest.fixture
def runs() -> Iterator[Runs]:
    runs = Runs()
    yield runs
    runs.gate.set()  # release any handler still waiting


def body_of(action: str = "restart", command_id: str | None = None) -> bytes:
    params = {"name": "nginx"} if action == "restart" else {}
    return json.dumps(
        {
            "command_id": command_id or f"cmd-{uuid.uuid4().hex}",
            "action": action,
            "target": "web-1",
            "params": params,
            "event_ids": ["ev-1"],
            "reason": "app_down",
            "issued_at": time.time(),
        }
    ).encode()


def sign(raw: bytes, now: float) -> dict[str, str]:
    headers = signing.signed_headers(SECRET, json.loads(raw)["command_id"], raw, now=now)
    headers["content-type"] = "application/json"
    return headers


def test_a_resigned_command_id_gets_its_stored_result_and_runs_once(tmp_path: Path, runs: Runs) -> None:
    raw = body_of()
    command_id = json.loads(raw)["command_id"]
    now = time.time()
    with make_client(tmp_path, runs) as client, serve(client.webhook_app()) as base, httpx.Client() as http:
        url = f"{base}/webhooks/agent"
        first = http.post(url, content=raw, headers=sign(raw, now))
        again = http.post(url, content=raw, headers=sign(raw, now + 2))  # what a dispatcher retry sends

    assert (first.status_code, first.json()) == (200, {"status": "ok", "output": "restarted nginx"})
    assert again.status_code == 200
    assert again.json() == {"status": "ok", "output": "restarted nginx", "duplicate": True}
    assert runs.count(command_id) == 1


def test_after_a_restart_a_captured_message_cannot_run_again(tmp_path: Path, runs: Runs) -> None:
    raw = body_of()
    command_id = json.loads(raw)["command_id"]
    captured = sign(raw, time.time())
    with make_client(tmp_path, runs) as client, serve(client.webhook_app()) as base:
        assert httpx.post(f"{base}/webhooks/agent", content=raw, headers=captured).status_code == 200

    # The app restarts: a new Client (new process state) on the same data directory.
    with make_client(tmp_path, runs) as client, serve(client.webhook_app()) as base, httpx.Client() as http:
        url = f"{base}/webhooks/agent"
        replay = http.post(url, content=raw, headers=captured)
        resent = http.post(url, content=raw, headers=sign(raw, time.time() + 1))

    assert replay.status_code == 401 and replay.json()["code"] == "replay"
    assert resent.status_code == 200
    assert resent.json() == {"status": "ok", "output": "restarted nginx", "duplicate": True}
    assert runs.count(command_id) == 1


@pytest.mark.parametrize("action", ["slow", "slow_async"])
def test_a_slow_handler_answers_timeout_within_the_configured_time(
    tmp_path: Path, runs: Runs, action: str
) -> None:
    """The answer arrives while the handler is still held: proof it did not wait for the handler."""
    raw = body_of(action)
    command_id = json.loads(raw)["command_id"]
    with (
        make_client(tmp_path, runs, handler_timeout_s=0.3) as client,
        serve(client.webhook_app()) as base,
        httpx.Client(timeout=30) as http,
    ):
        url = f"{base}/webhooks/agent"
        answer = http.post(url, content=raw, headers=sign(raw, time.time()))
        still_held = not runs.gate.is_set()
        again = http.post(url, content=raw, headers=sign(raw, time.time() + 1))
        runs.gate.set()

    assert still_held
    assert answer.status_code == 200
    assert answer.json() == {"status": "timeout", "output": f"action {action!r} did not finish within 0.3 s"}
    assert again.json() == {**answer.json(), "duplicate": True}  # the timeout is the stored outcome
    assert runs.count(command_id) == 1


def test_the_handler_timeout_defaults_below_the_dispatchers(tmp_path: Path) -> None:
    from infragent.config import Settings

    with Client("http://127.0.0.1:9", "k", SECRET, service="shop", data_dir=tmp_path) as client:
        assert client.handler_timeout_s < Settings().webhook_timeout_s
    with pytest.raises(ValueError, match="handler_timeout_s"):
        Client("http://127.0.0.1:9", "k", SECRET, handler_timeout_s=0)


class LoseFirstAnswer:
    """The network between server and app: the first request reaches the app, its answer is lost (502)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lost = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.lost:
            await self.app(scope, receive, send)
            return
        self.lost += 1

        async def swallow(_message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"bad gateway"})


def test_the_dispatcher_records_the_real_outcome_after_a_lost_answer(tmp_path: Path, runs: Runs) -> None:
    command_id = f"cmd-{uuid.uuid4().hex}"
    params = {"name": "nginx"}
    command = WireCommand(command_id, "restart", "web-1", params, ["ev-1"], "app_down", time.time())
    ticks = iter(range(100))
    base_time = time.time()
    # Each attempt is signed a second later, as after a real back-off.
    dispatcher = WebhookDispatcher(
        policy=OutboundPolicy.from_cidrs(["127.0.0.0/8"]),  # the receiver runs on this machine
        timeout_s=5,
        retries=3,
        sleep=lambda _s: None,
        clock=lambda: base_time + next(ticks),
    )
    with make_client(tmp_path, runs) as client:
        proxy = LoseFirstAnswer(client.webhook_app())
        with serve(proxy) as base:
            result = dispatcher.send(f"{base}/webhooks/agent", SECRET, command)
    dispatcher.close()

    assert proxy.lost == 1
    assert (result.status, result.output, result.http_status, result.attempts) == (
        "ok",
        "restarted nginx",
        200,
        2,
    )
    assert runs.count(command_id) == 1


def test_a_rejected_command_stays_rejected_when_resent(tmp_path: Path, runs: Runs) -> None:
    """The refusal is stored too: a re-send gets the same 422, marked duplicate, and runs nothing."""
    raw = body_of("drop_database")
    now = time.time()
    with make_client(tmp_path, runs) as client, serve(client.webhook_app()) as base, httpx.Client() as http:
        url = f"{base}/webhooks/agent"
        first = http.post(url, content=raw, headers=sign(raw, now))
        again = http.post(url, content=raw, headers=sign(raw, now + 1))
    refusal = {"status": "rejected", "output": "action 'drop_database' is not allowed by this client"}
    assert (first.status_code, first.json()) == (422, refusal)
    assert (again.status_code, again.json()) == (422, {**refusal, "duplicate": True})
    assert runs.ids == []
