"""Memory usage and utilization by state, as the OpenTelemetry semantic conventions define them.

Why we compute ``used`` ourselves: the conventions ask that the states sum to total memory, so a
stacked chart adds up. psutil ≥ 6 reports ``used = total - available`` on Linux, which overlaps
``cached`` and ``buffers``; where those two exist we use ``total - free - cached - buffers``
instead (what ``free(1)`` and the OpenTelemetry host-metrics receiver report). The pressure signal
that ``total - available`` carried is kept as ``system.linux.memory.available``, its OTel name.
Platforms without ``cached``/``buffers`` (macOS, Windows) report psutil's ``used`` and ``free``.

The figures are psutil's ``virtual_memory()``; on Linux they are read from ``/proc/meminfo`` by
``procfs.virtual_memory`` (psutil's formulas, without importing psutil).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from infragent.agent.collectors import procfs
from infragent.agent.collectors.point import MetricPoint, gauge

MemorySource = Callable[[], Mapping[str, int]]

MEMORY_STATES = ("used", "free", "cached", "buffers")


def psutil_virtual_memory() -> dict[str, int]:
    import psutil  # no /proc/meminfo, or a kernel without MemAvailable

    return dict(psutil.virtual_memory()._asdict())


def proc_virtual_memory(proc_root: Path = procfs.PROC_ROOT) -> Mapping[str, int]:
    """``procfs.virtual_memory``, or psutil's when that cannot tell (a kernel older than 3.14)."""
    memory = procfs.virtual_memory(proc_root)
    return memory if memory is not None else psutil_virtual_memory()


def default_memory_source(proc_root: Path = procfs.PROC_ROOT) -> MemorySource:
    """``/proc/meminfo`` where it exists, else psutil."""
    if (proc_root / "meminfo").is_file():
        return functools.partial(proc_virtual_memory, proc_root)
    return psutil_virtual_memory


def memory_by_state(memory: Mapping[str, int]) -> dict[str, int]:
    """Bytes per OTel state; the states partition ``total`` when the platform reports them all."""
    states = {state: memory[state] for state in MEMORY_STATES if state in memory}
    if "cached" in states and "buffers" in states:
        partition_used = memory["total"] - memory["free"] - memory["cached"] - memory["buffers"]
        if partition_used >= 0:  # negative on some containers' fake /proc/meminfo: keep psutil's
            states["used"] = partition_used
    return states


class MemoryCollector:
    """``system.memory.usage`` (bytes) and ``system.memory.utilization`` [system.memory.state]."""

    def __init__(
        self,
        virtual_memory: MemorySource | None = None,
        linux: bool = sys.platform.startswith("linux"),
    ) -> None:
        self._virtual_memory = virtual_memory if virtual_memory is not None else default_memory_source()
        self._linux = linux

    def collect(self, now: float) -> list[MetricPoint]:
        memory = self._virtual_memory()
        total = memory["total"]
        points: list[MetricPoint] = []
        for state, value in memory_by_state(memory).items():
            attributes = {"system.memory.state": state}
            points.append(gauge("system.memory.usage", value, "By", attributes))
            if total > 0:
                points.append(gauge("system.memory.utilization", value / total, "1", attributes))
        if self._linux and "available" in memory:
            points.append(gauge("system.linux.memory.available", memory["available"], "By"))
        return points
