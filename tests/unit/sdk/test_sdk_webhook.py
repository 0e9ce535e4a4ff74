"""The command webhook over real HTTP: signature, replay, allowlist, size cap, handler outcomes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from infragent import signing
from infragent.sdk import MAX_BODY_BYTES, Client, Command
from infragent.sdk.ledger import DB_NAME, CommandLedger, message_key
from support.servers import serve

SECRET = signing.new_secret()


@dataclass
class Calls:
    """What the handlers saw; the proof that a refused command ran nothing."""

    commands: list[Command] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)


@dataclass
class Hook:
    client: Client
    url: str
    calls: Calls
    http: httpx.Client


@pytest.fixture(scope="module")
def _hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hook]:
    calls = Calls()
    data_dir = tmp_path_factory.mktemp("sdk")
    client = Client("http://127.0.0.1:9", "ia_test_key", SECRET, service="shop", data_dir=data_dir)

    @client.action("restart", params={"name": r"^[a-z0-9_-]+$"})
    def restart(command: Command) -> str:
        calls.commands.append(command)
        calls.threads.append(threading.current_thread().name)
        return f"restarted {command.params['name']}"

    @client.action("stats")
    def stats(command: Command) -> dict[str, Any]:
        calls.commands.append(command)
        return {"workers": 4, "target": command.target}

    @client.action("noop")
    def noop(command: Command) -> None:
        calls.commands.append(command)

    @client.action("boom")
    def boom(command: Command) -> str:
        calls.commands.append(command)
        raise RuntimeError("disk full")

    @client.action("async_restart", params={"name": r"[a-z]+"})
    async def async_restart(command: Command) -> str:
        calls.commands.append(command)
        return "async ok"

    with serve(client.webhook_app()) as base, httpx.Client(timeout=10) as http:
        yield Hook(client=client, url=f"{base}/webhooks/agent", calls=calls, http=http)
    client.close()


@pytest.fixture
def hook(_hook: Hook) -> Hook:
    _hook.calls.commands.clear()
    _hook.calls.threads.clear()
    return _hook


def command_body(action: str = "restart", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command_id": f"cmd-{uuid.uuid4().hex}",
        "action": action,
        "target": "web-1",
        "params": {"name": "nginx"} if action in ("restart", "async_restart") else {},
        "event_ids": ["ev-1", "ev-2"],
        "reason": "app_down on web-1",
        "issued_at": 1_750_000_000.5,
    }
    body.update(overrides)
    return body


def signed(
    body: dict[str, Any] | bytes, *, secret: str = SECRET, now: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = json.loads(raw)["command_id"] if isinstance(body, dict) else f"cmd-{uuid.uuid4().hex}"
    headers = signing.signed_headers(secret, msg_id, raw, now=now)
    headers["content-type"] = "application/json"
    return raw, headers


def post(hook: Hook, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return hook.http.post(hook.url, content=raw, headers=headers)


def test_valid_command_runs_handler_once_and_returns_output(hook: Hook) -> None:
    body = command_body()
    raw, headers = signed(body)

    response = post(hook, raw, headers)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "output": "restarted nginx"}
    [command] = hook.calls.commands
    assert command == Command(
        command_id=body["command_id"],
        action="restart",
        target="web-1",
        params={"name": "nginx"},
        event_ids=("ev-1", "ev-2"),
        reason="app_down on web-1",
        issued_at=1_750_000_000.5,
    )
    assert hook.calls.threads != ["uvicorn-test"]  # sync handlers run off the event loop


def test_command_params_are_read_only(hook: Hook) -> None:
    raw, headers = signed(command_body())
    post(hook, raw, headers)

    [command] = hook.calls.commands
    with pytest.raises(TypeError):
        command.params["name"] = "other"  # type: ignore[index]


def test_dict_output_is_json_and_none_is_empty(hook: Hook) -> None:
    raw, headers = signed(command_body("stats"))
    assert post(hook, raw, headers).json() == {"status": "ok", "output": '{"target": "web-1", "workers": 4}'}

    raw, headers = signed(command_body("noop", target=None))
    assert post(hook, raw, headers).json() == {"status": "ok", "output": ""}
    assert [c.action for c in hook.calls.commands] == ["stats", "noop"]


def test_async_handler_runs(hook: Hook) -> None:
    raw, headers = signed(command_body("async_restart"))

    response = post(hook, raw, headers)

    assert response.json() == {"status": "ok", "output": "async ok"}
    assert len(hook.calls.commands) == 1


def test_handler_exception_is_reported_as_error(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    raw, headers = signed(command_body("boom"))

    response = post(hook, raw, headers)

    assert response.status_code == 200
    assert response.json() == {"status": "error", "output": "disk full"}
    assert len(hook.calls.commands) == 1
    assert any(r.exc_info and "boom failed" in r.getMessage() for r in caplog.records)


def _flip_byte(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw.replace(b"nginx", b"nginy"), headers


def _wrong_secret(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    other = signing.signed_headers(signing.new_secret(), headers["webhook-id"], raw)
    return raw, {**headers, "webhook-signature": other["webhook-signature"]}


def _garbage_signature(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw, {**headers, "webhook-signature": "v1,AAAA"}


def _stale(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw, signing.signed_headers(SECRET, headers["webhook-id"], raw, now=time.time() - 301)


def _future(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return raw, signing.signed_headers(SECRET, headers["webhook-id"], raw, now=time.time() + 301)


def _without(name: str) -> Any:
    def drop(raw: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return raw, {k: v for k, v in headers.items() if k != name}

    return drop


@pytest.mark.parametrize(
    ("tamper", "reason", "code"),
    [
        (_flip_byte, "no webhook-signature matches", "bad_signature"),
        (_wrong_secret, "no webhook-signature matches", "bad_signature"),
        (_garbage_signature, "no webhook-signature matches", "bad_signature"),
        (_stale, "more than 300 s", "stale"),
        (_future, "more than 300 s", "stale"),
        (_without("webhook-id"), "missing", "missing_headers"),
        (_without("webhook-timestamp"), "missing", "missing_headers"),
        (_without("webhook-signature"), "missing", "missing_headers"),
    ],
    ids=["flipped-byte", "wrong-secret", "garbage-signature", "stale", "future", "no-id", "no-ts", "no-sig"],
)
def test_unauthenticated_commands_are_refused_and_run_nothing(
    hook: Hook, tamper: Any, reason: str, code: str
) -> None:
    raw, headers = tamper(*signed(command_body()))

    response = post(hook, raw, headers)

    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert response.json()["code"] == code
    assert hook.calls.commands == []


def test_replayed_command_is_refused(hook: Hook) -> None:
    raw, headers = signed(command_body())

    first = post(hook, raw, headers)
    replay = post(hook, raw, headers)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert "replay" in replay.json()["error"]
    assert replay.json()["code"] == "replay"
    assert len(hook.calls.commands) == 1


def test_forged_message_does_not_burn_a_real_id(hook: Hook) -> None:
    raw, headers = signed(command_body())
    forged = post(hook, raw, {**headers, "webhook-signature": "v1,AAAA"})

    genuine = post(hook, raw, headers)

    assert forged.status_code == 401
    assert genuine.status_code == 200


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"name": "nginx; rm -rf /"}, "does not match"),
        ({"name": "nginx\n"}, "does not match"),
        ({"name": ""}, "does not match"),
        ({"name": "nginx", "signal": "KILL"}, "'signal' is not allowed"),
    ],
    ids=["injection", "trailing-newline", "empty", "unregistered-param"],
)
def test_params_outside_the_allowlist_are_rejected(hook: Hook, params: dict[str, str], reason: str) -> None:
    raw, headers = signed(command_body(params=params))

    response = post(hook, raw, headers)

    assert response.status_code == 422
    assert response.json()["status"] == "rejected"
    assert reason in response.json()["output"]
    assert hook.calls.commands == []


def test_unknown_action_is_rejected(hook: Hook) -> None:
    raw, headers = signed(command_body("drop_database"))

    response = post(hook, raw, headers)

    assert response.status_code == 422
    assert response.json() == {
        "status": "rejected",
        "output": "action 'drop_database' is not allowed by this client",
    }
    assert hook.calls.commands == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({k: v for k, v in command_body().items() if k != "action"}).encode(),
        json.dumps(command_body(params={"name": 3})).encode(),
        json.dumps(command_body(issued_at="yesterday")).encode(),
    ],
    ids=["not-json", "not-object", "missing-action", "non-string-param", "bad-issued-at"],
)
def test_malformed_command_with_valid_signature_is_400(hook: Hook, raw: bytes) -> None:
    msg_id = json.loads(raw)["command_id"] if raw.startswith(b"{") else f"cmd-{uuid.uuid4().hex}"
    headers = signing.signed_headers(SECRET, msg_id, raw)

    response = post(hook, raw, headers)

    assert response.status_code == 400
    assert "malformed command" in response.json()["error"]
    assert hook.calls.commands == []


def test_command_id_must_match_webhook_id(hook: Hook) -> None:
    raw = json.dumps(command_body()).encode()
    headers = signing.signed_headers(SECRET, "some-other-id", raw)

    response = post(hook, raw, headers)

    assert response.status_code == 400
    assert hook.calls.commands == []


def test_oversized_body_is_413(hook: Hook) -> None:
    raw = b"{" + b" " * MAX_BODY_BYTES + b"}"
    headers = signing.signed_headers(SECRET, "cmd-big", raw)

    response = post(hook, raw, headers)

    assert response.status_code == 413
    assert hook.calls.commands == []


def test_oversized_chunked_body_is_413(hook: Hook) -> None:
    """Without Content-Length the cap is enforced while streaming."""
    chunk = b" " * 65536

    def stream() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk

    headers = signing.signed_headers(SECRET, "cmd-chunked", b"")
    response = hook.http.post(hook.url, content=stream(), headers=headers)

    assert response.status_code == 413
    assert hook.calls.commands == []


def test_other_methods_and_paths_run_nothing(hook: Hook) -> None:
    assert hook.http.get(hook.url).status_code == 405
    raw, headers = signed(command_body())
    assert hook.http.post(hook.url + "/x", content=raw, headers=headers).status_code == 404
    assert hook.calls.commands == []


def test_endpoint_mounts_in_the_users_app_with_injected_ledger(tmp_path: Path) -> None:
    calls: list[str] = []
    ledger = CommandLedger(tmp_path / "shared.sqlite3")
    with Client(
        "http://127.0.0.1:9", "ia_test_key", [signing.new_secret(), SECRET], service="shop", data_dir=tmp_path
    ) as client:

        @client.action("restart", params={"name": r"[a-z]+"})
        def restart(command: Command) -> str:
            calls.append(command.command_id)
            return "ok"

        async def home(request: Request) -> Response:
            return PlainTextResponse("shop")

        app = Starlette(
            routes=[
                Route("/", home),
                Route("/hooks/infragent", client.webhook_endpoint(ledger=ledger), methods=["POST"]),
            ]
        )
        raw, headers = signed(command_body())
        with serve(app) as base, httpx.Client() as http:
            assert http.get(base).text == "shop"
            response = http.post(f"{base}/hooks/infragent", content=raw, headers=headers)

    assert response.json() == {"status": "ok", "output": "ok"}
    assert len(calls) == 1
    # The injected ledger was used: it holds the run and the replay key of the message.
    entry = ledger.get(headers["webhook-id"])
    assert entry is not None and entry.state == "done"
    key = message_key(headers["webhook-id"], headers["webhook-timestamp"])
    assert not ledger.add_if_new(key, time.time())
    assert not (tmp_path / DB_NAME).exists()  # the client's own ledger was never opened
    ledger.close()


def test_webhook_app_needs_a_secret() -> None:
    with (
        Client("http://127.0.0.1:9", "ia_test_key", None, service="shop") as client,
        pytest.raises(ValueError, match="webhook_secret"),
    ):
        client.webhook_app()
