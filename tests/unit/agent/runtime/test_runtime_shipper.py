"""The shipper's decision table against a scripted server: ack, retry (Retry-After), pause, dead-letter."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from scripted import Scripted, scripted_server

from infragent import wire
from infragent.agent.delivery import Refusals
from infragent.agent.http import HttpClient
from infragent.agent.poller import CommandPoller
from infragent.agent.shipper import Connectivity, EventSender, MetricShipper, register
from infragent.agent.spool import DeadLetters, Spool
from infragent.backoff import Backoff
from support.servers import closed_port

METRICS = "/api/v1/metrics"


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as script:
        yield script


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every client a test makes is closed afterwards: an open socket is a ResourceWarning (an error)."""
    made: list[HttpClient] = []
    original = HttpClient.__init__

    def init(self: HttpClient, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(HttpClient, "__init__", init)
    yield
    for client in made:
        client.close()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool") as s:
        yield s


def make_shipper(
    spool: Spool, url: str, refusals: Refusals | None = None
) -> tuple[MetricShipper, Connectivity, threading.Event]:
    link = Connectivity(url)
    stop = threading.Event()
    shipper = MetricShipper(
        spool,
        HttpClient(url, timeout_s=5),
        "ia_test",
        wake=threading.Event(),
        stop=stop,
        link=link,
        dead_letters=DeadLetters(spool_dead_letters(spool)),
        refusals=refusals or Refusals(),
        backoff=Backoff(base_s=0.01, cap_s=60, rng=random.Random(1)),
    )
    return shipper, link, stop


def spool_dead_letters(spool: Spool) -> Path:
    return spool.directory.parent / "dead-letter.jsonl"


def test_ack_sends_the_payload_with_the_right_headers(server: Scripted, spool: Spool) -> None:
    spool.append("b-1", 3, b"payload-bytes")
    shipper, link, _ = make_shipper(spool, server.url)
    assert shipper.ship_pending() == 0.0
    [seen] = server.seen(METRICS)
    assert seen.body == b"payload-bytes"
    assert seen.headers["authorization"] == "Bearer ia_test"
    assert seen.headers["content-type"] == wire.CONTENT_TYPE
    assert seen.headers["content-encoding"] == "gzip"
    assert (shipper.points_sent, spool.stats.records) == (3, 0)
    assert link.status.reachable is True and link.status.last_success is not None
    assert shipper.ship_pending() is None  # empty: wait for a wake-up


def test_503_with_retry_after_then_200(server: Scripted, spool: Spool) -> None:
    server.reply(METRICS, 503, b'{"detail": "busy"}', {"Retry-After": "7"})
    spool.append("b-1", 5, b"p")
    shipper, link, _ = make_shipper(spool, server.url)
    [record] = spool.peek(1)
    delay = shipper.ship(record)
    assert delay is not None and 7.0 <= delay <= 60.0  # Retry-After is a floor
    assert spool.stats.records == 1 and shipper.points_sent == 0
    assert link.status.error is not None and "503" in link.status.error
    assert shipper.ship(record) is None  # the default answer is 200
    assert (shipper.points_sent, spool.stats.records, link.status.error) == (5, 0, None)
    assert len(server.seen(METRICS)) == 2


def test_409_means_already_stored(server: Scripted, spool: Spool) -> None:
    server.reply(METRICS, 409)
    spool.append("b-1", 2, b"p")
    shipper, _, _ = make_shipper(spool, server.url)
    shipper.ship_pending()
    assert (shipper.points_sent, spool.stats.records) == (2, 0)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_malformed_batches_go_to_the_dead_letter_file_and_the_rest_is_sent(
    server: Scripted, spool: Spool, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(METRICS, status, b'{"detail": "series[0]: a value is NaN"}')
    spool.append("bad", 4, b"p1")
    spool.append("good", 6, b"p2")
    shipper, link, _ = make_shipper(spool, server.url)
    with caplog.at_level(logging.ERROR):
        assert shipper.ship_pending() == 0.0
    assert (shipper.points_dead_lettered, shipper.points_sent, spool.stats.records) == (4, 6, 0)
    assert f"HTTP {status}" in caplog.text and "a value is NaN" in caplog.text and "bad" in caplog.text
    assert link.status.reachable is True
    [letter] = DeadLetters(spool_dead_letters(spool)).entries()
    assert (letter.kind, letter.id, letter.points, letter.status, letter.raw()) == (
        "metrics",
        "bad",
        4,
        status,
        b"p1",
    )
    assert "a value is NaN" in letter.reason


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_routing_refusals_keep_everything_and_pause_for_a_minute(
    server: Scripted, spool: Spool, status: int
) -> None:
    server.reply(METRICS, status, b'{"detail": "invalid API key"}')
    server.reply(METRICS, status, b'{"detail": "invalid API key"}')
    spool.append("b-1", 4, b"p1")
    spool.append("b-2", 6, b"p2")
    refusals = Refusals()
    shipper, link, _ = make_shipper(spool, server.url, refusals)
    delay = shipper.ship_pending()
    assert delay is not None and delay >= 60.0  # the long pause, not the 10 ms retry backoff
    assert (spool.stats.records, shipper.points_sent, shipper.points_dead_lettered) == (2, 0, 0)
    assert len(server.seen(METRICS)) == 1  # paused: the batch behind it is not tried either
    assert refusals.reason is not None and f"metrics: HTTP {status}" in refusals.reason
    assert "invalid API key" in refusals.reason and link.status.reachable is True
    second = shipper.ship_pending()
    assert second is not None and second >= 60.0  # still refused: paused again
    assert shipper.ship_pending() == 0.0  # the key is fixed: everything kept is sent, in order
    assert refusals.reason is None
    assert (spool.stats.records, shipper.points_sent) == (0, 10)
    assert [r.body for r in server.seen(METRICS)] == [b"p1", b"p1", b"p1", b"p2"]
    assert not spool_dead_letters(spool).exists()


def test_server_down_keeps_the_batch(spool: Spool) -> None:
    spool.append("b-1", 1, b"p")
    shipper, link, _ = make_shipper(spool, f"http://127.0.0.1:{closed_port()}")
    delay = shipper.ship_pending()
    assert delay is not None and delay > 0
    assert spool.stats.records == 1
    assert link.status.reachable is False and "connect" in (link.status.error or "")


def test_run_ships_as_soon_as_woken(server: Scripted, spool: Spool) -> None:
    shipper, _, stop = make_shipper(spool, server.url)
    thread = threading.Thread(target=shipper.run, daemon=True)
    thread.start()
    try:
        assert shipper.idle.wait(5)  # the spool was empty: the shipper now waits for a wake-up
        spool.append("b-1", 1, b"p")
        started = time.monotonic()
        shipper._wake.set()
        while shipper.points_sent == 0 and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert shipper.points_sent == 1 and time.monotonic() - started < 1.0
    finally:
        stop.set()
        shipper._wake.set()
        thread.join(5)


def test_events_retry_then_send(server: Scripted) -> None:
    server.reply("/api/v1/events", 503, headers={"Retry-After": "0"})
    server.reply("/api/v1/events", 202)
    stop = threading.Event()
    sender = EventSender(HttpClient(server.url), "ia_test", stop=stop, backoff=Backoff(0.01, 0.05))
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    try:
        sender.submit(
            {"type": "app_down", "service": "web", "severity": "critical", "data": {}, "node_id": "n"}
        )
        deadline = time.monotonic() + 5
        while sender.sent == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sender.sent == 1
        bodies = [msgspec.json.decode(r.body) for r in server.seen("/api/v1/events")]
        assert len(bodies) == 2 and bodies[0] == bodies[1]
        assert bodies[0]["type"] == "app_down" and bodies[0]["service"] == "web"
    finally:
        stop.set()
        sender.wake()
        thread.join(5)


def test_events_refused_for_auth_are_kept_and_paused(server: Scripted) -> None:
    server.reply("/api/v1/events", 401, b'{"detail": "invalid API key"}')
    refusals = Refusals()
    sender = EventSender(
        HttpClient(server.url), "ia_test", stop=threading.Event(), refusals=refusals, pause=Backoff(30, 60)
    )
    sender.submit({"type": "app_down", "service": "web"})
    delay = sender.send_next()
    assert delay is not None and delay >= 30.0
    assert (sender.sent, sender.dropped, sender.queued) == (0, 0, 1)
    assert refusals.reason is not None and "events: HTTP 401" in refusals.reason
    assert sender.send_next() is None  # accepted now
    assert (sender.sent, sender.queued, refusals.reason) == (1, 0, None)


def test_event_queue_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    sender = EventSender(HttpClient("http://127.0.0.1:9"), "k", stop=threading.Event(), max_queue=2)
    for i in range(5):
        sender.submit({"type": "app_down", "service": f"s{i}"})
    assert sender.dropped == 3
    assert "queue full" in caplog.text


def test_register_retries_until_accepted(server: Scripted) -> None:
    server.reply("/api/v1/agents", 500)
    server.reply("/api/v1/agents", 401, b'{"detail": "bad key"}')
    registration = {"node_id": "n", "kind": "host", "command_mode": "pull", "actions": [], "labels": {}}
    refusals = Refusals()
    ok = register(
        HttpClient(server.url),
        "ia",
        registration,
        stop=threading.Event(),
        backoff=Backoff(0.01, 0.05),
        refusals=refusals,
        pause=Backoff(0.01, 0.05),
    )
    assert ok and refusals.reason is None
    bodies = [msgspec.json.decode(r.body) for r in server.seen("/api/v1/agents")]
    assert bodies == [registration] * 3


def test_poller_runs_commands_and_reports_results(server: Scripted) -> None:
    command = {"command_id": "cmd-1", "action": "restart", "params": {}}
    raw = msgspec.json.encode(command).decode()
    headers = {"Webhook-Id": "cmd-1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}
    pulled = msgspec.json.encode({"commands": [{"headers": headers, "body": raw}]})
    path = "/api/v1/agents/web-1/commands"
    server.reply(path, 200, pulled)
    server.reply(path, 204, b"")
    server.reply("/api/v1/commands/cmd-1/result", 503)  # the report is retried
    calls: list[tuple[dict[str, str], bytes]] = []

    def handler(h: dict[str, str], body: bytes) -> dict[str, object]:
        calls.append((h, body))
        return {"command_id": "cmd-1", "status": "ok", "output": "done", "http_status": 200}

    stop = threading.Event()
    poller = CommandPoller(HttpClient(server.url), "ia", "web-1", handler, stop=stop, wait_s=1)
    assert poller.poll_once() == 0.0
    assert calls == [({k.lower(): v for k, v in headers.items()}, raw.encode())]
    [poll] = server.seen(path)[:1]
    assert poll.method == "GET" and poll.query == "wait=1" and poll.headers["authorization"] == "Bearer ia"
    results = server.seen("/api/v1/commands/cmd-1/result")
    assert len(results) == 2 and msgspec.json.decode(results[-1].body)["status"] == "ok"
    assert poller.poll_once() == 0.0  # 204: nothing to do, poll again
    assert poller.handled == 1


def test_poller_backs_off_when_the_server_has_no_pull_endpoint(server: Scripted) -> None:
    server.default = lambda path: (404, b'{"detail": "Not Found"}')
    poller = CommandPoller(HttpClient(server.url), "ia", "n", lambda h, b: {}, stop=threading.Event())
    assert poller.poll_once() > 0
