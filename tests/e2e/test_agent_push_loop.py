"""The whole loop in push mode with a real agent process: report → decide → sign → POST → run → result.

The twin of ``test_agent_pull_loop.py``: the same allowlisted script, the same runbook, but the
responder POSTs the signed command to the agent's push endpoint (``COMMAND_MODE=push``), served by
the agent runtime itself on ``INFRAGENT_PUSH_HOST:INFRAGENT_PUSH_PORT``. The server calls the
tenant's ``webhook_url``, so the client is registered with the agent's push URL; the port is
reserved first (``reserve_port``) because that URL must exist before the agent starts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infragent.store.sql import SqlStore
from support.command_loop import command_loop
from support.databases import create_client
from support.servers import reserve_port

pytestmark = pytest.mark.e2e
NODE = "push-host"


def test_push_mode_runs_the_allowlisted_action_once(store: SqlStore, tmp_path: Path) -> None:
    reservation = reserve_port()
    push_url = f"{reservation.url}/commands"
    # The push URL is on loopback: the client is registered in the store (not through the
    # registration route's outbound check) and the test responder's dispatcher allows 127.0.0.0/8.
    reg = create_client(store, "ops@example.com", "Acme", push_url, now=time.time())
    env = {
        "COMMAND_MODE": "push",
        "INFRAGENT_PUSH_HOST": "127.0.0.1",
        "INFRAGENT_PUSH_PORT": str(reservation.port),
    }
    try:
        with command_loop(store, reg, NODE, tmp_path, env) as loop:
            loop.registered("push")
            assert loop.address().push_port == reservation.port
            event_id = loop.report_app_down()
            loop.wait_done(event_id)
            assert loop.stop_agent() == 0
    finally:
        reservation.close()
    loop.assert_ran_once(event_id)
    # Not polled: the command came to the agent, nothing went through the pull queue.
    assert "/commands?wait=" not in loop.log.read_text()
