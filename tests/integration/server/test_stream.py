"""The tenant live stream (``GET /api/v1/stream``) against the real app under uvicorn, on SQLite and
PostgreSQL (issue 12, point 5).

Changes are made the way the server's own paths make them (store calls in one transaction, the
incident API, the metric store's write path); the stream is read with an httpx streaming client.
Every wait is bounded: httpx's read timeout for the stream, a deadline for the hub's counters.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from infragent.cli.runtime import ThreadedServer
from infragent.config import Settings
from infragent.model import ActionResult, ActionSpec, Decision
from infragent.server.app import create_app
from infragent.store import commands, incidents
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.dashboard_data import incident
from support.databases import register_agent
from support.web import Site, register_tenant, serve_site, sign_in

STREAM = "/api/v1/stream"
INCIDENTS = "/api/v1/incidents"
READ_TIMEOUT = httpx.Timeout(10.0, read=5.0)


@dataclass
class Tenant:
    client_id: str
    admin: str
    read: str
    ingest: str


class Api(Site):
    """The served app (``support.web.Site``) and what the stream tests write into its store."""

    def tenant(self, email: str) -> Tenant:
        return Tenant(*register_tenant(self.http, email, "read", "ingest"))

    def incident(self, client_id: str, node: str = "n1") -> str:
        return incident(self.store, client_id, time.time(), node=node, data={})

    def command(self, client_id: str, node: str = "web-1") -> str:
        """A person's command, queued for a pull agent (audit: decision.made, command.queued)."""
        agent = register_agent(
            self.store,
            client_id,
            node,
            kind="agent",
            command_mode="pull",
            actions=[ActionSpec("restart", {})],
            labels={},
            now=time.time(),
        )
        with self.store.write() as conn:
            decision = Decision("user", "restart", "asked from the dashboard", target="nginx")
            _, command_id = commands.record_decision(
                conn,
                client_id=client_id,
                agent_id=agent.id,
                event_ids=[],
                decision=decision,
                now=time.time(),
                actor="user:u1",
            )
            assert command_id is not None
            commands.queue_for_pull(conn, client_id, command_id, node, time.time(), "user:u1")
        return command_id

    def finish(self, client_id: str, command_id: str, output: str) -> None:
        with self.store.write() as conn:
            result = ActionResult("ok", output)
            assert commands.record_result(
                conn, client_id, command_id, result, time.time(), "agent:web-1", "pull"
            )

    def metrics(self, client_id: str, host: str, cpu_idle: float, load: float) -> float:
        now = time.time()
        series = [
            SeriesData(
                "system.cpu.utilization", "1", "gauge", False, {"cpu.mode": "idle"}, [now], [cpu_idle]
            ),
            SeriesData("system.cpu.load_average.1m", "{thread}", "gauge", False, {}, [now], [load]),
        ]
        batch = MetricBatch(f"b-{now}", host, {"host.name": host}, series)
        self.svc.metric_store.write_batch(client_id, batch, now)
        return now


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _settings(**kw: Any) -> Settings:
    return Settings(webhook_allowed_networks=("127.0.0.0/8",), **kw)


@pytest.fixture
def make_api(store: SqlStore) -> Iterator[Callable[..., Api]]:
    """Serve an app with these settings on the test's store; every one stops at the test's end."""
    with ExitStack() as servers:

        def make(**kw: Any) -> Api:
            site = servers.enter_context(serve_site(store, _settings(**kw), timeout_s=10))
            return Api(site.app, site.http)

        yield make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api(stream_heartbeat_s=0.3)


def read_events(lines: Iterator[str], until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """SSE events (and ``comment`` entries) off the stream until ``until(found)``; httpx's read
    timeout bounds every wait, and the stream's heartbeats keep it from idling past it."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            current["comment"] = line[1:].strip()
        elif line == "":
            if current:
                found.append(current)
                current = {}
                if until(found):
                    return found
        else:
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    raise AssertionError(f"the stream ended after {found}")


def named(found: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [e for e in found if e.get("event") in names]


def count(*names: str, n: int = 1) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda found: len(named(found, *names)) >= n


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_incident_and_command_changes_arrive_and_other_tenants_never_do(api: Api) -> None:
    acme, other = api.tenant("ops@acme.example"), api.tenant("ops@other.example")
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        ready = read_events(lines, count("ready"))
        assert named(ready, "ready")[0]["data"] == {"resumed": False}
        api.incident(other.client_id)  # another tenant's: never on this stream
        api.command(other.client_id)
        incident_id = api.incident(acme.client_id)
        got = read_events(lines, count("incident", n=2))
        command_id = api.command(acme.client_id)
        api.finish(acme.client_id, command_id, "nginx restarted")
        got += read_events(lines, count("command", n=3))
    changes = named(got, "incident")
    assert [e["data"]["kind"] for e in changes] == ["opened", "event"]
    assert all(e["data"]["incident_id"] == incident_id for e in changes)
    first = changes[0]["data"]
    assert first["status"] == "open" and first["severity"] == "critical" and "app_down" in first["title"]
    steps = [e["data"] for e in named(got, "command")]
    assert [s["status"] for s in steps] == ["queued", "queued", "done"]
    assert {s["command_id"] for s in steps} == {command_id}
    assert steps[-1]["output"] == "nginx restarted" and steps[-1]["host"] == "web-1"
    assert steps[0]["action"] == "restart" and isinstance(steps[0]["at"], float)


def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(api: Api) -> None:
    acme = api.tenant("ops@acme.example")
    incident_id = api.incident(acme.client_id)
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()
        read_events(lines, count("ready"))
        for text in ("one", "two"):
            api.http.post(f"{INCIDENTS}/{incident_id}/notes", json={"text": text}, headers=auth(acme.admin))
        seen = named(read_events(lines, count("incident", n=2)), "incident")
    last_id = seen[-1]["id"]
    # while disconnected: a note, a status change and a command
    api.http.post(f"{INCIDENTS}/{incident_id}/notes", json={"text": "three"}, headers=auth(acme.admin))
    api.http.post(f"{INCIDENTS}/{incident_id}/acknowledge", headers=auth(acme.admin))
    command_id = api.command(acme.client_id)
    headers = auth(acme.read) | {"Last-Event-ID": last_id}
    with api.http.stream("GET", STREAM, headers=headers, timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()
        caught = read_events(lines, count("ready"))
        api.http.post(f"{INCIDENTS}/{incident_id}/notes", json={"text": "four"}, headers=auth(acme.admin))
        live = read_events(lines, count("incident"))
    replayed = named(caught, "incident", "command", "reset")
    assert [(e["event"], e["data"].get("kind"), e["data"]["status"]) for e in replayed] == [
        ("incident", "note", "acknowledged"),
        ("incident", "status", "acknowledged"),
        ("command", None, "queued"),
        ("command", None, "queued"),
    ]
    assert {e["data"]["command_id"] for e in replayed[2:]} == {command_id}
    assert named(caught, "ready")[0]["data"] == {"resumed": True}
    assert [e["data"]["kind"] for e in named(live, "incident")] == ["note"]
    # ids only grow, and the ready event's id is where the catch-up ended
    ids = [e["id"] for e in replayed] + [named(caught, "ready")[0]["id"]]
    assert ids == sorted(ids, key=lambda i: [int(p[1:]) for p in i.split(".")])


def test_too_many_missed_events_send_a_reset_and_a_bad_cursor_starts_from_now(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(stream_heartbeat_s=0.3)
    api.svc.stream.config = dataclasses.replace(api.svc.stream.config, replay_max=3)
    acme = api.tenant("ops@acme.example")
    incident_id = api.incident(acme.client_id)
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        start = named(read_events(r.iter_lines(), count("ready")), "ready")[0]["id"]
    for i in range(5):
        api.http.post(f"{INCIDENTS}/{incident_id}/notes", json={"text": f"n{i}"}, headers=auth(acme.admin))
    headers = auth(acme.read) | {"Last-Event-ID": start}
    with api.http.stream("GET", STREAM, headers=headers, timeout=READ_TIMEOUT) as r:
        got = read_events(r.iter_lines(), count("ready"))
    assert [e["event"] for e in named(got, "incident", "reset", "ready")] == ["reset", "ready"]
    for cursor in ("garbage", "t999999999.a999999999.h0"):  # not a cursor of this tenant's stream
        headers = auth(acme.read) | {"Last-Event-ID": cursor}
        with api.http.stream("GET", STREAM, headers=headers, timeout=READ_TIMEOUT) as r:
            assert r.status_code == 200
            got = read_events(r.iter_lines(), count("ready"))
        assert named(got, "ready")[0]["data"] == {"resumed": False} and not named(got, "incident", "reset")


def test_heartbeats_carry_the_cursor(api: Api) -> None:
    acme = api.tenant("ops@acme.example")
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        got = read_events(
            r.iter_lines(), lambda found: sum(e.get("comment") == "heartbeat" for e in found) >= 2
        )
    beats = [e for e in got if e.get("comment") == "heartbeat"]
    assert beats and all(b["id"].startswith("t") for b in beats)


def test_a_slow_subscriber_is_dropped_and_the_others_are_not(make_api: Callable[..., Api]) -> None:
    api = make_api(stream_heartbeat_s=0.3, stream_queue_max=3)
    acme = api.tenant("ops@acme.example")
    incident_id = api.incident(acme.client_id)
    hub = api.svc.stream
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()
        read_events(lines, count("ready"))
        with api.store.write() as conn:  # a burst bigger than the queue, committed at once
            for i in range(10):
                incidents.add_note(conn, acme.client_id, incident_id, "test", f"n{i}", time.time())
        with pytest.raises(AssertionError, match="the stream ended"):
            read_events(lines, count("incident", n=10))
    assert hub.dropped_total == 1
    wait_until(lambda: hub.subscriber_count == 0 and hub.feed_count == 0)
    scrape = api.http.get("/metrics").text
    assert "infragent_stream_dropped_total 1.0" in scrape and "infragent_stream_subscribers 0.0" in scrape


def test_the_cap_per_key_is_a_429_with_retry_after(make_api: Callable[..., Api]) -> None:
    api = make_api(stream_heartbeat_s=0.3, stream_max_connections=1)
    acme = api.tenant("ops@acme.example")
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()  # held: a dropped iterator closes the connection
        read_events(lines, count("ready"))
        refused = api.http.get(STREAM, headers=auth(acme.read))
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
        assert "at most 1" in refused.json()["detail"]
        with api.http.stream("GET", STREAM, headers=auth(acme.admin), timeout=READ_TIMEOUT) as other_key:
            assert other_key.status_code == 200  # the cap is per key, not per tenant
    wait_until(lambda: api.svc.stream.subscriber_count == 0)
    with api.http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        assert r.status_code == 200  # freed by the disconnect


def test_a_viewer_session_may_stream_and_an_ingest_key_may_not(api: Api) -> None:
    acme = api.tenant("ops@acme.example")
    with httpx.Client(base_url=str(api.http.base_url)) as browser:
        sign_in(api.app, acme.client_id, "viewer", browser, email="viewer@acme.example")
        with browser.stream("GET", STREAM, timeout=READ_TIMEOUT) as r:
            assert r.status_code == 200
            assert named(read_events(r.iter_lines(), count("ready")), "ready")
    r = api.http.get(STREAM, headers=auth(acme.ingest))
    assert r.status_code == 403 and r.json()["required_scope"] == "read"
    assert api.http.get(STREAM).status_code == 401


def test_a_disconnect_frees_the_subscription_and_stops_the_feeds(api: Api) -> None:
    acme = api.tenant("ops@acme.example")
    api.metrics(acme.client_id, "web-1", 0.9, 0.5)
    hub = api.svc.stream
    with api.http.stream(
        "GET", STREAM, params={"host": "web-1"}, headers=auth(acme.read), timeout=READ_TIMEOUT
    ) as r:
        lines = r.iter_lines()  # held: a dropped iterator closes the connection
        read_events(lines, count("ready"))
        assert hub.subscriber_count == 1 and hub.feed_count == 2  # the tenant's and the host's metrics
    wait_until(
        lambda: (
            hub.subscriber_count == 0
            and hub.feed_count == 0
            and hub.owner_count(f"key:{acme.read.split('_')[1]}") == 0
        )
    )


def test_host_metrics_and_host_events(api: Api) -> None:
    acme, other = api.tenant("ops@acme.example"), api.tenant("ops@other.example")
    api.metrics(acme.client_id, "web-1", 0.75, 0.4)
    api.metrics(other.client_id, "db-9", 0.5, 1.0)
    for host, status in (("nope", 404), ("db-9", 404)):  # unknown; another tenant's
        r = api.http.get(STREAM, params={"host": host}, headers=auth(acme.read))
        assert r.status_code == status and host in r.json()["detail"]
    params = {"host": "web-1"}
    with api.http.stream("GET", STREAM, params=params, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
        lines = r.iter_lines()
        got = read_events(lines, count("metrics"))  # the point written just before (look-back)
        ts = api.metrics(acme.client_id, "web-1", 0.25, 2.5)
        got += read_events(lines, lambda found: any(e["data"]["ts"] == ts for e in named(found, "metrics")))
        api.metrics(acme.client_id, "app-2", 0.5, 0.1)  # a new host appears
        api.metrics(other.client_id, "db-8", 0.5, 0.1)  # another tenant's: never here
        got += read_events(lines, count("host"))
    latest = next(e["data"] for e in named(got, "metrics") if e["data"]["ts"] == ts)
    assert latest["host"] == "web-1" and latest["values"]["cpu"] == pytest.approx(75.0)  # percent, as charted
    assert latest["values"]["load"] == pytest.approx(2.5)
    assert all("id" not in e for e in named(got, "metrics"))  # not resumable
    host = named(got, "host")[0]["data"]
    assert host["host"] == "app-2" and host["online"] is True


def test_the_server_stops_while_a_stream_is_open(store: SqlStore) -> None:
    """uvicorn waits for every response before it stops; the CLI's server ends the streams first."""
    app = create_app(_settings(), store=store)
    srv = ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_until(lambda: srv.started)
    http = httpx.Client(base_url=f"http://127.0.0.1:{srv.bound_port}", timeout=10)
    with http:
        acme = Api(app, http).tenant("ops@acme.example")
        with http.stream("GET", STREAM, headers=auth(acme.read), timeout=READ_TIMEOUT) as r:
            lines = r.iter_lines()
            read_events(lines, count("ready"))
            srv.should_exit = True
            thread.join(10)
            assert not thread.is_alive(), "the server waited for the open stream"
            assert list(lines) == []  # the stream ended cleanly
