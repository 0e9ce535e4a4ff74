"""The apprise channel: a ``json://`` URL against a real HTTP receiver on 127.0.0.1, the outcomes
(delivered, retry on a 500, failed for an unreadable or refused URL), the outbound policy's rules per
scheme, and no URL or token in logs or errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.apprise_channel import AppriseChannel, apprise_url_problem
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.config import parse_channel
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message
from infragent.notify.render import render
from infragent.outbound.policy import OutboundPolicy
from support.servers import closed_port

NOW = 1_750_000_000.0
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
TOKEN = "tok3n-Zq8xW2vB9kLm"  # canaries: neither may appear in a log or an error
PASSWORD = "pa55-Yt7uI0oP"
NAMES = {"hooks.test": ["127.0.0.1"], "internal.test": ["10.1.2.3"], "meta.test": ["169.254.169.254"]}


def resolver(host: str, port: int) -> Sequence[str]:
    if host not in NAMES:
        raise OSError(f"no such host {host!r}")
    return NAMES[host]


@dataclass
class Receiver:
    """Records every POST; answers ``status``."""

    status: int = 200
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            state.posts.append((self.path, json.loads(body or b"{}")))
            self.send_response(state.status)
            self.send_header("content-length", "0")
            self.send_header("connection", "close")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def make_deps() -> Iterator[Callable[..., ChannelDeps]]:
    clients: list[httpx.Client] = []

    def make(policy: OutboundPolicy = LOOPBACK) -> ChannelDeps:
        clients.append(httpx.Client())
        return ChannelDeps(
            http=clients[-1], policy=policy, resolve=resolver, timeout_s=5.0, clock=lambda: NOW
        )

    yield make
    for client in clients:
        client.close()


def _config(*urls: str) -> ChannelConfig:
    return ChannelConfig(id="ch-a", client_id="c-1", name="apprise", kind="apprise", settings={},
                         secrets={"urls": list(urls)})  # fmt: skip


def _message() -> Message:
    incident = IncidentSummary(
        id="inc-1",
        title="Disk almost full",
        severity="critical",
        status="open",
        fingerprint="fp",
        labels={"host": "web-1"},
        opened_at=NOW - 720.0,
        value="97.5 %",
        url="https://infragent.example.com/incidents/inc-1",
    )
    message = Message(id="dlv-1", client_id="c-1", kind="firing", incidents=(incident,), created_at=NOW)
    return render(message, "apprise", NOW)


def _url(receiver: Receiver, host: str = "127.0.0.1") -> str:
    return f"json://bot:{PASSWORD}@{host}:{receiver.port}/hook/{TOKEN}"


def test_a_json_url_delivers_title_and_body(
    receiver: Receiver, make_deps: Callable[..., ChannelDeps]
) -> None:
    message = _message()
    result = build_channel(_config(_url(receiver)), make_deps()).send(message)
    assert result == DeliveryResult("delivered")
    [(path, body)] = receiver.posts
    assert path == f"/hook/{TOKEN}"
    assert body["title"] == "[FIRING] critical: Disk almost full"
    assert body["message"] == message.text
    assert "where: host=web-1" in body["message"]
    assert body["type"] == "failure"


def test_an_unrendered_message_is_rendered(receiver: Receiver, make_deps: Callable[..., ChannelDeps]) -> None:
    bare = Message(id="dlv-2", client_id="c-1", kind="test", incidents=(), created_at=NOW)
    assert AppriseChannel(_config(_url(receiver)), make_deps()).send(bare).outcome == "delivered"
    [(_path, body)] = receiver.posts
    assert body["title"] == "[TEST] InfrAgent test notification"
    assert body["type"] == "info"


def test_a_receiver_error_is_retried_and_nothing_logged_names_the_url(
    receiver: Receiver, make_deps: Callable[..., ChannelDeps], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    caplog.set_level(logging.DEBUG)  # everything that reaches the root logger, apprise's included
    url = _url(receiver)
    result = AppriseChannel(_config(url), make_deps()).send(_message())
    assert result.outcome == "retry"
    assert result.error == (
        "apprise URL #1 (scheme 'json') was not delivered; apprise reports no status code or reason "
        "(its warning, with secrets removed, is in the server log)"
    )
    assert len(receiver.posts) == 1
    apprise_records = [r for r in caplog.records if r.name.startswith("apprise")]
    assert apprise_records, "apprise logs its failure at WARNING"
    for record in caplog.records:
        text = record.getMessage()
        assert url not in text and TOKEN not in text and PASSWORD not in text, text


def test_a_receiver_that_is_down_is_retried_without_logging_the_url(
    make_deps: Callable[..., ChannelDeps], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"json://bot:{PASSWORD}@127.0.0.1:{closed_port()}/hook/{TOKEN}"
    result = AppriseChannel(_config(url), make_deps()).send(_message())
    assert result.outcome == "retry"
    for record in caplog.records:
        text = record.getMessage()
        assert TOKEN not in text and PASSWORD not in text, text


def test_an_unreadable_url_fails_by_number_and_scheme(
    receiver: Receiver, make_deps: Callable[..., ChannelDeps]
) -> None:
    result = AppriseChannel(_config(_url(receiver), f"xyz://{TOKEN}"), make_deps()).send(_message())
    assert result == DeliveryResult("failed", error="apprise cannot read URL #2 (scheme 'xyz')")
    assert len(receiver.posts) == 1  # URL #1 was sent before #2 was read
    assert AppriseChannel(_config(), make_deps()).send(_message()) == DeliveryResult(
        "failed", error="apprise channel: secret 'urls' holds no apprise URL"
    )


def test_the_outbound_policy_refuses_before_anything_is_sent(
    receiver: Receiver, make_deps: Callable[..., ChannelDeps], caplog: pytest.LogCaptureFixture
) -> None:
    result = AppriseChannel(_config(_url(receiver)), make_deps(policy=OutboundPolicy())).send(_message())
    assert result.outcome == "failed"
    assert (result.error or "").startswith("apprise URL #1 (scheme 'json') refused: host '127.0.0.1': ")
    assert "refused unless listed in webhook_allowed_networks" in (result.error or "")
    assert receiver.posts == []
    assert TOKEN not in caplog.text and PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("json://hooks.test:8080/path", None),
        ("json://internal.test/path", "host 'internal.test': 10.1.2.3 is a private address"),
        ("jsons://meta.test/latest", "host 'meta.test': 169.254.169.254 is a link-local or cloud-metadata"),
        ("xml://10.0.0.7/x", "host '10.0.0.7': 10.0.0.7 is a private address"),
        ("form://nowhere.test/x", "host 'nowhere.test' does not resolve"),
        ("gotify://internal.test/AbCdEfGhIjKlMnO", "host 'internal.test'"),
        ("ntfy://my-alerts", None),  # the topic on ntfy.sh
        ("ntfys://internal.test/my-alerts", "host 'internal.test'"),
        ("mailto://bot:pw@hooks.test?smtp=internal.test", "host 'internal.test'"),
        ("discord://1234567890/AbCdEfGhIjKlMnOpQrStUvWxYz", None),  # a fixed vendor endpoint
        ("tgram://123456789:AbCdEfGhIjKlMnOpQrStUvWxYz/-100123", None),
        ("windows://", "scheme 'windows' notifies the server machine itself; not allowed"),
        ("xyz://thing", "apprise cannot read it (scheme 'xyz')"),
    ],
)
def test_apprise_url_problem(url: str, problem: str | None) -> None:
    found = apprise_url_problem(url, LOOPBACK, resolver)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found
        assert "pw@" not in found


def test_urls_as_the_api_validates_them_are_what_the_channel_reads(
    receiver: Receiver, make_deps: Callable[..., ChannelDeps]
) -> None:
    settings, secrets = parse_channel("apprise", {}, {"urls": _url(receiver)})
    config = ChannelConfig(
        id="ch-b", client_id="c-1", name="a", kind="apprise", settings=settings, secrets=secrets
    )
    assert build_channel(config, make_deps()).send(_message()).outcome == "delivered"
    assert len(receiver.posts) == 1
