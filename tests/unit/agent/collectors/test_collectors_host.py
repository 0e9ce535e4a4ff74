"""One real run of every metric family on this host, and the ``--once`` document."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

from infragent.agent.collectors import (
    CpuCollector,
    DiskCollector,
    FilesystemCollector,
    HostCollector,
    MemoryCollector,
    MetricPoint,
    NetworkCollector,
    SystemCollector,
    collect_once,
    resource_attributes,
)

FAMILIES = {
    "system.cpu.utilization",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.uptime",
    "system.cpu.logical.count",
    "system.memory.usage",
    "system.memory.utilization",
    "system.filesystem.usage",
    "system.filesystem.utilization",
    "system.network.io",
    "system.network.packets",
    "system.network.errors",
}


def by_name(points: list[MetricPoint]) -> dict[str, list[MetricPoint]]:
    grouped: dict[str, list[MetricPoint]] = defaultdict(list)
    for point in points:
        grouped[point.name].append(point)
    return grouped


def _burn_cpu(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_cpu_modes_are_fractions_that_sum_to_one() -> None:
    collector = CpuCollector()
    for _ in range(2):  # since boot, then over a short busy interval
        _burn_cpu(0.05)
        points = collector.collect(time.time())
        assert {p.attribute_map["cpu.mode"] for p in points} >= {"user", "system", "idle"}
        assert all(0.0 <= p.value <= 1.0 and p.unit == "1" for p in points)
        assert sum(p.value for p in points) == pytest.approx(1.0, abs=0.05)


def test_load_uptime_and_cpu_count() -> None:
    points = {p.name: p for p in SystemCollector().collect(time.time())}
    for window in ("1m", "5m", "15m"):
        assert points[f"system.cpu.load_average.{window}"].value >= 0.0
    assert points["system.uptime"].value > 0.0
    assert points["system.cpu.logical.count"].value >= 1
    assert points["system.cpu.logical.count"].kind == "sum"


def test_memory_usage_and_utilization() -> None:
    points = by_name(MemoryCollector().collect(time.time()))
    used = [p for p in points["system.memory.usage"] if p.attribute_map["system.memory.state"] == "used"]
    assert used and used[0].value > 0 and used[0].unit == "By"
    ratios = [p.value for p in points["system.memory.utilization"]]
    assert all(0.0 <= r <= 1.0 for r in ratios)
    if len(ratios) == 4:  # Linux: used, free, cached, buffers partition total memory
        assert sum(ratios) == pytest.approx(1.0, abs=0.01)


def test_filesystems_have_states_that_add_up() -> None:
    points = by_name(FilesystemCollector().collect(time.time()))
    mounts = {p.attribute_map["system.filesystem.mountpoint"] for p in points["system.filesystem.usage"]}
    assert mounts, "at least one real filesystem"
    for mount in mounts:
        usage = [
            p
            for p in points["system.filesystem.usage"]
            if p.attribute_map["system.filesystem.mountpoint"] == mount
        ]
        assert {p.attribute_map["system.filesystem.state"] for p in usage} == {"used", "free", "reserved"}
        assert {"system.device", "system.filesystem.type"} <= usage[0].attribute_map.keys()
        ratios = [
            p.value
            for p in points["system.filesystem.utilization"]
            if p.attribute_map["system.filesystem.mountpoint"] == mount
        ]
        assert all(0.0 <= r <= 1.0 for r in ratios)
        assert sum(ratios) == pytest.approx(1.0, abs=0.01)


def test_disk_counters_per_device() -> None:
    real = [d for d in psutil.disk_io_counters(perdisk=True) if not d.startswith(("loop", "ram"))]
    points = by_name(DiskCollector().collect(time.time()))
    if not real:
        pytest.skip("this host exposes no block devices")
    assert {p.attribute_map["system.device"] for p in points["system.disk.io"]} == set(real)
    assert {p.attribute_map["disk.io.direction"] for p in points["system.disk.operations"]} == {
        "read",
        "write",
    }
    assert all(p.monotonic and p.value >= 0 for p in points["system.disk.io"])


def test_network_counters_include_loopback_and_never_decrease() -> None:
    collector = NetworkCollector()
    first = {(p.name, p.attributes): p.value for p in collector.collect(time.time())}
    second = {(p.name, p.attributes): p.value for p in collector.collect(time.time())}
    lo = {p for p in first if ("network.interface.name", "lo") in p[1]}
    assert {name for name, _ in lo} >= {
        "system.network.io",
        "system.network.packets",
        "system.network.errors",
    }
    directions = {dict(attributes)["network.io.direction"] for _, attributes in lo}
    assert directions == {"transmit", "receive"}
    assert all(second[key] >= value for key, value in first.items() if key in second)


class _BrokenCollector:
    def collect(self, now: float) -> list[MetricPoint]:
        raise RuntimeError("psutil exploded")


def test_a_failing_family_leaves_the_others_intact(caplog: pytest.LogCaptureFixture) -> None:
    host = HostCollector({"broken": _BrokenCollector(), "memory": MemoryCollector()})
    with caplog.at_level(logging.ERROR, logger="infragent.agent.collectors.host"):
        first = host.collect(time.time())
        host.collect(time.time())
    assert {p.name for p in first} >= {"system.memory.usage", "system.memory.utilization"}
    assert host.errors == {"broken": 2, "memory": 0}
    assert "metric family broken failed" in caplog.text and "psutil exploded" in caplog.text


def test_collect_once_is_json_with_every_family() -> None:
    document = json.loads(json.dumps(collect_once("node-1", "eu-west-1", "prod", "acme")))
    assert set(document) == {"resource", "collected_at", "metrics", "errors"}
    assert document["errors"] == {}
    assert document["resource"]["customer.id"] == "acme"
    assert document["resource"]["cloud.region"] == "eu-west-1"
    names = {m["name"] for m in document["metrics"]}
    assert names >= FAMILIES
    cpu = [m for m in document["metrics"] if m["name"] == "system.cpu.utilization"]
    assert sum(m["value"] for m in cpu) == pytest.approx(1.0, abs=0.05)
    sample = document["metrics"][0]
    assert set(sample) == {"name", "unit", "kind", "monotonic", "attributes", "value"}


def test_resource_attributes_fall_back_to_a_stable_host_id(tmp_path: Path) -> None:
    missing = tmp_path / "machine-id"
    first = resource_attributes("node-1", machine_id_path=missing)
    assert first == resource_attributes("node-1", machine_id_path=missing)
    assert len(first["host.id"]) == 32
    assert {"host.name", "host.arch", "os.type"} <= first.keys()
    assert not {"cloud.region", "deployment.environment", "customer.id"} & first.keys()
    missing.write_text("abc123\n")
    assert resource_attributes("node-1", machine_id_path=missing)["host.id"] == "abc123"
