"""The whole loop in push mode with a real agent process: report → decide → sign → POST → run → result.

The twin of ``test_agent_pull_loop.py``: the same allowlisted script, the same runbook, but the
responder POSTs the signed command to the agent's push endpoint (``COMMAND_MODE=push``), served by
the agent runtime itself on ``INFRAGENT_PUSH_HOST:INFRAGENT_PUSH_PORT``. The server calls the
tenant's ``webhook_url``, so the client is registered with the agent's push URL; the port is
reserved first (``reserve_port``) because that URL must exist before the agent starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infragent.agent.local_api import read_address
from infragent.config import Settings
from infragent.responder.runbooks import Runbook
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from support.agent_proc import wait_until
from support.databases import create_client, get_agent, get_event_detail
from support.responders import make_responder
from support.servers import reserve_port, serve

pytestmark = pytest.mark.e2e
NODE = "push-host"


def test_push_mode_runs_the_allowlisted_action_once(store: SqlStore, tmp_path: Path) -> None:
    reservation = reserve_port()
    push_url = f"{reservation.url}/commands"
    reg = create_client(store, "ops@example.com", "Acme", push_url, now=time.time())
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
        # The push URL is on loopback: the client is registered in the store (not through the
        # registration route's outbound check) and the test responder's dispatcher allows 127.0.0.0/8.
        with serve(create_app(Settings(), store=store, on_event=wakeup.set)) as base:
            env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
            env.update(
                {
                    "INFRAGENT_SERVER_URL": base,
                    "INFRAGENT_API_KEY": reg.api_key,
                    "INFRAGENT_WEBHOOK_SECRET": reg.client.webhook_secret,
                    "COMMAND_MODE": "push",
                    "INFRAGENT_PUSH_HOST": "127.0.0.1",
                    "INFRAGENT_PUSH_PORT": str(reservation.port),
                    "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "agent"),
                    "HEALTH_CHECK_PORT": "0",
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
                assert agent is not None and agent.poll() is None, (tmp_path / "agent.log").read_text()
                found = get_agent(store, reg.client.id, NODE)
                return (
                    found is not None
                    and found.command_mode == "push"
                    and [a.name for a in found.actions] == ["restart"]
                )

            wait_until(registered, 30, "the agent to report its allowlist in push mode")
            wait_until(lambda: read_address(tmp_path / "agent") is not None, 30, "the agent's address")
            address = read_address(tmp_path / "agent")
            assert address is not None and address.push_port == reservation.port
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
            agent.terminate()
            assert agent.wait(20) == 0
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(20)
        log.close()
        stop.set()
        wakeup.set()
        thread.join(10)
        reservation.close()
    assert marker.read_text().splitlines() == ["web"]  # ran once, with the parameter as one argument
    detail = get_event_detail(store, reg.client.id, event_id)
    assert detail is not None and detail.command is not None and "restarted web" in detail.command["output"]
    kinds = [a.kind for a in detail.audit]
    assert kinds.count("command.sent") == 1 and kinds.count("command.result") == 1
    # Not polled: the command came to the agent, nothing went through the pull queue.
    assert "/commands?wait=" not in (tmp_path / "agent.log").read_text()
