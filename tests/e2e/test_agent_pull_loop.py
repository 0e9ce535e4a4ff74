"""The whole loop in pull mode with a real agent process: report → decide → queue → poll → run → result."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infragent.store.sql import SqlStore
from support.command_loop import command_loop
from support.databases import create_client

pytestmark = pytest.mark.e2e
NODE = "pull-host"


def test_pull_mode_runs_the_allowlisted_action_once(store: SqlStore, tmp_path: Path) -> None:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/unused", now=time.time())
    with command_loop(store, reg, NODE, tmp_path, {"COMMAND_MODE": "pull"}) as loop:
        loop.registered("pull")
        event_id = loop.report_app_down()
        loop.wait_done(event_id)
        loop.stop_agent()
    loop.assert_ran_once(event_id)
