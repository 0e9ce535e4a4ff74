"""CPU utilization by mode, load averages, uptime and the logical CPU count.

Why deltas of CPU time counters and not ``psutil.cpu_percent()``: ``cpu_percent`` keeps its
previous sample in psutil's module globals, so two users in one process (the agent loop and a
``--once`` run, or two tests) silently steal each other's interval. Each ``CpuCollector`` keeps
its own previous sample instead, and the arithmetic is the pure function ``cpu_utilization``.

Why the counters come from ``{proc_root}/stat`` (on Linux): the collector takes a root, so a test
feeds canned readings and checks that a figure is the difference of two of them; psutil reads the
same line (and is used, imported then, where there is no ``/proc``: see ``procfs.py``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from infragent.agent.collectors import procfs
from infragent.agent.collectors.point import MetricPoint, gauge, updown

logger = logging.getLogger(__name__)

CpuTimes = Mapping[str, float]
CpuTimesSource = Callable[[], CpuTimes]

#: Modes reported, in psutil's names. ``guest`` and ``guest_nice`` are left out on purpose: Linux
#: already counts guest time inside ``user``/``nice``, so adding them would count it twice.
CPU_MODES = ("user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal")


PROC_ROOT = procfs.PROC_ROOT
#: The columns of the aggregate ``cpu`` line of ``/proc/stat``, in order (proc(5)).
PROC_STAT_FIELDS = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)


def psutil_cpu_times() -> dict[str, float]:
    import psutil  # no /proc: not Linux

    return dict(psutil.cpu_times()._asdict())


def system_boot_time(proc_root: Path = PROC_ROOT) -> float:
    """The ``btime`` of ``{proc_root}/stat`` where there is one, else psutil's ``boot_time()``."""
    if (proc_root / "stat").is_file():
        return procfs.boot_time(proc_root)
    import psutil

    return float(psutil.boot_time())


def proc_stat_cpu_times(proc_root: Path = PROC_ROOT) -> dict[str, float]:
    """Seconds spent in each mode by all CPUs since boot, from the first line of ``/proc/stat``.

    The kernel counts in USER_HZ ticks (``SC_CLK_TCK``, 100 on every Linux build we know);
    converted to seconds like psutil does, though only their ratios are used.
    """
    with open(proc_root / "stat", "rb") as stat:
        first = stat.readline().split()
    if not first or first[0] != b"cpu":
        raise ValueError(f"{proc_root / 'stat'} does not start with the aggregate cpu line")
    ticks = float(os.sysconf("SC_CLK_TCK"))
    return {name: int(value) / ticks for name, value in zip(PROC_STAT_FIELDS, first[1:], strict=False)}


def cpu_utilization(previous: CpuTimes | None, current: CpuTimes) -> dict[str, float]:
    """Fraction of CPU time spent in each mode between two samples; the fractions sum to 1.

    ``previous=None`` means "since boot". A mode whose counter went backwards (a CPU taken
    offline lowers the aggregate) counts as 0 rather than as negative time. Returns ``{}`` when no
    time has passed, because any ratio would then be invented.
    """
    modes = [mode for mode in CPU_MODES if mode in current]
    deltas = {mode: max(0.0, current[mode] - (previous or {}).get(mode, 0.0)) for mode in modes}
    total = sum(deltas.values())
    if total <= 0.0:
        return {}
    return {mode: delta / total for mode, delta in deltas.items()}


class CpuCollector:
    """``system.cpu.utilization`` [cpu.mode] over the interval since the previous ``collect``.

    The counters come from ``cpu_times`` when given, else from ``{proc_root}/stat`` when it
    exists, else from psutil (no ``/proc``: not Linux).
    """

    def __init__(self, cpu_times: CpuTimesSource | None = None, *, proc_root: Path = PROC_ROOT) -> None:
        if cpu_times is None:
            has_stat = (proc_root / "stat").is_file()
            cpu_times = functools.partial(proc_stat_cpu_times, proc_root) if has_stat else psutil_cpu_times
        self._cpu_times = cpu_times
        self._previous: CpuTimes | None = None

    def prime(self) -> None:
        """Take the first sample now, so the next ``collect`` covers a short, recent interval."""
        self._previous = self._cpu_times()

    def collect(self, now: float) -> list[MetricPoint]:
        current = self._cpu_times()
        fractions = cpu_utilization(self._previous, current)
        self._previous = current
        if not fractions:
            logger.debug("no CPU time elapsed since the previous sample; skipping utilization")
        return [
            gauge("system.cpu.utilization", value, "1", {"cpu.mode": mode})
            for mode, value in fractions.items()
        ]


class SystemCollector:
    """``system.cpu.load_average.{1m,5m,15m}``, ``system.uptime`` and ``system.cpu.logical.count``.

    Uptime is ``now - boot_time`` so a test can pin it by passing ``now``. The defaults are what
    psutil calls on Linux: ``os.getloadavg``, ``btime`` of ``/proc/stat``, and ``os.cpu_count``
    (``sysconf(_SC_NPROCESSORS_ONLN)``).
    """

    def __init__(
        self,
        load_average: Callable[[], tuple[float, float, float]] = os.getloadavg,
        boot_time: Callable[[], float] = system_boot_time,
        logical_count: Callable[[], int | None] = os.cpu_count,
    ) -> None:
        self._load_average = load_average
        self._boot_time = boot_time
        self._logical_count = logical_count

    def collect(self, now: float) -> list[MetricPoint]:
        one, five, fifteen = self._load_average()
        points = [
            gauge("system.cpu.load_average.1m", one, "{thread}"),
            gauge("system.cpu.load_average.5m", five, "{thread}"),
            gauge("system.cpu.load_average.15m", fifteen, "{thread}"),
            gauge("system.uptime", max(0.0, now - self._boot_time()), "s"),
        ]
        count = self._logical_count()
        if count is not None:  # None when the platform cannot tell
            points.append(updown("system.cpu.logical.count", count, "{cpu}"))
        return points
