"""The whole loop in pull mode with a real agent process: report → decide → queue → poll → run → result."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infragent.config import Settings
from infragent.responder.runbooks import Runbook
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from support.agent_proc import wait_until
from support.databases import create_client, get_agent, get_event_detail
from support.responders import make_responder
from support.servers import serve

pytestmark = pytest.mark.e2e
NODE = "pull-host"


def test_pull_mode_runs_the_allowlisted_action_once(store: SqlStore, tmp_path: Path) -> None:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/unused", now=time.time())
    marker = tmp_path / "restarted.txt"
    script = tmp_path / "restart.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {marker}\necho "restarted $1"\n')
    script.chmod(0o755)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"node_id: {NODE}\n"
        "actions:\n"
        f"  - {{name: restart, kind: script, path: {script}, args: ['{{name}}'],"
        f" params: {{name: '[a-z0-9-]+'}}}}\n"
    )
    wakeup = Wakeup()
    runbook = Runbook(name="restart-it", action="restart", types=("app_down",), params={"name": "{service}"})
    responder = make_responder(store, wakeup=wakeup, runbooks=[runbook])
    thread, stop = responder.start()
    agent = None
    log = (tmp_path / "agent.log").open("w")
    try:
        with serve(create_app(Settings(), store=store, on_event=wakeup.set)) as base:
            env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
            env.update(
                {
                    "INFRAGENT_SERVER_URL": base,
                    "INFRAGENT_API_KEY": reg.api_key,
                    "INFRAGENT_WEBHOOK_SECRET": reg.client.webhook_secret,
                    "COMMAND_MODE": "pull",
                    "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "agent"),
                    "HEALTH_CHECK_PORT": "0",  # not used here: any port
                    "METRICS_INTERVAL": "60",
                    "LOG_LEVEL": "warning",
                }
            )
            agent = subprocess.Popen(
                [sys.executable, "-m", "infragent.agent", "run", "--config", str(config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

            def registered() -> bool:
                found = get_agent(store, reg.client.id, NODE)
                return found is not None and [a.name for a in found.actions] == ["restart"]

            wait_until(registered, 30, "the agent to report its allowlist")
            r = httpx.post(
                f"{base}/api/v1/events",
                headers={"Authorization": f"Bearer {reg.api_key}"},
                json={"type": "app_down", "service": "web", "severity": "critical", "node_id": NODE},
            )
            event_id = r.json()["event_id"]

            def done() -> bool:
                detail = get_event_detail(store, reg.client.id, event_id)
                return (
                    detail is not None and detail.command is not None and detail.command["status"] == "done"
                )

            wait_until(done, 60, "the command's result")
            agent.terminate()  # before the server stops, so no long poll is left hanging
            agent.wait(20)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(20)
        log.close()
        stop.set()
        wakeup.set()
        thread.join(10)
    assert marker.read_text().splitlines() == ["web"]  # ran once, with the parameter as one argument
    detail = get_event_detail(store, reg.client.id, event_id)
    assert detail is not None and detail.command is not None and "restarted web" in detail.command["output"]
    kinds = [a.kind for a in detail.audit]
    assert kinds.count("command.sent") == 1 and kinds.count("command.result") == 1
