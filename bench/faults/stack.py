"""The real processes of the fault suite: ``infragent up --no-agent`` (server + responder with the
step runbooks of ``book.py``), a real agent (pull mode) with checks and the allowlisted actions
(``restart``, and the scripts of ``book.fix_scripts``), and the service it guards.

Why these and not in-process objects: the faults are process deaths, hangs and restarts; only
separate processes die the way production ones do. Everything binds 127.0.0.1; the server's port
is held by a bound, non-listening socket for the suite's whole life (``SO_REUSEADDR``), so the
server can be restarted on the same URL and nothing else can take the port. Every child is
started in its own session and killed, by its pid, in ``close`` (also on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import book

SERVICE = Path(__file__).with_name("service.py")


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(step_s)


def http_ok(url: str, timeout_s: float = 0.3) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Reservation:
    """A loopback port bound without listening: refused until a server binds it with SO_REUSEADDR."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])


class Child:
    """One child process, its log, and a stop by its own pid (its session: grandchildren too)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name, self.log = name, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Stack:
    """Server+responder, agent and service in ``work``; ``database_url`` empty means SQLite there."""

    def __init__(
        self,
        work: Path,
        database_url: str = "",
        *,
        watch_exit: bool = True,
        rules: str | None = None,
        env: dict[str, str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.work, self.say = work, say
        self.database_url = database_url or f"sqlite:///{work / 'infragent.sqlite3'}"
        self.watch_exit = watch_exit
        self.rules = rules
        self.extra_env = dict(env or {})
        self.reservation = Reservation()
        self.base = f"http://127.0.0.1:{self.reservation.port}"
        self.server = Child("server", work / "server.log")
        self.agent = Child("agent", work / "agent.log")
        self.service_port = free_port()
        self.service_url = f"http://127.0.0.1:{self.service_port}/health"
        self.state = work / "svc-state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.pidfile = work / "svc.pid"
        self.hog_pidfile = work / "hog.pid"
        self.leak_pidfile = work / "leak.pid"
        self.fill_dir = work / "fill"
        self.fill_dir.mkdir(exist_ok=True)
        self.node = "faults-host"
        self.api_key = ""
        self.secret = ""
        self._first_service: subprocess.Popen[bytes] | None = None

    # -- the server ---------------------------------------------------------------------------
    def server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
        runbooks = self.work / "runbooks.yaml"
        runbooks.write_text(book.RUNBOOKS)
        env.update(
            {
                "INFRAGENT_DATABASE_URL": self.database_url,
                "INFRAGENT_DATA_DIR": str(self.work / "server-data"),
                "INFRAGENT_RUNBOOKS_PATH": str(runbooks),
                "INFRAGENT_COOLDOWN_S": "2",
                "INFRAGENT_SWEEP_INTERVAL_S": "2",
                "INFRAGENT_LEASE_S": "5",
                "INFRAGENT_RUN_LEASE_S": "5",
                "INFRAGENT_RUN_POLL_S": "0.2",
                "INFRAGENT_LOG_LEVEL": "warning",
                "INFRAGENT_NOTIFY_ENABLED": "false",
                **self.extra_env,
            }
        )
        return env

    def start_server(self) -> None:
        argv = [sys.executable, "-m", "infragent", "up", "--no-agent", "--port", str(self.reservation.port)]
        self.server.start(argv, self.server_env())

        def ready() -> bool:
            if not self.server.running:
                raise RuntimeError(f"server exited:\n{self.server.tail()}")
            return http_ok(f"{self.base}/health/ready", 1.0)

        wait_until(ready, 60, "the server")

    def register(self) -> None:
        body = {
            "email": "faults@example.com",
            "company_name": "Faults",
            "webhook_url": "http://127.0.0.1:9/unused",
        }
        reg = self.request("POST", "/api/v1/clients/register", body, auth=False)
        self.api_key, self.secret = reg["api_key"], reg["webhook_secret"]
        if self.rules is not None:  # rule_files load into the tenants there are at start: none yet
            import yaml

            for group in yaml.safe_load(self.rules)["groups"]:
                for rule in group["rules"]:
                    self.request("POST", "/api/v1/rules", {**rule, "group": group["name"]})

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    # -- the agent ----------------------------------------------------------------------------
    def service_argv(self) -> list[str]:
        return [
            sys.executable,
            str(SERVICE),
            "service",
            "--port",
            str(self.service_port),
            "--pidfile",
            str(self.pidfile),
            "--state",
            str(self.state),
        ]

    def agent_config(self) -> Path:
        checks = [
            {
                "type": "process",
                "name": "svc",
                "pidfile": str(self.pidfile),
                "interval_s": 1,
                "failures_before_down": 1,
                "watch_exit": self.watch_exit,
            },
            {
                "type": "http",
                "name": "svc-http",
                "url": self.service_url,
                "interval_s": 1,
                "timeout_s": 0.5,
                "failures_before_down": 3,
            },
        ]
        actions = [
            {
                "name": "restart",
                "kind": "process",
                "pidfile": str(self.pidfile),
                "stop_signal": "SIGTERM",
                "stop_timeout_s": 1,
                "start": self.service_argv(),
                "start_grace_s": 0.5,
            },
            *book.fix_scripts(self.work, self.hog_pidfile, self.leak_pidfile, self.fill_dir),
        ]
        path = self.work / "agent.json"
        path.write_text(json.dumps({"node_id": self.node, "checks": checks, "actions": actions}))
        return path

    def start_agent(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
        env.update(
            {
                "INFRAGENT_SERVER_URL": self.base,
                "INFRAGENT_API_KEY": self.api_key,
                "INFRAGENT_WEBHOOK_SECRET": self.secret,
                "INFRAGENT_AGENT_DATA_DIR": str(self.work / "agent-data"),
                "INFRAGENT_AGENT_RETRY_MAX_S": "1",
                "HEALTH_CHECK_PORT": "0",
                "METRICS_INTERVAL": "1",
                "COMMAND_MODE": "pull",
                "LOG_LEVEL": "warning",
            }
        )
        self.agent.start(
            [sys.executable, "-m", "infragent.agent", "run", "--config", str(self.agent_config())], env
        )

    def agent_registered(self) -> bool:
        if not self.agent.running:
            raise RuntimeError(f"agent exited:\n{self.agent.tail()}")
        agents = self.request("GET", "/api/v1/agents")["agents"]
        return any(a["node_id"] == self.node and a["actions"] for a in agents)

    # -- the service --------------------------------------------------------------------------
    def start_service(self) -> None:
        self._first_service = subprocess.Popen(
            self.service_argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Reap it the moment it dies, as an init would: a zombie still counts as running for the
        # restart action's psutil wait (see monit_heal.py's note on reaping).
        threading.Thread(target=self._first_service.wait, daemon=True).start()
        wait_until(lambda: http_ok(self.service_url), 20, "the service")

    def service_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        return http_ok(self.service_url, 0.2)

    def up(self) -> None:
        self.start_server()
        self.register()
        self.start_service()
        self.start_agent()
        wait_until(self.agent_registered, 60, "the agent to report its allowlist", 0.1)

    def close(self) -> None:
        self.agent.stop()
        self.server.stop()
        pid = self.service_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._first_service is not None:
            with contextlib.suppress(ProcessLookupError):
                self._first_service.kill()
            self._first_service.wait(5)
        self.reservation.sock.close()
