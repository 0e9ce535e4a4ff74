"""Cumulative I/O counters per block device and per network interface.

Why counters and not rates: a counter survives a lost or delayed sample (the next one still
carries everything), and the server derives rates over whatever window a chart or rule wants.
32-bit kernel counters that wrap around are stitched (psutil's ``nowrap=True``, ``procfs.Unwrapped``
on Linux), so the values we report stay monotonic for the life of the agent process. On Linux the
counters are read from ``/proc/diskstats`` and ``/proc/net/dev`` as psutil reads them
(``procfs.py``); elsewhere psutil is asked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

from infragent.agent.collectors import procfs
from infragent.agent.collectors.point import MetricPoint, counter

Counters = Mapping[str, Mapping[str, int]]
CountersSource = Callable[[], Counters]

#: Block devices that are never interesting and multiply series: unused loop and RAM disks.
SKIPPED_DEVICE_PREFIXES = ("loop", "ram")


def psutil_disk_counters() -> dict[str, dict[str, int]]:
    import psutil  # no /proc/diskstats: not Linux

    return {
        name: dict(io._asdict()) for name, io in psutil.disk_io_counters(perdisk=True, nowrap=True).items()
    }


def psutil_net_counters() -> dict[str, dict[str, int]]:
    import psutil  # no /proc/net/dev: not Linux

    return {name: dict(io._asdict()) for name, io in psutil.net_io_counters(pernic=True, nowrap=True).items()}


def default_disk_counters(proc_root: Path = procfs.PROC_ROOT) -> CountersSource:
    """``/proc/diskstats`` (wraps stitched) where it exists, else psutil."""
    if (proc_root / "diskstats").is_file():
        return procfs.Unwrapped(functools.partial(procfs.disk_counters, proc_root))
    return psutil_disk_counters


def default_net_counters(proc_root: Path = procfs.PROC_ROOT) -> CountersSource:
    """``/proc/net/dev`` (wraps stitched) where it exists, else psutil."""
    if (proc_root / "net" / "dev").is_file():
        return procfs.Unwrapped(functools.partial(procfs.net_counters, proc_root))
    return psutil_net_counters


def _pairs(
    name: str,
    unit: str,
    fields: Mapping[str, int],
    attributes: Mapping[str, str],
    direction_key: str,
    directions: Mapping[str, str],
) -> list[MetricPoint]:
    """One counter per direction, e.g. ``{"read": "read_bytes", "write": "write_bytes"}``."""
    return [
        counter(name, fields[field], unit, {**attributes, direction_key: direction})
        for direction, field in directions.items()
        if field in fields
    ]


class DiskCollector:
    """``system.disk.io`` (bytes) and ``system.disk.operations`` per device and direction."""

    def __init__(
        self,
        counters: CountersSource | None = None,
        skipped_prefixes: tuple[str, ...] = SKIPPED_DEVICE_PREFIXES,
    ) -> None:
        self._counters = counters if counters is not None else default_disk_counters()
        self._skipped_prefixes = skipped_prefixes

    def collect(self, now: float) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for device, fields in sorted(self._counters().items()):
            if device.startswith(self._skipped_prefixes):
                continue
            attributes = {"system.device": device}
            key = "disk.io.direction"
            points += _pairs(
                "system.disk.io",
                "By",
                fields,
                attributes,
                key,
                {"read": "read_bytes", "write": "write_bytes"},
            )
            points += _pairs(
                "system.disk.operations",
                "{operation}",
                fields,
                attributes,
                key,
                {"read": "read_count", "write": "write_count"},
            )
        return points


#: metric name → (unit, {direction: psutil field}) for network interfaces.
NETWORK_METRICS: dict[str, tuple[str, dict[str, str]]] = {
    "system.network.io": ("By", {"transmit": "bytes_sent", "receive": "bytes_recv"}),
    "system.network.packets": ("{packet}", {"transmit": "packets_sent", "receive": "packets_recv"}),
    "system.network.errors": ("{error}", {"transmit": "errout", "receive": "errin"}),
    "system.network.dropped": ("{packet}", {"transmit": "dropout", "receive": "dropin"}),
}


class NetworkCollector:
    """``system.network.{io,packets,errors,dropped}`` per interface and direction."""

    def __init__(self, counters: CountersSource | None = None) -> None:
        self._counters = counters if counters is not None else default_net_counters()

    def collect(self, now: float) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for interface, fields in sorted(self._counters().items()):
            attributes = {"network.interface.name": interface}
            for name, (unit, directions) in NETWORK_METRICS.items():
                points += _pairs(name, unit, fields, attributes, "network.io.direction", directions)
        return points
