"""Fixtures of the agent command tests; the helpers themselves live in ``command_harness``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from command_harness import Agent, allowlist_config

from infragent.agent.allowlist import Allowlist


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    marker = tmp_path / "marker.txt"
    allowlist = Allowlist.from_config(allowlist_config(tmp_path, marker))
    running = Agent(data_dir=tmp_path / "data", marker=marker, allowlist=allowlist)
    yield running
    running.stop()
