"""The whole command loop with a real agent process, for the pull-mode and push-mode e2e twins.

Why one harness: both tests run the same allowlisted script under the same runbook against a real
server, responder and agent subprocess, and differ only in how the command reaches the agent. The
set-up and the checks of "ran once, result recorded" live here once, so the twins cannot drift.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from infragent.agent.local_api import BoundAddress, read_address
from infragent.config import Settings
from infragent.model import ActionSpec
from infragent.responder.runbooks import Runbook
from infragent.server.app import create_app
from infragent.store.records import AgentRecord, Registration
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from support.agent_proc import wait_until
from support.databases import get_agent, get_event_detail
from support.responders import make_responder
from support.servers import serve

RUNBOOK = Runbook(name="restart-it", action="restart", types=("app_down",), params={"name": "{service}"})


@dataclass
class CommandLoop:
    store: SqlStore
    reg: Registration
    node: str
    base: str
    agent: subprocess.Popen[bytes]
    data_dir: Path
    marker: Path
    log: Path

    def registered(self, mode: str) -> AgentRecord:
        """Wait until the agent has reported its allowlist in ``mode``; fail early if it died."""

        def reported() -> bool:
            assert self.agent.poll() is None, self.log.read_text()
            found = get_agent(self.store, self.reg.client.id, self.node)
            return found is not None and found.command_mode == mode and _names(found.actions) == ["restart"]

        wait_until(reported, 30, f"the agent to report its allowlist in {mode} mode")
        found = get_agent(self.store, self.reg.client.id, self.node)
        assert found is not None
        return found

    def address(self) -> BoundAddress:
        wait_until(lambda: read_address(self.data_dir) is not None, 30, "the agent's address")
        address = read_address(self.data_dir)
        assert address is not None
        return address

    def report_app_down(self) -> str:
        r = httpx.post(
            f"{self.base}/api/v1/events",
            headers={"Authorization": f"Bearer {self.reg.api_key}"},
            json={"type": "app_down", "service": "web", "severity": "critical", "node_id": self.node},
        )
        assert r.status_code == 202, r.text
        return str(r.json()["event_id"])

    def wait_done(self, event_id: str) -> None:
        def done() -> bool:
            detail = get_event_detail(self.store, self.reg.client.id, event_id)
            return detail is not None and detail.command is not None and detail.command["status"] == "done"

        wait_until(done, 60, "the command's result")

    def stop_agent(self) -> int:
        """Stop the agent before the server (so no long poll is left hanging); its exit status."""
        self.agent.terminate()
        return self.agent.wait(20)

    def assert_ran_once(self, event_id: str) -> None:
        assert self.marker.read_text().splitlines() == ["web"]  # once, the parameter as one argument
        detail = get_event_detail(self.store, self.reg.client.id, event_id)
        assert detail is not None and detail.command is not None
        assert "restarted web" in detail.command["output"]
        kinds = [a.kind for a in detail.audit]
        assert kinds.count("command.sent") == 1 and kinds.count("command.result") == 1


def _names(actions: tuple[ActionSpec, ...]) -> list[str]:
    return [a.name for a in actions]


def _restart_config(tmp_path: Path, node: str) -> tuple[Path, Path]:
    """An agent config allowing one script action, ``restart {name}``, which appends to a marker."""
    marker = tmp_path / "restarted.txt"
    script = tmp_path / "restart.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {marker}\necho "restarted $1"\n')
    script.chmod(0o755)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"node_id: {node}\n"
        "actions:\n"
        f"  - {{name: restart, kind: script, path: {script}, args: ['{{name}}'],"
        f" params: {{name: '[a-z0-9-]+'}}}}\n"
    )
    return config, marker


@contextmanager
def command_loop(
    store: SqlStore, reg: Registration, node: str, tmp_path: Path, env: dict[str, str]
) -> Iterator[CommandLoop]:
    """Server, responder (restart runbook) and a real agent process with ``env`` (its command mode)."""
    config, marker = _restart_config(tmp_path, node)
    wakeup = Wakeup()
    responder = make_responder(store, wakeup=wakeup, runbooks=[RUNBOOK])
    thread, stop = responder.start()
    data_dir = tmp_path / "agent"
    log_path = tmp_path / "agent.log"
    with ExitStack() as stack:
        stack.callback(_stop_responder, thread, stop, wakeup)
        log = stack.enter_context(log_path.open("w"))
        base = stack.enter_context(serve(create_app(Settings(), store=store, on_event=wakeup.set)))
        agent_env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
        agent_env.update(
            {
                "INFRAGENT_SERVER_URL": base,
                "INFRAGENT_API_KEY": reg.api_key,
                "INFRAGENT_WEBHOOK_SECRET": reg.client.webhook_secret,
                "INFRAGENT_AGENT_DATA_DIR": str(data_dir),
                "HEALTH_CHECK_PORT": "0",
                "METRICS_INTERVAL": "60",
                "LOG_LEVEL": "warning",
                **env,
            }
        )
        agent = subprocess.Popen(
            [sys.executable, "-m", "infragent.agent", "run", "--config", str(config)],
            env=agent_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_kill, agent)
        yield CommandLoop(store, reg, node, base, agent, data_dir, marker, log_path)


def _kill(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        agent.kill()
        agent.wait(20)


def _stop_responder(thread: threading.Thread, stop: threading.Event, wakeup: Wakeup) -> None:
    stop.set()
    wakeup.set()
    thread.join(10)
