"""No SSRF through webhook URLs: refused at registration, refused at connection, nothing read back.

The attack these tests replay: register a client whose ``webhook_url`` is an internal address (the
cloud metadata service, a loopback admin port), report an event so the responder sends a command
there, and read the answer back from ``GET /api/v1/events/{id}``. Each half is closed separately:
the URL is refused (422 at registration; ``outbound_refused`` at send time, without a connection,
for a URL stored before the check existed), and whatever an unexpected receiver answers is recorded
as ``bad answer (N bytes, content-type X)``, never as its text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from infragent import signing
from infragent.actions.webhook import MAX_ANSWER_BYTES, OUTBOUND_REFUSED, WebhookDispatcher
from infragent.config import Settings
from infragent.model import ActionSpec, Severity
from infragent.outbound.policy import OutboundPolicy
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.wire.commands import Command
from support.databases import audit_entries, create_client, get_event_detail, insert_event, register_agent
from support.responders import make_responder
from support.servers import serve

CANARY = "AKIA-ssrf-canary-wJalrXUtnFEMI"  # what an internal service would leak
SECRET = signing.new_secret()
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
HTML = f"<html><body>instance identity: {CANARY}</body></html>"


@dataclass
class Internal:
    """A stand-in for an internal service: answers every POST with ``answer`` and counts the hits."""

    answer: Response = field(default_factory=lambda: PlainTextResponse(CANARY))
    hits: int = 0


@pytest.fixture
def internal() -> Iterator[tuple[Internal, str]]:
    state = Internal()

    async def anything(_request: Request) -> Response:
        state.hits += 1
        return state.answer

    with serve(Starlette(routes=[Route("/{path:path}", anything, methods=["POST"])])) as base:
        yield state, f"{base}/latest/meta-data/iam"


def _command(command_id: str = "cmd-ssrf") -> Command:
    return Command(
        command_id=command_id,
        action="restart",
        target="web",
        params={},
        event_ids=["ev-1"],
        reason="app_down on web",
        issued_at=1_750_000_000.0,
    )


def _send(url: str, policy: OutboundPolicy = LOOPBACK) -> Any:
    dispatcher = WebhookDispatcher(policy=policy, timeout_s=5, retries=2, sleep=lambda _s: None)
    try:
        return dispatcher.send(url, SECRET, _command())
    finally:
        dispatcher.close()


# -- at send time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/",
    ],
)
def test_metadata_addresses_are_never_connected(url: str) -> None:
    everything = OutboundPolicy.from_cidrs(["0.0.0.0/0", "::/0"])
    result = _send(url, everything)
    assert (result.status, result.code, result.attempts, result.http_status) == (
        "rejected",
        OUTBOUND_REFUSED,
        1,
        None,
    )
    assert "never allowed" in result.output


def test_loopback_is_refused_unless_allowed(internal: tuple[Internal, str]) -> None:
    state, url = internal
    state.answer = JSONResponse({"status": "ok", "output": "done"})
    result = _send(url, OutboundPolicy())
    assert (result.status, result.code) == ("rejected", OUTBOUND_REFUSED) and state.hits == 0
    assert "loopback" in result.output and "webhook_allowed_networks" in result.output
    assert _send(url, LOOPBACK).status == "ok" and state.hits == 1


@pytest.mark.parametrize(
    ("answer", "media"),
    [
        (PlainTextResponse(CANARY, 200), "text/plain"),
        (Response(HTML, 200, media_type="text/html"), "text/html"),
        (Response(HTML, 400, media_type="text/html"), "text/html"),
        (Response(HTML, 502, media_type="text/html"), "text/html"),  # retried, then recorded
        (JSONResponse({"AccessKeyId": CANARY}), "application/json"),
        (JSONResponse([CANARY]), "application/json"),
        (JSONResponse({"status": "ok", "output": {"k": CANARY}}), "application/json"),
        (JSONResponse({"status": "success", "output": CANARY}), "application/json"),
        (Response(CANARY, 200, headers={"content-type": f"x{CANARY} y"}), "invalid"),
        (Response(b"", 204), "none"),
    ],
)
def test_an_unexpected_answer_is_recorded_by_size_and_type_only(
    internal: tuple[Internal, str], answer: Response, media: str
) -> None:
    state, url = internal
    state.answer = answer
    result = _send(url)
    assert result.output == f"bad answer ({len(answer.body)} bytes, content-type {media})"
    assert result.status in ("error", "rejected") and CANARY not in repr(result)


def test_an_answer_is_not_read_past_the_cap(internal: tuple[Internal, str]) -> None:
    state, url = internal
    state.answer = JSONResponse({"status": "ok", "output": CANARY + "x" * MAX_ANSWER_BYTES})
    result = _send(url)
    assert result.output == f"bad answer (more than {MAX_ANSWER_BYTES} bytes, content-type application/json)"


def test_a_redirect_is_not_followed(internal: tuple[Internal, str]) -> None:
    state, url = internal
    state.answer = RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)
    result = _send(url)
    assert (result.status, result.http_status, state.hits) == ("rejected", 302, 1)
    assert "redirects are not followed" in result.output and "169.254" not in result.output


def test_the_documented_answer_is_kept(internal: tuple[Internal, str]) -> None:
    state, url = internal
    state.answer = JSONResponse({"error": "replayed", "code": "replay"}, 401)
    result = _send(url)
    assert (result.status, result.code, result.output) == (
        "rejected",
        "replay",
        "receiver refused the signature: replayed",
    )
    state.answer = JSONResponse({"error": "no", "code": f"Not A Code {CANARY}"}, 401)
    assert _send(url).code is None  # a code is a short word, not free text


# -- at registration ---------------------------------------------------------------------------


@pytest.fixture
def api(store: SqlStore) -> Iterator[httpx.Client]:
    with serve(create_app(Settings(), store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield http


def _register(http: httpx.Client, url: str) -> httpx.Response:
    return http.post(
        "/api/v1/clients/register",
        json={"email": "ops@example.com", "company_name": "Acme", "webhook_url": url},
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "never allowed"),
        ("http://127.0.0.1:8470/hook", "loopback address, refused unless listed in webhook_allowed_networks"),
        ("http://localhost:8470/hook", "host 'localhost' resolves to 127.0.0.1"),
        ("http://10.1.2.3/hook", "private address"),
        ("http://[::1]/hook", "loopback"),
        ("http://0.0.0.0:8080/", "unspecified"),
    ],
)
def test_registration_refuses_an_internal_webhook_with_422_naming_the_field(
    api: httpx.Client, store: SqlStore, url: str, why: str
) -> None:
    r = _register(api, url)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith("webhook_url: refused: ") and why in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "webhook_url"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM clients").scalar_one() == 0


def test_registration_accepts_loopback_when_the_operator_allows_it(store: SqlStore) -> None:
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",))
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert _register(http, "http://127.0.0.1:8470/hook").status_code == 201
        refused = _register(http, "http://169.254.169.254/latest/")
        assert refused.status_code == 422 and "never allowed" in refused.json()["detail"]


# -- the whole loop: nothing of the answer can be read back -------------------------------------


def _event(store: SqlStore, client_id: str) -> str:
    register_agent(
        store,
        client_id,
        "host-1/web",
        kind="sdk",
        command_mode="push",
        actions=[ActionSpec("restart", {"name": r"[a-z0-9_-]+"})],
        labels={},
        now=1.0,
    )
    event = insert_event(
        store,
        client_id,
        type="app_down",
        service="web",
        severity=Severity.CRITICAL,
        data={},
        node_id="host-1/web",
        now=2.0,
    )
    return event.id


def test_an_internal_answer_cannot_be_read_back_from_the_event(
    store: SqlStore, internal: tuple[Internal, str]
) -> None:
    """The operator allowed loopback; a tenant points its webhook at an internal page there."""
    state, url = internal
    state.answer = Response(HTML, 200, media_type="text/html")
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",))
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        reg = _register(http, url).json()
        event_id = _event(store, reg["client_id"])
        assert make_responder(store).drain() == 1
        detail = http.get(f"/api/v1/events/{event_id}", headers={"Authorization": f"Bearer {reg['api_key']}"})
    assert detail.status_code == 200 and state.hits == 1
    assert CANARY not in detail.text and "instance identity" not in detail.text
    body = detail.json()
    assert body["command"]["output"] == f"bad answer ({len(HTML)} bytes, content-type text/html)"
    assert body["command"]["status"] == "failed"
    assert CANARY not in json.dumps([a.detail for a in audit_entries(store, reg["client_id"])])


def test_a_url_stored_before_the_check_is_refused_at_send_and_audited(store: SqlStore) -> None:
    """A client registered with the metadata URL (an older server) gets a refusal, not a connection."""
    reg = create_client(store, "ops@example.com", "Acme", "http://169.254.169.254/latest/meta-data/", now=1.0)
    event_id = _event(store, reg.client.id)
    assert make_responder(store).drain() == 1
    detail = get_event_detail(store, reg.client.id, event_id)
    assert detail is not None and detail.command is not None
    assert detail.command["status"] == "rejected" and "never allowed" in detail.command["output"]
    results = [a.detail for a in detail.audit if a.kind == "command.result"]
    assert results and "never allowed" in json.dumps(results)


def test_a_credential_in_an_actions_output_is_masked_in_the_api_and_the_audit(
    store: SqlStore, internal: tuple[Internal, str]
) -> None:
    """The documented answer is kept, but what the action printed passes the redactor before storage."""
    state, url = internal
    leaked = "postgresql://app:hunter2-not-for-you@db.internal/prod"
    state.answer = JSONResponse({"status": "ok", "output": f"restarted web; reconnected to {leaked}"})
    settings = Settings(webhook_allowed_networks=("127.0.0.0/8",))
    with serve(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=10) as http:
        reg = _register(http, url).json()
        event_id = _event(store, reg["client_id"])
        assert make_responder(store).drain() == 1
        detail = http.get(f"/api/v1/events/{event_id}", headers={"Authorization": f"Bearer {reg['api_key']}"})
    assert detail.status_code == 200 and state.hits == 1
    output = detail.json()["command"]["output"]
    assert (
        output.startswith("restarted web; reconnected to postgresql://app:") and "db.internal/prod" in output
    )
    assert "hunter2-not-for-you" not in detail.text
    assert "hunter2-not-for-you" not in json.dumps([a.detail for a in audit_entries(store, reg["client_id"])])
