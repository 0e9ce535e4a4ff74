"""The whole host: every metric family, the resource that describes the host, and ``--once``.

Why the family boundary catches everything: reading the host can fail in ways no one predicts on a
given kernel or container (a missing ``/proc`` file, a permission, a driver bug). Losing the disk
counters must not cost us the CPU and memory of the same tick, so ``HostCollector`` catches at each
family, logs with the traceback, counts the failure in ``errors`` (the agent exposes that), and
carries on — the loop-boundary rule of STYLE.md §5 applied per family.
"""

from __future__ import annotations

import functools
import logging
import platform
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infragent.agent.collectors.cpu import PROC_ROOT, CpuCollector, SystemCollector, system_boot_time
from infragent.agent.collectors.devices import (
    DiskCollector,
    NetworkCollector,
    default_disk_counters,
    default_net_counters,
)
from infragent.agent.collectors.filesystem import FilesystemCollector, default_partitions
from infragent.agent.collectors.memory import MemoryCollector, default_memory_source
from infragent.agent.collectors.point import Collector, MetricPoint

logger = logging.getLogger(__name__)

MACHINE_ID_PATH = Path("/etc/machine-id")
#: How long ``--once`` waits between its two CPU readings. Utilization is a ratio of two counter
#: differences; at the kernel's 100 ticks a second per CPU, half a second gives 1 % resolution on
#: one CPU, and the command still answers at once.
CPU_SAMPLE_S = 0.5

#: ``platform.machine()`` spellings → the OpenTelemetry ``host.arch`` values.
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm32",
    "armv6l": "arm32",
    "i386": "x86",
    "i686": "x86",
    "ppc64le": "ppc64",
    "ppc64": "ppc64",
    "s390x": "s390x",
}


def default_families(proc_root: Path = PROC_ROOT) -> dict[str, Collector]:
    """The host's families, each under the name its error counter uses, reading ``proc_root``."""
    return {
        "cpu": CpuCollector(proc_root=proc_root),
        "system": SystemCollector(boot_time=functools.partial(system_boot_time, proc_root)),
        "memory": MemoryCollector(default_memory_source(proc_root)),
        "filesystem": FilesystemCollector(default_partitions(proc_root)),
        "disk": DiskCollector(default_disk_counters(proc_root)),
        "network": NetworkCollector(default_net_counters(proc_root)),
    }


class HostCollector:
    """Runs every family; a family that raises yields no points this tick and bumps ``errors``."""

    def __init__(self, families: Mapping[str, Collector] | None = None) -> None:
        self.families: dict[str, Collector] = dict(families if families is not None else default_families())
        self.errors: dict[str, int] = dict.fromkeys(self.families, 0)

    def prime(self) -> None:
        """Let families that measure over an interval (CPU) take their first sample."""
        for name, family in self.families.items():
            prime = getattr(family, "prime", None)
            if callable(prime):
                self._guarded(name, prime)

    def collect(self, now: float) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for name, family in self.families.items():
            points += self._guarded(name, functools.partial(family.collect, now)) or []
        return points

    def _guarded(self, name: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception:  # family boundary: one broken family must not cost the others
            self.errors[name] = self.errors.get(name, 0) + 1
            logger.exception("metric family %s failed", name)
            return None


def _machine_id(path: Path) -> str | None:
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


def resource_attributes(
    node_id: str,
    region: str | None = None,
    environment: str | None = None,
    customer: str | None = None,
    *,
    machine_id_path: Path = MACHINE_ID_PATH,
) -> dict[str, str]:
    """OpenTelemetry resource attributes describing this host and where it belongs.

    ``host.id`` is ``/etc/machine-id`` when readable (stable across reboots and hostname
    changes); otherwise a hash of hostname and node id, which is at least stable for the agent.
    """
    hostname = socket.gethostname()
    host_id = _machine_id(machine_id_path)
    if host_id is None:
        import hashlib  # rarely needed, and it loads six digest modules: only then

        host_id = hashlib.sha256(f"{hostname}\0{node_id}".encode()).hexdigest()[:32]
    machine = platform.machine()
    resource = {
        "host.name": hostname,
        "host.id": host_id,
        "host.arch": _ARCH.get(machine.lower(), machine.lower() or "unknown"),
        "os.type": platform.system().lower() or "unknown",
        "infragent.node.id": node_id,
    }
    optional = {"cloud.region": region, "deployment.environment": environment, "customer.id": customer}
    resource.update({key: value for key, value in optional.items() if value})
    return resource


def collect_once(
    node_id: str,
    region: str | None = None,
    environment: str | None = None,
    customer: str | None = None,
    *,
    cpu_sample_s: float = CPU_SAMPLE_S,
    host: HostCollector | None = None,
    proc_root: Path = PROC_ROOT,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    machine_id_path: Path = MACHINE_ID_PATH,
) -> dict[str, Any]:
    """The JSON document ``infragent agent run --once`` prints.

    CPU utilization is a ratio over an interval, so we take a first reading (``prime``), wait
    ``cpu_sample_s`` and take the second with the collection; without that the CPU figures would
    be averages since boot (mostly idle on any long-running host), not current load.
    """
    host = host if host is not None else HostCollector(default_families(proc_root))
    host.prime()
    sleep(cpu_sample_s)
    now = clock()
    points = host.collect(now)
    return {
        "resource": resource_attributes(
            node_id, region, environment, customer, machine_id_path=machine_id_path
        ),
        "collected_at": now,
        "metrics": [point.to_json() for point in points],
        "errors": {name: count for name, count in host.errors.items() if count},
    }
