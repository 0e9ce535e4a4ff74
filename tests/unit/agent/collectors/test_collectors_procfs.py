"""The /proc readers give psutil's figures without psutil.

Two kinds of proof: a canned ``/proc`` tree pins each format the readers accept (and where they
hand over to psutil), and the same call on this host is compared with psutil's own answer, field
by field, so a drift from psutil's formulas shows up as a failing test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from infragent.agent.collectors import procfs
from infragent.agent.collectors.devices import DiskCollector, default_disk_counters
from infragent.agent.collectors.filesystem import default_partitions
from infragent.agent.collectors.memory import MemoryCollector, default_memory_source

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the real /proc")

MEMINFO = """\
MemTotal:        2000000 kB
MemFree:          500000 kB
MemAvailable:    1200000 kB
Buffers:           20000 kB
Cached:           600000 kB
SwapCached:            0 kB
Active:           700000 kB
Inactive:         400000 kB
Shmem:             10000 kB
Slab:              90000 kB
SReclaimable:      60000 kB
"""

DISKSTATS = """\
   7       0 loop0 10 0 20 5 0 0 0 0 0 8 5 0 0 0 0
   8       0 sda 100 5 2000 50 200 7 4000 80 0 120 130 0 0 0 0 0 0
   8       1 sda1 90 5 1800 45 190 7 3900 75 0 110 120
 253       0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
   8      16 sdb1 11 22 33 44
"""

NET_DEV = """\
Inter-|   Receive                                  |  Transmit
 face |bytes packets errs drop fifo frame compr multicast|bytes packets errs drop fifo colls carrier compr
    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0
  eth0: 500000 400 1 2 0 0 0 3 250000 300 4 5 0 0 0 0
"""

FILESYSTEMS = "nodev\tsysfs\nnodev\tproc\nnodev\ttmpfs\n\text4\n\tvfat\nnodev\tzfs\n"
MOUNTS = """\
sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw 0 0
/dev/sda2 /boot/efi vfat ro,relatime 0 0
/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0
none /none ext4 rw 0 0
tank/data /tank zfs rw 0 0
"""


def canned(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_meminfo_as_psutil_computes_it(tmp_path: Path) -> None:
    memory = procfs.virtual_memory(canned(tmp_path, meminfo=MEMINFO))
    assert memory is not None
    assert memory["total"] == 2_000_000 * 1024
    assert memory["available"] == 1_200_000 * 1024
    assert memory["used"] == (2_000_000 - 1_200_000) * 1024  # total - available, as psutil >= 6
    assert memory["cached"] == (600_000 + 60_000) * 1024  # Cached + SReclaimable
    assert memory["buffers"] == 20_000 * 1024 and memory["free"] == 500_000 * 1024
    assert memory["shared"] == 10_000 * 1024 and memory["slab"] == 90_000 * 1024


def test_meminfo_without_available_is_left_to_psutil(tmp_path: Path) -> None:
    old_kernel = MEMINFO.replace("MemAvailable:    1200000 kB\n", "")
    assert procfs.virtual_memory(canned(tmp_path, meminfo=old_kernel)) is None


def test_meminfo_available_above_total_is_free(tmp_path: Path) -> None:
    container = MEMINFO.replace("MemAvailable:    1200000 kB", "MemAvailable:    9000000 kB")
    memory = procfs.virtual_memory(canned(tmp_path, meminfo=container))
    assert memory is not None and memory["available"] == memory["free"] == 500_000 * 1024


def test_diskstats_every_line_format(tmp_path: Path) -> None:
    counters = procfs.disk_counters(canned(tmp_path, diskstats=DISKSTATS))
    assert set(counters) == {"loop0", "sda", "sda1", "dm-0", "sdb1"}
    sda = counters["sda"]  # 18 fields (with discards)
    assert (sda["read_count"], sda["write_count"]) == (100, 200)
    assert (sda["read_bytes"], sda["write_bytes"]) == (2000 * 512, 4000 * 512)
    assert (sda["read_merged_count"], sda["busy_time"]) == (5, 120)
    assert counters["sda1"]["write_bytes"] == 3900 * 512  # 14 fields (kernel < 4.18)
    assert counters["dm-0"]["read_count"] == 1  # 20 fields (with flushes)
    sdb1 = counters["sdb1"]  # 7 fields: a 2.6 kernel's partition line
    assert (sdb1["read_count"], sdb1["read_bytes"], sdb1["write_count"]) == (11, 22 * 512, 33)


def test_diskstats_unknown_format_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="diskstats"):
        procfs.disk_counters(canned(tmp_path, diskstats="8 0 sda 1 2 3\n"))


def test_net_dev(tmp_path: Path) -> None:
    counters = procfs.net_counters(canned(tmp_path, net__dev=NET_DEV))
    assert set(counters) == {"lo", "eth0"}
    eth0 = counters["eth0"]
    assert (eth0["bytes_recv"], eth0["bytes_sent"]) == (500_000, 250_000)
    assert (eth0["packets_recv"], eth0["packets_sent"]) == (400, 300)
    assert (eth0["errin"], eth0["dropin"], eth0["errout"], eth0["dropout"]) == (1, 2, 4, 5)


def test_wrapped_counters_keep_growing_and_a_vanished_device_starts_afresh() -> None:
    readings = iter(
        [
            {"eth0": {"bytes": 4_000_000_000}},
            {"eth0": {"bytes": 100}},  # the 32-bit kernel counter wrapped
            {"eth0": {"bytes": 300}},
            {},  # the interface is gone
            {"eth0": {"bytes": 50}},  # a new one of the same name
        ]
    )
    unwrapped = procfs.Unwrapped(lambda: next(readings))
    assert unwrapped()["eth0"]["bytes"] == 4_000_000_000
    assert unwrapped()["eth0"]["bytes"] == 4_000_000_100
    assert unwrapped()["eth0"]["bytes"] == 4_000_000_300
    assert unwrapped() == {}
    assert unwrapped()["eth0"]["bytes"] == 50


def test_partitions_keep_real_devices_of_real_filesystems(tmp_path: Path) -> None:
    root = canned(tmp_path, filesystems=FILESYSTEMS, self__mounts=MOUNTS)
    found = procfs.partitions(root)
    assert found == [
        procfs.Partition("/dev/sda1", "/", "ext4", "rw,relatime"),
        procfs.Partition("/dev/sda2", "/boot/efi", "vfat", "ro,relatime"),
        procfs.Partition("/dev/sdb1", "/mnt/my disk", "ext4", "rw"),  # \\040 decoded
        procfs.Partition("tank/data", "/tank", "zfs", "rw"),  # nodev, but zfs is kept as psutil does
    ]


def test_partitions_with_dev_root_are_left_to_psutil(tmp_path: Path) -> None:
    root = canned(tmp_path, filesystems=FILESYSTEMS, self__mounts="/dev/root / ext4 rw 0 0\n")
    assert procfs.partitions(root) is None


def test_boot_time(tmp_path: Path) -> None:
    root = canned(tmp_path, stat="cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n")
    assert procfs.boot_time(root) == 1_700_000_000.0
    with pytest.raises(ValueError, match="btime"):
        procfs.boot_time(canned(tmp_path, stat="cpu  1 2 3 4\n"))


def test_collectors_read_a_canned_tree(tmp_path: Path) -> None:
    root = canned(
        tmp_path,
        meminfo=MEMINFO,
        diskstats=DISKSTATS,
        net__dev=NET_DEV,
        filesystems=FILESYSTEMS,
        self__mounts="/dev/sda1 / ext4 rw 0 0\n",
    )
    memory = MemoryCollector(default_memory_source(root)).collect(0.0)
    used = [
        p
        for p in memory
        if p.name == "system.memory.usage" and p.attribute_map["system.memory.state"] == "used"
    ]
    assert used[0].value == (2_000_000 - 500_000 - 660_000 - 20_000) * 1024  # the partition of total
    disks = {
        p.attribute_map["system.device"] for p in DiskCollector(default_disk_counters(root)).collect(0.0)
    }
    assert disks == {"sda", "sda1", "dm-0", "sdb1"}  # loop devices skipped
    assert default_partitions(root)() == [procfs.Partition("/dev/sda1", "/", "ext4", "rw")]


@linux_only
def test_same_figures_as_psutil_on_this_host() -> None:
    ours = procfs.virtual_memory()
    theirs = psutil.virtual_memory()._asdict()
    assert ours is not None
    assert ours["total"] == theirs["total"]
    assert {k for k in theirs if k != "percent"} == set(ours)
    assert procfs.boot_time() == psutil.boot_time()
    assert set(procfs.disk_counters()) == set(psutil.disk_io_counters(perdisk=True))
    assert set(procfs.net_counters()) == set(psutil.net_io_counters(pernic=True))
    assert procfs.partitions() == [tuple(p) for p in psutil.disk_partitions(all=False)]
    assert procfs.disk_usage("/").total == psutil.disk_usage("/").total
    assert tuple(procfs.disk_usage("/"))[:3] == pytest.approx(tuple(psutil.disk_usage("/"))[:3], rel=0.01)
    ours_lo = procfs.net_counters()["lo"]
    theirs_lo = psutil.net_io_counters(pernic=True)["lo"]._asdict()
    assert set(ours_lo) == set(theirs_lo)
    assert all(ours_lo[k] <= theirs_lo[k] for k in ours_lo)  # read first: psutil's may have grown


@linux_only
def test_own_process_memory_is_psutils() -> None:
    own = procfs.own_process()
    assert isinstance(own, procfs.OwnProcess)
    ours = own.memory_info()
    theirs = psutil.Process().memory_info()
    assert ours.vms == pytest.approx(theirs.vms, rel=0.05)
    assert ours.rss == pytest.approx(theirs.rss, rel=0.05)
    assert own.pid == os.getpid()  # anything else is a real psutil.Process's answer


@linux_only
def test_a_full_collection_does_not_import_psutil() -> None:
    """A fresh interpreter: this test process has psutil loaded by the tests above."""
    script = (
        "import sys, time\n"
        "from infragent.agent.collectors import HostCollector\n"
        "from infragent.agent.collectors.procfs import own_process\n"
        "host = HostCollector(); host.prime(); points = host.collect(time.time())\n"
        "rss = own_process().memory_info().rss\n"
        "print(len(points), rss > 0, sum(host.errors.values()), 'psutil' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    points, rss_ok, errors, psutil_loaded = proc.stdout.split()
    assert int(points) > 10 and rss_ok == "True" and errors == "0"
    assert psutil_loaded == "False"
