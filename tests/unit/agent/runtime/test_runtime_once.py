"""``python -m infragent.agent run --once`` on this host: one real collection, every family, as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest

FAMILIES = [
    "system.cpu.utilization",
    "system.memory.usage",
    "system.memory.utilization",
    "system.filesystem.usage",
    "system.filesystem.utilization",
    "system.disk.io",
    "system.network.io",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.uptime",
]


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    for name in ("NODE_ID", "METRICS_INTERVAL", "BUFFER_MAX_SIZE", "HEALTH_CHECK_PORT", "COMMAND_MODE"):
        env.pop(name, None)
    return env | extra


@pytest.fixture(scope="module")
def once() -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "infragent.agent", "run", "--once"],
        env=agent_env(NODE_ID="once-host", NODE_REGION="eu-west-1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_every_family_with_plausible_values(once: dict[str, object]) -> None:
    by_name: dict[str, list[dict[str, object]]] = defaultdict(list)
    for metric in once["metrics"]:  # type: ignore[attr-defined]
        by_name[metric["name"]].append(metric)
    for family in FAMILIES:
        assert by_name[family], f"{family} missing"
    for ratio in ("system.cpu.utilization", "system.memory.utilization", "system.filesystem.utilization"):
        assert all(0.0 <= m["value"] <= 1.0 for m in by_name[ratio]), ratio  # type: ignore[operator]
    modes = {m["attributes"]["cpu.mode"] for m in by_name["system.cpu.utilization"]}  # type: ignore[index]
    assert {"user", "system", "idle"} <= modes
    cpu_sum = sum(m["value"] for m in by_name["system.cpu.utilization"])  # type: ignore[misc]
    assert 0.9 <= cpu_sum <= 1.1
    assert sum(m["value"] for m in by_name["system.memory.usage"]) > 64 * 1024 * 1024  # type: ignore[misc]
    assert all(m["value"] >= 0 for m in by_name["system.disk.io"] + by_name["system.network.io"])  # type: ignore[operator]
    assert {m["attributes"]["network.io.direction"] for m in by_name["system.network.io"]} == {  # type: ignore[index]
        "receive",
        "transmit",
    }
    assert by_name["system.uptime"][0]["value"] > 0  # type: ignore[operator]
    assert by_name["system.disk.io"][0]["monotonic"] is True


def test_resource_attributes(once: dict[str, object]) -> None:
    resource = once["resource"]
    assert isinstance(resource, dict)
    assert resource["host.name"] and len(resource["host.id"]) >= 16
    assert resource["infragent.node.id"] == "once-host"
    assert resource["cloud.region"] == "eu-west-1"
    assert once["errors"] == {}


def test_once_through_the_main_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infragent", "agent", "run", "--once"],
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"]


@pytest.mark.parametrize("entry", [["infragent.agent"], ["infragent", "agent"]])
def test_bad_setting_exits_2_naming_it(entry: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *entry, "run"],
        env=agent_env(
            INFRAGENT_SERVER_URL="http://127.0.0.1:1", INFRAGENT_API_KEY="k", METRICS_INTERVAL="often"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "METRICS_INTERVAL" in proc.stderr


def test_lean_entry_imports_no_heavy_packages() -> None:
    """The footprint rule: the agent process imports neither typer, pydantic, httpx nor http.client."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['infragent.agent', 'run', '--help']\n"
        "try:\n    runpy.run_module('infragent.agent', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "from infragent.agent import runtime\n"
        "heavy = {'typer', 'pydantic', 'httpx', 'http.client', 'email.parser', 'fastapi', 'yaml', 'ssl'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=agent_env(MALLOC_ARENA_MAX="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
