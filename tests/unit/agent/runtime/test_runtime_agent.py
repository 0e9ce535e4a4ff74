"""The whole agent in-process against a scripted server: register, ship, report, check, pull commands."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scripted import Scripted, scripted_server

from infragent import wire
from infragent.agent.checks import parse_check
from infragent.agent.collectors import HostCollector, MetricPoint
from infragent.agent.collectors.point import gauge
from infragent.agent.local_api import read_address
from infragent.agent.runtime import Agent
from infragent.agent.settings import AgentSettings, load_settings


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return value


def settings_for(url: str, tmp_path: Path, **env: str) -> AgentSettings:
    return load_settings(
        {
            "INFRAGENT_SERVER_URL": url,
            "INFRAGENT_API_KEY": "ia_test",
            "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "agent"),
            "NODE_ID": "web-1",
            "NODE_REGION": "eu",
            "METRICS_INTERVAL": "0.2",
            "HEALTH_CHECK_PORT": "0",
            **env,
        }
    )


@pytest.fixture
def server() -> Iterator[Scripted]:
    with scripted_server() as script:
        script.default = lambda path: (202, b"{}") if path == "/api/v1/events" else (200, b"{}")
        yield script


@pytest.fixture
def run_agent() -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def start(settings: AgentSettings, **kwargs: Any) -> Agent:
        agent = Agent(settings, **kwargs)
        agent.start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()


def batches(server: Scripted) -> list[wire.MetricBatch]:
    return [
        wire.decode_batch(r.body, content_encoding="gzip", max_decompressed=1 << 24)
        for r in server.seen("/api/v1/metrics")
    ]


def test_registers_ships_and_reports(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    agent = run_agent(settings_for(server.url, tmp_path))
    api = f"http://127.0.0.1:{agent.api.address[1]}" if agent.api else ""
    wait_for(lambda: len(server.seen("/api/v1/metrics")) >= 3)
    [reg] = server.seen("/api/v1/agents")
    assert msgspec.json.decode(reg.body) == {
        "node_id": "web-1",
        "kind": "host",
        "command_mode": "pull",
        "actions": [],
        "labels": {"region": "eu"},
    }
    sent = batches(server)
    assert len({b.batch_id for b in sent}) == len(sent)
    assert all(b.node_id == "web-1" and b.resource["host.name"] for b in sent)
    names = {s.name for s in sent[0].series}
    assert {"system.cpu.utilization", "system.memory.usage", "infragent.agent.memory.rss"} <= names
    stamps = [b.series[0].timestamps[0] for b in sent[1:]]
    assert all(abs(ts - round(ts / 0.2) * 0.2) < 1e-3 for ts in stamps)  # on the interval grid

    assert httpx.get(f"{api}/health/live").status_code == 200
    assert httpx.get(f"{api}/health/ready").status_code == 200
    health = httpx.get(f"{api}/health").json()
    assert health["status"] == "healthy"
    assert health["checks"]["collector_connectivity"]["endpoint"] == server.url
    assert health["checks"]["collector_connectivity"]["last_successful_send"].endswith("Z")
    assert 1 < health["checks"]["system_resources"]["memory_mb"] < 500
    text = httpx.get(f"{api}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert (
        families["agent_points_collected"].samples[0].value >= families["agent_points_sent"].samples[0].value
    )
    assert families["agent_server_reachable"].samples[0].value == 1

    agent.stop()
    assert agent.spool is not None and agent.ready is False


def test_port_0_is_published_in_the_data_dir_and_withdrawn_at_stop(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    """With HEALTH_CHECK_PORT=0 the kernel picks the port; local-api.json says which, once it serves."""
    settings = settings_for(server.url, tmp_path)
    assert settings.health_check_port == 0
    agent = run_agent(settings)
    published = read_address(settings.data_dir)
    assert agent.api is not None and published is not None
    assert (published.pid, published.host, published.port) == (os.getpid(), "127.0.0.1", agent.api.address[1])
    assert published.port != 0
    assert httpx.get(f"{published.url}/health/live").status_code == 200
    agent.stop()
    assert read_address(settings.data_dir) is None


def test_not_ready_before_the_first_collection(server: Scripted, tmp_path: Path) -> None:
    agent = Agent(settings_for(server.url, tmp_path))
    assert agent.ready is False
    assert agent.routes()["/health/live"]().status == 200


class Broken:
    def collect(self, now: float) -> list[MetricPoint]:
        raise OSError("no /proc here")


class Fine:
    def collect(self, now: float) -> list[MetricPoint]:
        return [gauge("test.fine", 1.0, "1")]


def test_a_failing_collector_is_counted_not_fatal(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    host = HostCollector({"broken": Broken(), "fine": Fine()})
    agent = run_agent(settings_for(server.url, tmp_path), host=host)
    wait_for(lambda: len(server.seen("/api/v1/metrics")) >= 2)
    assert agent.collector_errors["broken"] >= 2
    assert {s.name for s in batches(server)[0].series} >= {"test.fine"}
    assert agent.snapshot().collector_errors["broken"] >= 2


def test_failing_check_sends_app_down_at_once(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    check = parse_check({"type": "command", "name": "web", "argv": ["false"], "failures_before_down": 1})
    settings = settings_for(server.url, tmp_path, METRICS_INTERVAL="5")
    settings = AgentSettings(**{**{f: getattr(settings, f) for f in settings.__slots__}, "checks": (check,)})
    agent = run_agent(settings)
    [event] = wait_for(lambda: server.seen("/api/v1/events"), timeout_s=5)
    body = msgspec.json.decode(event.body)
    assert body["type"] == "app_down" and body["service"] == "web" and body["severity"] == "critical"
    assert body["node_id"] == "web-1" and body["data"]["check"] == "web"
    assert event.headers["authorization"] == "Bearer ia_test"
    wait_for(lambda: agent.events is not None and agent.events.sent == 1)
    assert agent.snapshot().checks == {"web": "down"}


def test_pull_commands_reach_the_handler(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    pulled = {"commands": [{"headers": {"webhook-id": "c-1"}, "body": '{"command_id": "c-1"}'}]}
    server.reply("/api/v1/agents/web-1/commands", 200, msgspec.json.encode(pulled))
    server.default = lambda path: (204, b"") if path.endswith("/commands") else (200, b"{}")
    got: list[bytes] = []

    def handler(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        got.append(body)
        return {"command_id": "c-1", "status": "ok"}

    agent = run_agent(settings_for(server.url, tmp_path), command_handler=handler)
    assert "infragent-commands" in {t.name for t in agent._threads}  # what the push-mode test looks for
    wait_for(lambda: server.seen("/api/v1/commands/c-1/result"))
    assert got == [b'{"command_id": "c-1"}']


def test_push_mode_and_no_handler_do_not_poll(
    server: Scripted, tmp_path: Path, run_agent: Callable[..., Agent]
) -> None:
    push = run_agent(settings_for(server.url, tmp_path, COMMAND_MODE="push"), command_handler=lambda h, b: {})
    no_handler = run_agent(settings_for(server.url, tmp_path / "b"))
    wait_for(lambda: len(server.seen("/api/v1/agents")) == 2)
    # No poller thread exists, so none can poll later: observable now, no sleep needed to "see nothing".
    for agent in (push, no_handler):
        assert "infragent-commands" not in {t.name for t in agent._threads}
        assert {"infragent-shipper", "infragent-register"} <= {t.name for t in agent._threads}
    assert not [r for r in server.requests if r.path.endswith("/commands")]
