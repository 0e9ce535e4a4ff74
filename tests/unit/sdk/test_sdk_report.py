"""Client.report_event / register_actions against a scripted server over real HTTP."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from scripted_server import API_KEY, Reply, ScriptedServer, refused_url

from infragent import signing
from infragent.sdk import Client, Command, ReportError

Server = tuple[ScriptedServer, str]
MakeClient = Callable[..., Client]


def test_event_is_posted_with_auth_and_contract_body(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    client = make_client(url, node_id="web-1/shop")

    event_id = client.report_event("app_down", severity="critical", data={"url": "http://x/health"})

    assert event_id == "ev-1"
    [request] = scripted.requests
    assert request.method == "POST"
    assert request.path == "/api/v1/events"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "type": "app_down",
        "service": "shop",
        "severity": "critical",
        "data": {"url": "http://x/health"},
        "node_id": "web-1/shop",
    }


def test_default_node_id_is_hostname_and_service(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    client = make_client(url, service=None)

    client.report_event("deploy", service="billing", severity="info")

    body = scripted.requests[0].json
    assert body["service"] == "billing"
    assert body["node_id"] == f"{socket.gethostname()}/billing"
    assert body["data"] == {}


@pytest.mark.parametrize("severity", ["fatal", "WARNING", ""])
def test_unknown_severity_is_refused_locally(server: Server, make_client: MakeClient, severity: str) -> None:
    scripted, url = server
    client = make_client(url)

    with pytest.raises(ValueError, match="info, warning, critical"):
        client.report_event("x", severity=severity)
    assert scripted.requests == []


def test_missing_service_is_refused_locally(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    client = make_client(url, service=None)

    with pytest.raises(ValueError, match="service is required"):
        client.report_event("x")
    assert scripted.requests == []


def test_503_is_retried_then_succeeds(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(503, 503)
    client = make_client(url, backoff_base_s=0.5, backoff_cap_s=30.0)

    assert client.report_event("x") == "ev-3"

    assert len(scripted.requests) == 3
    assert [r.json for r in scripted.requests] == [scripted.requests[0].json] * 3  # same event each time
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5  # full jitter: uniform(0, base * 2**0)
    assert 0 <= sleeps[1] <= 1.0  # uniform(0, base * 2**1)


def test_retry_after_seconds_is_honoured(
    server: Server, make_client: MakeClient, sleeps: list[float]
) -> None:
    scripted, url = server
    scripted.script(Reply(status=503, headers={"Retry-After": "7"}))
    client = make_client(url)

    client.report_event("x")

    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured(
    server: Server, make_client: MakeClient, sleeps: list[float]
) -> None:
    scripted, url = server
    now = 1_750_000_000.0
    later = format_datetime(datetime.fromtimestamp(now + 12, tz=UTC), usegmt=True)
    scripted.script(Reply(status=429, headers={"Retry-After": later}))
    client = make_client(url, clock=lambda: now)

    client.report_event("x")

    assert sleeps == [12.0]


def test_retry_after_is_capped(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(Reply(status=503, headers={"Retry-After": "3600"}))
    client = make_client(url, backoff_cap_s=30.0)

    client.report_event("x")

    assert sleeps == [30.0]


def test_429_is_retried(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(429)
    client = make_client(url)

    assert client.report_event("x") == "ev-2"
    assert len(scripted.requests) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_errors_are_not_retried(
    server: Server, make_client: MakeClient, sleeps: list[float], status: int
) -> None:
    scripted, url = server
    scripted.script(Reply(status=status, body={"detail": "bad api key"}))
    client = make_client(url)

    with pytest.raises(ReportError) as info:
        client.report_event("x")

    assert len(scripted.requests) == 1
    assert sleeps == []
    assert info.value.status == status
    assert info.value.detail == "bad api key"
    assert info.value.attempts == 1
    assert not info.value.retryable
    assert f"HTTP {status}" in str(info.value)


def test_structured_detail_is_kept(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    scripted.script(Reply(status=422, body={"detail": [{"loc": ["body", "type"], "msg": "required"}]}))
    client = make_client(url)

    with pytest.raises(ReportError, match="required") as info:
        client.report_event("x")
    assert info.value.status == 422


def test_gives_up_after_max_retries(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(*[500] * 10)
    client = make_client(url, max_retries=3)

    with pytest.raises(ReportError) as info:
        client.report_event("x")

    assert len(scripted.requests) == 4  # one attempt + three retries
    assert len(sleeps) == 3
    assert info.value.status == 500
    assert info.value.attempts == 4
    assert info.value.retryable


def test_zero_retries_means_one_attempt(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(503)
    client = make_client(url, max_retries=0)

    with pytest.raises(ReportError):
        client.report_event("x")
    assert len(scripted.requests) == 1
    assert sleeps == []


def test_timeout_is_retried(server: Server, make_client: MakeClient, sleeps: list[float]) -> None:
    scripted, url = server
    scripted.script(Reply(hang=True))  # only the first request hangs; later ones succeed
    client = make_client(url, timeout_s=0.3)

    event_id = client.report_event("x")

    # Normally exactly two requests; a very slow machine may time out once more, never less.
    assert len(scripted.requests) >= 2
    assert event_id == f"ev-{len(scripted.requests)}"
    assert len(sleeps) == len(scripted.requests) - 1


def test_connection_refused_is_retried_then_gives_up(make_client: MakeClient, sleeps: list[float]) -> None:
    client = make_client(refused_url(), max_retries=2)

    with pytest.raises(ReportError, match="ConnectError") as info:
        client.report_event("x")

    assert info.value.status is None
    assert info.value.attempts == 3
    assert info.value.retryable
    assert len(sleeps) == 2


def test_success_without_event_id_is_an_error(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    scripted.script(Reply(status=202, body={"status": "received"}))
    client = make_client(url)

    with pytest.raises(ReportError, match="no event_id"):
        client.report_event("x")
    assert len(scripted.requests) == 1


def test_register_actions_posts_the_allowlist(server: Server, make_client: MakeClient) -> None:
    scripted, url = server
    client = make_client(url, node_id="web-1/shop")

    @client.action("restart", params={"name": r"^[a-z0-9_-]+$"})
    def restart(command: Command) -> str:
        """Restart one worker process."""
        return "restarted"

    @client.action("flush_cache", description="Drop the page cache")
    def flush(command: Command) -> None:
        return None

    client.register_actions()

    [request] = scripted.requests
    assert request.path == "/api/v1/agents"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json == {
        "node_id": "web-1/shop",
        "kind": "sdk",
        "command_mode": "push",
        "actions": [
            {
                "name": "restart",
                "params": {"name": r"^[a-z0-9_-]+$"},
                "description": "Restart one worker process.",
            },
            {"name": "flush_cache", "params": {}, "description": "Drop the page cache"},
        ],
    }


def test_register_actions_is_retried_and_refusal_raises(
    server: Server, make_client: MakeClient, sleeps: list[float]
) -> None:
    scripted, url = server
    scripted.script(502, Reply(status=401, body={"detail": "invalid api key"}))
    client = make_client(url)

    with pytest.raises(ReportError, match="invalid api key"):
        client.register_actions()
    assert len(scripted.requests) == 2
    assert len(sleeps) == 1


def test_action_registration_errors_are_raised_at_decoration(make_client: MakeClient) -> None:
    client = make_client("http://127.0.0.1:9")

    @client.action("restart")
    def restart(command: Command) -> None:
        return None

    with pytest.raises(ValueError, match="already registered"):
        client.action("restart")(restart)
    with pytest.raises(ValueError, match="bad regex"):
        client.action("scale", params={"n": "(unclosed"})(restart)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("whsec_not base64!", "base64"),
        ("", "at least 24"),
        ("whsec_", "at least 24"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "at least 24"),
    ],
    ids=["not-base64", "empty", "prefix-only", "23-bytes"],
)
def test_unusable_webhook_secret_fails_at_construction(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client("http://127.0.0.1:9", API_KEY, secret)
    with pytest.raises(ValueError, match=message):
        Client("http://127.0.0.1:9", API_KEY, [signing.new_secret(), secret])
