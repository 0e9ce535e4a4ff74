"""Finding a live process by name or pid straight from ``/proc``, for the ``process`` check.

Why not ``psutil.process_iter``: a check must cost what its probe costs, and psutil builds a
``Process`` object per pid and reads ``stat``, ``exe`` and ``cmdline`` of every process on each
run: 8 ms of CPU per probe on a host with 170 processes (measured), which at one probe every 10 s
is most of node_exporter's whole CPU figure. The question is cheaper than that:

1. read ``/proc/PID/comm`` of each pid (the kernel's 15-character name; one small read each) and
   stop at the first live process whose name matches — the usual answer, "it is running";
2. only when none matched, read ``cmdline`` and the ``exe`` link of each pid, because a process may
   be known by its program (``python3.11`` behind ``python3``) or by the ``argv[0]`` it set.

A process matches ``name`` when its ``comm`` is ``name`` (or ``name``'s first 15 characters, then
confirmed by ``argv[0]`` or ``exe``), when ``basename(exe)`` is ``name`` or when
``basename(argv[0])`` is ``name`` — the same rule the psutil version had. Zombies do not count.
Pids vanish while we read: a read that fails means "not this one", never an error.

Everything takes ``proc_root``, so the tests feed canned trees.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC_ROOT = Path("/proc")
#: The kernel's ``TASK_COMM_LEN`` less its NUL: longer names are cut to this in ``comm``.
COMM_LEN = 15


def _read(path: str, size: int = 4096) -> bytes | None:
    """At most ``size`` bytes of a /proc file, or None when it is gone or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _pids(proc_root: Path) -> list[str]:
    try:
        return [entry for entry in os.listdir(proc_root) if entry.isdigit()]
    except OSError:
        return []


def is_alive(pid: int | str, proc_root: Path = PROC_ROOT) -> bool:
    """True when the pid exists and is not a zombie (its ``stat`` state is not ``Z`` or ``X``)."""
    stat = _read(f"{proc_root}/{pid}/stat", 1024)
    if stat is None:
        return False
    end = stat.rfind(b")")  # the name may itself hold ")" or spaces; the state follows the last ")"
    state = stat[end + 2 : end + 3]
    return end >= 0 and state not in (b"Z", b"X", b"")


def _program_names(pid: str, proc_root: Path) -> tuple[str, str]:
    """``(basename(exe), basename(argv[0]))``; empty strings for what cannot be read."""
    try:
        exe = os.path.basename(os.readlink(f"{proc_root}/{pid}/exe"))
    except OSError:
        exe = ""
    exe = exe.removesuffix(" (deleted)")  # the program file was replaced (an upgrade): same program
    cmdline = _read(f"{proc_root}/{pid}/cmdline") or b""
    argv0 = os.path.basename(cmdline.split(b"\0", 1)[0].decode("utf-8", "replace"))
    return exe, argv0


def find_process(name: str, proc_root: Path = PROC_ROOT) -> int | None:
    """The pid of a live process called ``name`` (see the module's rule), or None."""
    pids = _pids(proc_root)
    encoded = name.encode("utf-8", "replace")
    wanted = encoded[:COMM_LEN] + b"\n"
    for pid in pids:
        if _read(f"{proc_root}/{pid}/comm", 64) != wanted:
            continue
        if len(encoded) > COMM_LEN and name not in _program_names(pid, proc_root):
            continue  # the first 15 characters matched another, longer or shorter, name
        if is_alive(pid, proc_root):
            return int(pid)
    for pid in pids:
        if name in _program_names(pid, proc_root) and is_alive(pid, proc_root):
            return int(pid)
    return None
