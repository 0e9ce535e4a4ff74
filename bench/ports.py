"""Where a benchmarked server listens: each binds port 0 and we ask which port it got.

Why not pick a free port first: another process can take it between the probe and the server's
bind (a busy machine, or five benchmarks at once), and the run fails or, worse, measures someone
else's server. Three ways to ask, one per kind of process:

* ``infragent server`` prints ``is up at http://HOST:PORT`` once it listens: ``announced_port``
  reads that line from the file its stdout goes to.
* the agent writes ``local-api.json`` (pid, host, port) into its data dir: ``agent_port``.
* VictoriaMetrics 1.79 logs the address it was given (``:0``), not the one it got:
  ``listening_port`` reads the process's own listening socket from ``/proc`` (psutil).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import psutil

from infragent.agent.local_api import read_address

_IS_UP = re.compile(rb"is up at http://[^\s:]+:(\d+)")


def _check_alive(proc: subprocess.Popen[bytes], what: str, log: Path | None) -> None:
    if proc.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{what} exited with {proc.returncode} before it listened\n{tail}")


def announced_port(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> int:
    """The port ``infragent server`` says it bound, from ``log`` (where its stdout goes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and (found := _IS_UP.search(log.read_bytes())):
            return int(found[1])
        _check_alive(proc, "the server", log)
        time.sleep(0.05)
    raise RuntimeError(f"the server did not say where it listens in {timeout_s} s")


def agent_port(proc: subprocess.Popen[bytes], data_dir: Path, timeout_s: float = 60.0) -> int:
    """The port the agent ``proc`` published in ``data_dir`` (a file of an earlier run is ignored)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        address = read_address(data_dir)
        if address is not None and address.pid == proc.pid:
            return address.port
        _check_alive(proc, "the agent", None)
        time.sleep(0.05)
    raise RuntimeError(f"the agent did not publish its local API address in {timeout_s} s")


def listening_port(proc: subprocess.Popen[bytes], timeout_s: float = 60.0, log: Path | None = None) -> int:
    """The loopback TCP port ``proc`` listens on, for a process with one listener."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(proc, "the process", log)
        try:
            sockets = psutil.Process(proc.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue  # exited just now: the check above says how
        listening = [c for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr.ip == "127.0.0.1"]
        if listening:
            return int(listening[0].laddr.port)
        time.sleep(0.05)
    raise RuntimeError(f"process {proc.pid} did not listen on 127.0.0.1 in {timeout_s} s")
