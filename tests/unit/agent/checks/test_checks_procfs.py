"""The ``process`` probe's /proc reader, on canned trees: every way a process can be known, zombies not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infragent.agent.checks import parse_check, procfs
from infragent.agent.checks.config import ProcessCheck
from infragent.agent.checks.probes import probe_process


def add(
    root: Path, pid: int, comm: str, state: str = "S", *, argv: list[str] | None = None, exe: str = ""
) -> None:
    """One /proc/PID directory as the kernel writes it: comm, stat, cmdline and the exe link."""
    directory = root / str(pid)
    directory.mkdir(parents=True)
    (directory / "comm").write_bytes(comm.encode()[:15] + b"\n")
    (directory / "stat").write_text(f"{pid} ({comm[:15]}) {state} 1 {pid} {pid} 0 -1 4194560 0 0 0\n")
    (directory / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in (argv or [])))
    if exe:
        os.symlink(exe, directory / "exe")


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    add(root, 1, "systemd", argv=["/sbin/init"], exe="/usr/lib/systemd/systemd")
    add(root, 20, "nginx", "Z")  # a zombie: exited, not reaped
    add(root, 30, "python3", argv=["python3", "app.py"], exe="/usr/bin/python3.11")
    add(root, 40, "averyveryverylongname", argv=["/opt/bin/averyveryverylongname"])
    add(root, 50, "app-main", argv=["/usr/local/bin/app", "--serve"], exe="/usr/local/bin/app-main")
    add(root, 60, "we) Z (ird", argv=["weird"])  # a name holding ") Z (": the state is after the last ")"
    add(root, 70, "gunicorn", argv=["gunicorn: master [web]"], exe="/usr/bin/python3.11 (deleted)")
    return root


@pytest.mark.parametrize(
    ("name", "pid"),
    [
        ("systemd", 1),  # comm
        ("nginx", None),  # only a zombie has that name
        ("python3.11", 30),  # basename of the exe link (or of 70's, replaced on disk)
        ("averyveryverylongname", 40),  # comm holds 15 characters; argv[0] confirms the rest
        ("averyveryverylongother", None),  # same first 15 characters, another name
        ("app", 50),  # basename of argv[0]
        ("we) Z (ird", 60),
        ("postgres", None),
    ],
)
def test_find_process(proc: Path, name: str, pid: int | None) -> None:
    found = procfs.find_process(name, proc)
    assert found == pid or (name == "python3.11" and found in {30, 70})


def test_is_alive(proc: Path) -> None:
    assert procfs.is_alive(1, proc) and procfs.is_alive(60, proc)
    assert not procfs.is_alive(20, proc)  # zombie
    assert not procfs.is_alive(99, proc)  # gone


def _check(**raw: object) -> ProcessCheck:
    parsed = parse_check({"type": "process", "name": "p", **raw})
    assert isinstance(parsed, ProcessCheck)
    return parsed


def test_probe_on_a_canned_tree(proc: Path, tmp_path: Path) -> None:
    assert probe_process(_check(process_name="systemd"), proc_root=proc).status == "up"
    down = probe_process(_check(process_name="nginx"), proc_root=proc)
    assert (down.status, down.error) == ("down", "no running process named 'nginx'")
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text("20\n")
    zombie = probe_process(_check(pidfile=str(pidfile)), proc_root=proc)
    assert (zombie.status, zombie.error) == ("down", f"pid 20 from {pidfile} is not running")
    pidfile.write_text("50")
    assert probe_process(_check(pidfile=str(pidfile)), proc_root=proc).status == "up"


def test_no_process_table_is_unavailable_not_down(tmp_path: Path) -> None:
    result = probe_process(_check(process_name="x"), proc_root=tmp_path / "none")
    assert (result.status, result.latency_ms) == ("unavailable", None)
    assert result.error == f"no process table at {tmp_path / 'none'} on this host"
