"""The agent's own gauges that the default rule pack reads (docs/rules-default-pack.md).

Each tick is driven by hand (``Agent.tick(now)`` on an open spool, no threads), with canned host
families, so the values are exact: the spool's fill, the last send's outcome and load per core.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infragent import wire
from infragent.agent.collectors import HostCollector, MetricPoint
from infragent.agent.collectors.cpu import SystemCollector
from infragent.agent.runtime import Agent, load_per_core
from infragent.agent.settings import load_settings
from infragent.agent.spool import Spool


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    settings = load_settings(
        {
            "INFRAGENT_SERVER_URL": "http://127.0.0.1:9",
            "INFRAGENT_API_KEY": "ia_test",
            "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "agent"),
            "NODE_ID": "web-1",
        }
    )
    system = SystemCollector(
        load_average=lambda: (1.0, 6.0, 3.0), boot_time=lambda: 100.0, logical_count=lambda: 4
    )
    a = Agent(settings, host=HostCollector({"system": system}))
    a.spool = Spool(tmp_path / "spool", max_bytes=1024 * 1024, segment_bytes=64 * 1024)
    yield a
    a.spool.close()


def _tick(agent: Agent, now: float) -> dict[str, float]:
    """The agent's own series of the batch spooled at ``now``, by name."""
    assert agent.tick(now) > 0
    assert agent.spool is not None
    record = agent.spool.peek(100)[-1]
    batch = wire.decode_batch(record.payload, content_encoding="gzip", max_decompressed=1 << 24)
    return {s.name: s.values[-1] for s in batch.series}


def test_spool_fill_and_load_per_core_are_reported(agent: Agent) -> None:
    first = _tick(agent, 1000.0)
    assert first["infragent.agent.load.per_core"] == pytest.approx(6.0 / 4)
    assert first["infragent.agent.buffer.utilization"] == 0.0  # nothing spooled before this tick
    assert agent.spool is not None
    after_first = agent.spool.stats  # what the next tick finds in the spool
    assert after_first.current_bytes > 0
    second = _tick(agent, 1010.0)
    expected = after_first.current_bytes / after_first.max_bytes
    assert second["infragent.agent.buffer.utilization"] == pytest.approx(expected)


def test_server_reachable_follows_the_last_send(agent: Agent) -> None:
    assert "infragent.agent.server.reachable" not in _tick(agent, 1000.0)  # no send tried yet
    agent.link.answered(1000.0, 5.0)
    assert _tick(agent, 1010.0)["infragent.agent.server.reachable"] == 1.0
    agent.link.failed("connection refused")
    assert _tick(agent, 1020.0)["infragent.agent.server.reachable"] == 0.0
    agent.link.answered(1030.0, 5.0)
    assert _tick(agent, 1030.0)["infragent.agent.server.reachable"] == 1.0


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([MetricPoint("system.cpu.load_average.5m", 3.0), MetricPoint("system.cpu.logical.count", 2.0)], 1.5),
        ([MetricPoint("system.cpu.load_average.5m", 3.0)], None),  # the platform gave no CPU count
        ([MetricPoint("system.cpu.logical.count", 2.0)], None),
        (
            [MetricPoint("system.cpu.load_average.5m", 3.0), MetricPoint("system.cpu.logical.count", 0.0)],
            None,
        ),
    ],
)
def test_load_per_core(points: list[MetricPoint], expected: float | None) -> None:
    assert load_per_core(points) == expected
