"""Run the real server and the real agent as subprocesses, for reliability tests and by hand.

Why subprocesses: the reliability tests stop the server mid-stream and SIGKILL the agent at random
moments; only separate processes die the way production ones do (no ``finally``, no flush).
Readiness is polled on the processes' own health endpoints — no fixed sleeps. Each process's
output goes to a log file next to its data, which failing tests print.

Why two environments: the server rejects unknown ``INFRAGENT_*`` variables, and the agent's
(``INFRAGENT_SERVER_URL`` …) are unknown to it, so each process gets only its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from support.servers import free_port


def _base_env() -> dict[str, str]:
    agent_names = {"NODE_ID", "METRICS_INTERVAL", "BUFFER_MAX_SIZE", "HEALTH_CHECK_PORT", "COMMAND_MODE"}
    return {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_") and k not in agent_names}


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


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
    """``python -m infragent server`` on a fixed free port, so it can be restarted on the same URL."""

    name = "server"

    def __init__(self, database_url: str, work_dir: Path) -> None:
        super().__init__(work_dir / "server.log")
        self.database_url = database_url
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

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
        return self


class AgentProc(_Proc):
    """``python -m infragent.agent run`` with its settings in the environment; restartable."""

    name = "agent"

    def __init__(
        self, server_url: str, api_key: str, data_dir: Path, *, node_id: str = "reliability-host", **env: str
    ) -> None:
        super().__init__(data_dir.parent / f"{data_dir.name}.log")
        self.data_dir = data_dir
        self.node_id = node_id
        self.port = free_port()
        self.env = _base_env() | {
            "INFRAGENT_SERVER_URL": server_url,
            "INFRAGENT_API_KEY": api_key,
            "INFRAGENT_AGENT_DATA_DIR": str(data_dir),
            "INFRAGENT_AGENT_JOURNAL": "1",
            "NODE_ID": node_id,
            "METRICS_INTERVAL": "1",
            "HEALTH_CHECK_PORT": str(self.port),
            "LOG_LEVEL": "info",
        }
        self.env.update(env)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0, *, wait_ready: bool = True) -> AgentProc:
        self._spawn([sys.executable, "-m", "infragent.agent", "run"], self.env)
        if wait_ready:

            def ready() -> bool:
                if not self.running:
                    raise RuntimeError(f"agent exited:\n{self.log()}")
                response = _get(f"{self.url}/health/ready")
                return response is not None and response.status_code == 200

            wait_until(ready, timeout_s, "the agent to be ready")
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
