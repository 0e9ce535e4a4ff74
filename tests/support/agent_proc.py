"""Run the real server and the real agent as subprocesses, for reliability tests and by hand.

Why subprocesses: the reliability tests stop the server mid-stream and SIGKILL the agent at random
moments; only separate processes die the way production ones do (no ``finally``, no flush).
Readiness is polled on the processes' own health endpoints — no fixed sleeps. Each process's
output goes to a log file next to its data, which failing tests print.

Ports: the agent binds port 0 and publishes the port it got (``local-api.json`` in its data dir,
read again after every start). The server's URL must exist before it first starts (an agent may be
started against a server that is still down) and survive its restarts, so ``ServerProc`` holds a
``PortReservation`` for its whole life and starts ``infragent server`` on that port each time;
the server's own "is up at" line must name it.

Why two environments: the server rejects unknown ``INFRAGENT_*`` variables, and the agent's
(``INFRAGENT_SERVER_URL`` …) are unknown to it, so each process gets only its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from infragent.agent.local_api import read_address
from support.servers import reserve_port


def _base_env() -> dict[str, str]:
    agent_names = {"NODE_ID", "METRICS_INTERVAL", "BUFFER_MAX_SIZE", "HEALTH_CHECK_PORT", "COMMAND_MODE"}
    return {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_") and k not in agent_names}


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class OutputLines:
    """A child's text output, read line by line on a thread, so a test can wait for a line with a
    deadline (a plain ``readline`` blocks for ever if the child neither prints nor exits)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(stream,), name="output-lines", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first line matching ``pattern``; TimeoutError if none came in time or output ended."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if found := regex.search(line):
                        return found
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._done or remaining <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} in:\n{''.join(self._lines)}")
                self._changed.wait(remaining)

    def text(self, timeout_s: float = 10.0) -> str:
        """Everything read; call after the child exited to have all of it."""
        self._thread.join(timeout_s)
        with self._changed:
            return "".join(self._lines)


def _get(url: str, timeout_s: float = 2.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout_s)
    except httpx.TransportError:
        return None


class _Proc:
    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        """Send ``sig`` and wait; returns the exit code (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class ServerProc(_Proc):
    """``python -m infragent server`` on a reserved port: one URL before, between and after its runs.

    ``close()`` releases the port; call it when the test is done with the server.
    """

    name = "server"

    def __init__(self, database_url: str, work_dir: Path) -> None:
        super().__init__(work_dir / "server.log")
        self.database_url = database_url
        self.work_dir = work_dir
        self._reservation = reserve_port()
        self.port = self._reservation.port
        self.url = self._reservation.url

    def close(self) -> None:
        self.kill()
        self._reservation.close()

    def start(self, timeout_s: float = 30.0) -> ServerProc:
        env = _base_env() | {
            "INFRAGENT_DATABASE_URL": self.database_url,
            "INFRAGENT_DATA_DIR": str(self.work_dir / "server-data"),
            "INFRAGENT_LOG_LEVEL": "warning",
        }
        argv = [sys.executable, "-m", "infragent", "server", "--port", str(self.port)]
        self._spawn(argv, env)

        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"server exited:\n{self.log()}")
            response = _get(f"{self.url}/health/ready")
            return response is not None and response.status_code == 200

        wait_until(ready, timeout_s, "the server to be ready")
        announced = re.findall(r"is up at (http://\S+)", self.log(tail=1_000_000))
        if not announced or announced[-1] != self.url:
            raise RuntimeError(f"the server did not announce {self.url}:\n{self.log()}")
        return self


class AgentProc(_Proc):
    """``python -m infragent.agent run`` with its settings in the environment; restartable.

    Its local API binds port 0; ``url`` is read from the address the agent publishes, anew after
    each start (a restart gets another port).
    """

    name = "agent"

    def __init__(
        self, server_url: str, api_key: str, data_dir: Path, *, node_id: str = "reliability-host", **env: str
    ) -> None:
        super().__init__(data_dir.parent / f"{data_dir.name}.log")
        self.data_dir = data_dir
        self.node_id = node_id
        self.env = _base_env() | {
            "INFRAGENT_SERVER_URL": server_url,
            "INFRAGENT_API_KEY": api_key,
            "INFRAGENT_AGENT_DATA_DIR": str(data_dir),
            "INFRAGENT_AGENT_JOURNAL": "1",
            "NODE_ID": node_id,
            "METRICS_INTERVAL": "1",
            "HEALTH_CHECK_PORT": "0",
            "LOG_LEVEL": "info",
        }
        self.env.update(env)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The running agent's local API; waits for it to publish its address after a start."""
        if self._url is None:
            self._url = self._published_url(30.0)
        return self._url

    def _published_url(self, timeout_s: float) -> str:
        found: list[str] = []

        def published() -> bool:
            if not self.running:
                raise RuntimeError(f"agent exited:\n{self.log()}")
            assert self.proc is not None
            address = read_address(self.data_dir)
            if address is not None and address.pid == self.proc.pid:  # not a killed run's file
                found.append(address.url)
            return bool(found)

        wait_until(published, timeout_s, "the agent to publish its local API address")
        return found[0]

    def start(self, timeout_s: float = 30.0, *, wait_ready: bool = True) -> AgentProc:
        self._url = None
        self._spawn([sys.executable, "-m", "infragent.agent", "run"], self.env)
        if wait_ready:
            url = self._published_url(timeout_s)

            def ready() -> bool:
                if not self.running:
                    raise RuntimeError(f"agent exited:\n{self.log()}")
                response = _get(f"{url}/health/ready")
                return response is not None and response.status_code == 200

            wait_until(ready, timeout_s, "the agent to be ready")
            self._url = url
        return self

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/health", timeout=5)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {sample name with labels: value}; enough for these tests."""
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        values: dict[str, float] = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def journal(self) -> dict[str, int]:
        """Every batch the agent spooled, across all its lives: batch id → points."""
        path = self.data_dir / "journal.log"
        batches: dict[str, int] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                batch_id, _, points = line.partition(" ")
                if points:  # a line cut short by SIGKILL has no count: the batch is in the spool
                    batches[batch_id] = int(points)
        return batches
