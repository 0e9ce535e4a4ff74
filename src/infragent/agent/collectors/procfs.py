"""The host's figures read from ``/proc`` as psutil computes them, without importing psutil.

Why not psutil on Linux: importing it (and ``subprocess``, which it imports) costs the agent about
1.2 MiB resident, and the agent's budget is node_exporter's. What the collectors need from it is a
handful of ``/proc`` files; the formulas below are psutil's (7.x, ``_pslinux``/``_psposix``), so
every series keeps its meaning. psutil stays the fallback, imported only then: on systems without
``/proc``, and for the rare forms not handled here (a kernel without ``MemAvailable``, a root
filesystem mounted as ``/dev/root``) — the reader returns ``None`` and the caller asks psutil.

Every reader takes the ``/proc`` root, so a test feeds a canned tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

PROC_ROOT = Path("/proc")
#: Sectors in ``/proc/diskstats`` are 512 bytes whatever the device's own sector size (psutil's
#: ``DISK_SECTOR_SIZE``; the kernel's block layer counts in these units).
SECTOR_BYTES = 512
#: The mount table psutil reads on a real host: ``/etc/mtab`` (nowadays a link to
#: ``/proc/self/mounts``), else ``{proc_root}/self/mounts``.
ETC_MTAB = Path("/etc/mtab")

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class Partition(NamedTuple):
    """One mounted filesystem, in psutil's ``sdiskpart`` shape."""

    device: str
    mountpoint: str
    fstype: str
    opts: str


class DiskUsage(NamedTuple):
    """psutil's ``sdiskusage``: ``free`` is what non-root may still write, ``percent`` of that."""

    total: int
    used: int
    free: int
    percent: float


def boot_time(proc_root: Path = PROC_ROOT) -> float:
    """Seconds since the epoch at boot: the ``btime`` line of ``/proc/stat``."""
    with open(proc_root / "stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise ValueError(f"no btime line in {proc_root / 'stat'}")


def virtual_memory(proc_root: Path = PROC_ROOT) -> dict[str, int] | None:
    """psutil's ``virtual_memory()`` byte fields from ``/proc/meminfo``; ``None`` without ``MemAvailable``.

    ``cached`` includes ``SReclaimable`` and ``used`` is ``total - available``, as psutil ≥ 6
    reports them. A kernel older than 3.14 (no ``MemAvailable``, or 0) needs psutil's estimate
    from ``/proc/zoneinfo``: the caller falls back to psutil itself.
    """
    mems: dict[bytes, int] = {}
    with open(proc_root / "meminfo", "rb") as meminfo:
        for line in meminfo:
            fields = line.split()
            if len(fields) >= 2:
                mems[fields[0]] = int(fields[1]) * 1024
    available = mems.get(b"MemAvailable:", 0)
    if not available:
        return None
    total = mems[b"MemTotal:"]
    free = mems[b"MemFree:"]
    if available > total:  # a container's distorted figures: psutil (and free(1)) use MemFree
        available = free
    inactive = mems.get(b"Inactive:")
    if inactive is None:
        parts = (b"Inact_dirty:", b"Inact_clean:", b"Inact_laundry:")
        inactive = sum(mems[p] for p in parts) if all(p in mems for p in parts) else 0
    used = total - available
    return {
        "total": total,
        "available": available,
        "used": used,
        "free": free,
        "active": mems.get(b"Active:", 0),
        "inactive": inactive,
        "buffers": mems.get(b"Buffers:", 0),
        "cached": mems.get(b"Cached:", 0) + mems.get(b"SReclaimable:", 0),
        "shared": mems.get(b"Shmem:", mems.get(b"MemShared:", 0)),
        "slab": mems.get(b"Slab:", 0),
    }


def disk_counters(proc_root: Path = PROC_ROOT) -> dict[str, dict[str, int]]:
    """Raw counters per block device from ``/proc/diskstats`` (psutil's ``perdisk=True`` fields).

    The line has 14 fields (kernel < 4.18), 18 (with discards) or 20 (with flushes); 15 on some
    2.6 kernels, 7 for partitions on 2.6 — psutil reads all five, and so do we.
    """
    counters: dict[str, dict[str, int]] = {}
    with open(proc_root / "diskstats", encoding="ascii") as diskstats:
        lines = diskstats.readlines()
    for line in lines:
        fields = line.split()
        n = len(fields)
        if n == 15:
            name, reads = fields[3], int(fields[2])
            rest = [int(x) for x in fields[4:14]]
            merged_r, sectors_r, time_r, writes, merged_w, sectors_w, time_w, _, busy, _ = rest
        elif n == 14 or n >= 18:
            name = fields[2]
            rest = [int(x) for x in fields[3:14]]
            reads, merged_r, sectors_r, time_r, writes, merged_w, sectors_w, time_w, _, busy, _ = rest
        elif n == 7:
            name = fields[2]
            reads, sectors_r, writes, sectors_w = (int(x) for x in fields[3:])
            time_r = time_w = merged_r = merged_w = busy = 0
        else:
            raise ValueError(f"cannot read {proc_root / 'diskstats'} line {line!r}")
        counters[name] = {
            "read_count": reads,
            "write_count": writes,
            "read_bytes": sectors_r * SECTOR_BYTES,
            "write_bytes": sectors_w * SECTOR_BYTES,
            "read_time": time_r,
            "write_time": time_w,
            "read_merged_count": merged_r,
            "write_merged_count": merged_w,
            "busy_time": busy,
        }
    return counters


def net_counters(proc_root: Path = PROC_ROOT) -> dict[str, dict[str, int]]:
    """Raw counters per network interface from ``/proc/net/dev`` (psutil's ``pernic=True`` fields)."""
    counters: dict[str, dict[str, int]] = {}
    with open(proc_root / "net" / "dev", encoding="ascii") as dev:
        lines = dev.readlines()
    for line in lines[2:]:  # two header lines
        name, _, rest = line.rpartition(":")
        values = [int(x) for x in rest.split()]
        counters[name.strip()] = {
            "bytes_sent": values[8],
            "bytes_recv": values[0],
            "packets_sent": values[9],
            "packets_recv": values[1],
            "errin": values[2],
            "errout": values[10],
            "dropin": values[3],
            "dropout": values[11],
        }
    return counters


class Unwrapped:
    """psutil's ``nowrap=True``: counters that wrapped (32-bit kernel counters) keep growing.

    A value lower than the previous reading means the kernel counter restarted from 0; the
    previous reading is added to an offset kept for that device and field from then on. A device
    that disappears loses its offsets (a new one of the same name starts afresh), as in psutil.
    Unlike psutil's module-wide cache, each instance keeps its own readings.
    """

    def __init__(self, read: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self._read = read
        self._last: dict[str, Mapping[str, int]] = {}
        self._offsets: dict[str, dict[str, int]] = {}

    def __call__(self) -> dict[str, dict[str, int]]:
        current = self._read()
        result: dict[str, dict[str, int]] = {}
        for name, fields in current.items():
            last = self._last.get(name)
            offsets = self._offsets.setdefault(name, {})
            if last is not None:
                for field, value in fields.items():
                    if value < last.get(field, 0):
                        offsets[field] = offsets.get(field, 0) + last[field]
            result[name] = {field: value + offsets.get(field, 0) for field, value in fields.items()}
        for gone in self._offsets.keys() - current.keys():
            del self._offsets[gone]
        self._last = dict(current)
        return result


def _unescape(field: str) -> str:
    """The mount table's octal escapes (``\\040`` for a space), decoded as ``getmntent`` does."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), field) if "\\" in field else field


def partitions(proc_root: Path = PROC_ROOT, mtab: Path = ETC_MTAB) -> list[Partition] | None:
    """psutil's ``disk_partitions(all=False)``: mounts of a device with a non-``nodev`` filesystem.

    ``None`` when a mount's device is ``/dev/root`` or ``rootfs``: psutil finds the real device
    behind those aliases (sysfs, the kernel command line), so the caller asks psutil.
    """
    fstypes: set[str] = set()
    with open(proc_root / "filesystems", encoding="utf-8") as filesystems:
        for line in filesystems:
            line = line.strip()
            if not line.startswith("nodev"):
                fstypes.add(line)
            elif line.split("\t")[-1] == "zfs":
                fstypes.add("zfs")
    table = mtab if proc_root == PROC_ROOT and mtab.is_file() else proc_root / "self" / "mounts"
    found: list[Partition] = []
    with open(table, encoding="utf-8", errors="surrogateescape") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) < 4:
                continue
            device, mountpoint, fstype, opts = (_unescape(f) for f in fields[:4])
            if device in ("/dev/root", "rootfs"):
                return None
            if device == "none" or not device or fstype not in fstypes:
                continue
            found.append(Partition(device, mountpoint, fstype, opts))
    return found


def disk_usage(path: str) -> DiskUsage:
    """psutil's POSIX ``disk_usage``: ``used`` excludes root's reserve from ``free``."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    free = st.f_bavail * st.f_frsize
    user_total = used + free
    return DiskUsage(total, used, free, round(100.0 * used / user_total, 1) if user_total else 0.0)


class MemoryInfo(NamedTuple):
    """psutil's Linux ``pmem``: bytes, from ``/proc/<pid>/statm``."""

    rss: int
    vms: int
    shared: int
    text: int
    lib: int
    data: int
    dirty: int


class OwnProcess:
    """The agent's own process for its self-metrics, where it would hold a ``psutil.Process()``.

    ``memory_info()`` reads ``/proc/self/statm`` (what psutil reads); anything else is asked of a
    real ``psutil.Process()``, created (and psutil imported) at its first use.
    """

    def __init__(self, proc_root: Path = PROC_ROOT) -> None:
        self._statm = proc_root / "self" / "statm"
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._psutil: Any = None

    def memory_info(self) -> MemoryInfo:
        with open(self._statm, "rb") as statm:
            vms, rss, shared, text, lib, data, dirty = (int(x) * self._page for x in statm.read().split()[:7])
        return MemoryInfo(rss, vms, shared, text, lib, data, dirty)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not set yet (or never): no psutil for private names
            raise AttributeError(name)
        if self._psutil is None:
            import psutil

            self._psutil = psutil.Process()
        return getattr(self._psutil, name)


def own_process() -> Any:
    """``OwnProcess`` where ``/proc/self/statm`` exists, else ``psutil.Process()``."""
    if (PROC_ROOT / "self" / "statm").is_file():
        return OwnProcess()
    import psutil

    return psutil.Process()
