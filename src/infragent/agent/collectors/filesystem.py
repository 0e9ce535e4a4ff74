"""Filesystem usage and utilization per mounted real partition.

Why ``used``/``free``/``reserved``: ext4 and friends keep blocks back for root, so ``used +
free`` (psutil's ``free`` is what non-root may still write) falls short of ``total``. Reporting
the remainder as ``reserved`` makes the states sum to the size, as the OpenTelemetry conventions
ask, while ``free`` still hits 0 exactly when applications start failing to write.

One mount failing (a stale NFS handle, a FUSE mount we may not stat) is logged and skipped; it
must not hide the other mounts.

The mounts and their usage are psutil's ``disk_partitions(all=False)`` and ``disk_usage``; on Linux
``procfs.py`` reads the same files and does the same arithmetic without importing psutil.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from infragent.agent.collectors import procfs
from infragent.agent.collectors.point import MetricPoint, gauge

logger = logging.getLogger(__name__)

#: Filesystems that hold no user data, or are always full by design (squashfs snaps), so that
#: their usage would only page someone for nothing. ``disk_partitions(all=False)`` drops most of
#: them already; this list is the belt to its braces.
PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "proc",
        "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    }
)  # fmt: skip


class Partition(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...
    @property
    def opts(self) -> str: ...


class Usage(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def free(self) -> int: ...


def psutil_partitions() -> Sequence[Partition]:
    """Real partitions only (``all=False``): psutil drops ``nodev`` filesystems for us."""
    import psutil  # not Linux, or a /dev/root device to resolve

    return psutil.disk_partitions(all=False)


def proc_partitions(proc_root: Path = procfs.PROC_ROOT) -> Sequence[Partition]:
    """``procfs.partitions``, or psutil's when a device needs resolving (``/dev/root``)."""
    found = procfs.partitions(proc_root)
    return found if found is not None else psutil_partitions()


def default_partitions(proc_root: Path = procfs.PROC_ROOT) -> Callable[[], Iterable[Partition]]:
    """``{proc_root}/filesystems`` and the mount table where they exist, else psutil."""
    if (proc_root / "filesystems").is_file():
        return functools.partial(proc_partitions, proc_root)
    return psutil_partitions


def real_partitions(partitions: Iterable[Partition]) -> list[Partition]:
    """Partitions worth reporting: not pseudo filesystems, one entry per mountpoint."""
    seen: set[str] = set()
    kept: list[Partition] = []
    for partition in partitions:
        if partition.fstype in PSEUDO_FSTYPES or partition.mountpoint in seen:
            continue
        seen.add(partition.mountpoint)
        kept.append(partition)
    return kept


def usage_by_state(usage: Usage) -> dict[str, int]:
    """Bytes per state; ``reserved`` is whatever ``used + free`` leaves of ``total``."""
    return {
        "used": usage.used,
        "free": usage.free,
        "reserved": max(0, usage.total - usage.used - usage.free),
    }


class FilesystemCollector:
    """``system.filesystem.usage`` and ``system.filesystem.utilization`` per mount and state."""

    def __init__(
        self,
        partitions: Callable[[], Iterable[Partition]] | None = None,
        disk_usage: Callable[[str], Usage] = procfs.disk_usage,
    ) -> None:
        self._partitions = partitions if partitions is not None else default_partitions()
        self._disk_usage = disk_usage

    def collect(self, now: float) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for partition in real_partitions(self._partitions()):
            try:
                usage = self._disk_usage(partition.mountpoint)
            except OSError as exc:  # PermissionError included; one bad mount must not hide the rest
                logger.warning("cannot stat filesystem %s: %s", partition.mountpoint, exc)
                continue
            base = {
                "system.device": partition.device,
                "system.filesystem.mountpoint": partition.mountpoint,
                "system.filesystem.type": partition.fstype,
                "system.filesystem.mode": "ro" if "ro" in partition.opts.split(",") else "rw",
            }
            for state, value in usage_by_state(usage).items():
                attributes = {**base, "system.filesystem.state": state}
                points.append(gauge("system.filesystem.usage", value, "By", attributes))
                if usage.total > 0:
                    points.append(
                        gauge("system.filesystem.utilization", value / usage.total, "1", attributes)
                    )
        return points
