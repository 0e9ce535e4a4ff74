"""The pure parts of the collectors, fed fixed values: CPU deltas, filesystem states, points."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from infragent.agent.collectors import (
    CpuCollector,
    DiskCollector,
    FilesystemCollector,
    MemoryCollector,
    MetricPoint,
    cpu_utilization,
)
from infragent.agent.collectors.filesystem import real_partitions, usage_by_state


class Part(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    opts: str = "rw,relatime"


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, {"user": 1.0, "system": 1.0, "idle": 2.0}, {"user": 0.25, "system": 0.25, "idle": 0.5}),
        ({"user": 1.0, "idle": 1.0}, {"user": 2.0, "idle": 4.0}, {"user": 0.25, "idle": 0.75}),
        # guest time is already inside user on Linux: it must not be counted twice
        (None, {"user": 2.0, "idle": 2.0, "guest": 2.0}, {"user": 0.5, "idle": 0.5}),
        # a counter going backwards (CPU taken offline) counts as no time, never negative
        ({"user": 5.0, "idle": 1.0}, {"user": 4.0, "idle": 3.0}, {"user": 0.0, "idle": 1.0}),
        # no time elapsed: no ratio can be honest
        ({"user": 1.0, "idle": 1.0}, {"user": 1.0, "idle": 1.0}, {}),
    ],
)
def test_cpu_utilization(
    previous: dict[str, float] | None, current: dict[str, float], expected: dict[str, float]
) -> None:
    assert cpu_utilization(previous, current) == pytest.approx(expected)


def test_cpu_collector_uses_its_own_previous_sample() -> None:
    samples = iter([{"user": 1.0, "idle": 1.0}, {"user": 3.0, "idle": 3.0}, {"user": 3.0, "idle": 7.0}])
    collector = CpuCollector(cpu_times=lambda: next(samples))
    collector.prime()
    assert {p.attribute_map["cpu.mode"]: p.value for p in collector.collect(0.0)} == {
        "user": 0.5,
        "idle": 0.5,
    }
    assert {p.attribute_map["cpu.mode"]: p.value for p in collector.collect(0.0)} == {
        "user": 0.0,
        "idle": 1.0,
    }


def test_memory_reports_only_states_the_platform_has() -> None:
    collector = MemoryCollector(
        virtual_memory=lambda: {"total": 100, "used": 40, "free": 60, "available": 60}, linux=False
    )
    points = {(p.name, p.attribute_map.get("system.memory.state")): p.value for p in collector.collect(0.0)}
    assert points == {
        ("system.memory.usage", "used"): 40,
        ("system.memory.utilization", "used"): 0.4,
        ("system.memory.usage", "free"): 60,
        ("system.memory.utilization", "free"): 0.6,
    }


@pytest.mark.parametrize(
    ("memory", "expected_used"),
    [
        # psutil's used (total - available) overlaps cache: recompute so the states sum to total
        ({"total": 100, "used": 30, "free": 50, "cached": 15, "buffers": 5, "available": 70}, 30),
        ({"total": 100, "used": 50, "free": 40, "cached": 8, "buffers": 2, "available": 50}, 50),
        ({"total": 100, "used": 45, "free": 10, "cached": 30, "buffers": 5, "available": 55}, 55),
        # a container's fake meminfo can make the partition negative: keep psutil's figure
        ({"total": 100, "used": 20, "free": 80, "cached": 30, "buffers": 0, "available": 80}, 20),
    ],
)
def test_memory_states_partition_total(memory: dict[str, int], expected_used: int) -> None:
    points = MemoryCollector(virtual_memory=lambda: memory, linux=True).collect(0.0)
    usage = {p.attribute_map["system.memory.state"]: p.value for p in points if p.name.endswith("usage")}
    assert usage["used"] == expected_used
    assert [p.value for p in points if p.name == "system.linux.memory.available"] == [memory["available"]]


def test_pseudo_and_duplicate_mounts_are_dropped() -> None:
    parts = [Part("/dev/vda", "/", "ext4"), Part("tmpfs", "/run", "tmpfs"), Part("/dev/vda", "/", "ext4")]
    assert [p.mountpoint for p in real_partitions(parts)] == ["/"]


def test_reserved_blocks_make_states_add_up_to_total() -> None:
    assert usage_by_state(DiskUsage(total=100, used=60, free=35)) == {"used": 60, "free": 35, "reserved": 5}


def test_one_unreadable_mount_does_not_hide_the_others() -> None:
    def disk_usage(path: str) -> DiskUsage:
        if path == "/secret":
            raise PermissionError(13, "Permission denied", path)
        return DiskUsage(100, 50, 50)

    parts = [Part("/dev/a", "/secret", "ext4"), Part("/dev/b", "/data", "xfs", "ro,noatime")]
    points = FilesystemCollector(partitions=lambda: parts, disk_usage=disk_usage).collect(0.0)
    assert {p.attribute_map["system.filesystem.mountpoint"] for p in points} == {"/data"}
    assert {p.attribute_map["system.filesystem.mode"] for p in points} == {"ro"}


def test_loop_devices_are_skipped() -> None:
    counters = {
        "loop0": {"read_bytes": 1, "write_bytes": 1, "read_count": 1, "write_count": 1},
        "vda": {"read_bytes": 10, "write_bytes": 20, "read_count": 1, "write_count": 2},
    }
    points = DiskCollector(counters=lambda: counters).collect(0.0)
    assert {p.attribute_map["system.device"] for p in points} == {"vda"}
    assert all(p.kind == "sum" and p.monotonic for p in points)


def test_metric_point_rejects_unsorted_attributes_and_monotonic_gauges() -> None:
    with pytest.raises(ValueError, match="sorted"):
        MetricPoint("m", 1.0, (("b", "1"), ("a", "2")))
    with pytest.raises(ValueError, match="monotonic"):
        MetricPoint("m", 1.0, kind="gauge", monotonic=True)
