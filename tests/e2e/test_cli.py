"""The command line as a user meets it: start-up, readiness, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.servers import free_port

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env.update({"INFRAGENT_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_up_serves_ready_on_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infragent", "up", "--port", str(port), "--no-agent"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
        assert (tmp_path / "data" / "infragent.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"is up at http://127.0.0.1:{port}" in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INFRAGENT_PORTT": "1"}, "INFRAGENT_PORTT: unknown setting"),
        ({"INFRAGENT_COOLDOWN_S": "-5"}, "INFRAGENT_COOLDOWN_S"),
        ({"INFRAGENT_LLM_PROVIDER": "skynet"}, "INFRAGENT_LLM_PROVIDER"),
    ],
)
def test_bad_settings_stop_start_up_with_a_message(tmp_path: Path, env: dict[str, str], message: str) -> None:
    for command in ("up", "responder", "server"):
        proc = subprocess.run(
            [sys.executable, "-m", "infragent", command],
            env=_env(tmp_path, **env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2 and message in proc.stderr, (command, proc.stderr)


def test_bad_runbooks_file_is_a_clear_error(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text("runbooks:\n  - match: {type: app_down}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "infragent", "responder"],
        env=_env(tmp_path, INFRAGENT_RUNBOOKS_PATH=str(rb)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "runbooks[0].action" in proc.stderr


def test_up_starts_an_agent_that_ships_to_it(tmp_path: Path) -> None:
    port, agent_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infragent", "up", "--port", str(port), "--agent-port", str(agent_port)],
        env=_env(tmp_path, METRICS_INTERVAL="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        sent = 0.0
        while time.monotonic() < deadline and proc.poll() is None and sent <= 0:
            try:
                text = httpx.get(f"http://127.0.0.1:{agent_port}/metrics", timeout=1).text
                sent = float(
                    next(
                        line for line in text.splitlines() if line.startswith("agent_points_sent_total")
                    ).split()[-1]
                )
            except (httpx.TransportError, StopIteration):
                pass
            time.sleep(0.2)
        assert sent > 0
        creds = tmp_path / "data" / "local-agent.json"
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "agent for this machine: pid" in out
