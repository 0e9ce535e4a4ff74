"""The command line as a user meets it: start-up, readiness, clear errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from support.agent_proc import OutputLines, wait_until

pytestmark = pytest.mark.e2e
IS_UP = r"is up at (http://127\.0\.0\.1:(\d+))\s"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env.update({"INFRAGENT_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


class Running:
    """A started ``infragent`` command: its stdout as it comes, its stderr in a file."""

    def __init__(self, proc: subprocess.Popen[str], stderr: Path) -> None:
        self.proc = proc
        self.out = OutputLines(proc.stdout)  # type: ignore[arg-type]  # PIPE: never None
        self.stderr = stderr

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


@contextmanager
def infragent(tmp_path: Path, *args: str, **env: str) -> Iterator[Running]:
    """Run ``python -m infragent ARGS``; on exit SIGTERM it and wait for it to finish."""
    with (tmp_path / "stderr.log").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infragent", *args],
            env=_env(tmp_path, **env),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    running = Running(proc, tmp_path / "stderr.log")
    try:
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            running.out.text()
            assert proc.stdout is not None
            proc.stdout.close()


def _register_local_webhook(url: str) -> httpx.Response:
    body = {"email": "ops@example.com", "company_name": "Acme", "webhook_url": "http://127.0.0.1:9000/hook"}
    return httpx.post(f"{url}/api/v1/clients/register", json=body, timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_up_serves_ready_on_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    with infragent(tmp_path, "up", "--port", "0", "--no-agent") as run:
        url, port = run.out.wait_for(IS_UP, 30).groups()  # the port the server actually bound
        assert int(port) != 0
        wait_until(lambda: _ready(url), 30, "the server to be ready")
        assert (tmp_path / "data" / "infragent.db").exists()
        # one machine: the app receiving commands runs here too, so loopback webhooks are allowed
        assert run.out.wait_for(r"webhooks may reach public addresses and 127\.0\.0\.0/8", 10)
        assert _register_local_webhook(url).status_code == 201
    assert run.proc.returncode == 0, run.err()


def test_server_on_port_0_says_which_port_it_bound(tmp_path: Path) -> None:
    with infragent(tmp_path, "server", "--port", "0") as run:
        url, port = run.out.wait_for(IS_UP, 30).groups()
        assert int(port) != 0
        wait_until(lambda: _ready(url), 30, "the server to be ready")
        refused = _register_local_webhook(url)  # the server alone allows no loopback webhook
        assert refused.status_code == 422 and "webhook_allowed_networks" in refused.json()["detail"]
    assert "Traceback" not in run.err(), run.err()


def test_server_on_a_taken_port_fails_with_a_start_up_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "infragent", "server", "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 3, proc.stderr
    assert "is up at" not in proc.stdout


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
    with infragent(tmp_path, "up", "--port", "0", "--agent-port", "0", METRICS_INTERVAL="1") as run:
        base = run.out.wait_for(IS_UP, 30)[1]
        started = run.out.wait_for(r"agent for this machine: pid (\d+), health at (http://\S+)/health", 30)
        agent_pid, agent_url = int(started[1]), started[2]

        def sent() -> float:
            try:
                text = httpx.get(f"{agent_url}/metrics", timeout=1).text
            except httpx.TransportError:
                return 0.0
            lines = [line for line in text.splitlines() if line.startswith("agent_points_sent_total")]
            return float(lines[0].split()[-1]) if lines else 0.0

        def shipped() -> bool:
            if run.proc.poll() is not None:
                raise AssertionError(f"infragent up exited:\n{run.err()}")
            return sent() > 0

        wait_until(shipped, 60, "the agent to ship to the server")
        creds = tmp_path / "data" / "local-agent.json"
        assert oct(creds.stat().st_mode & 0o777) == "0o600"
        # the agent holds an ingest-only key: it ships, but cannot read the tenant's data
        keys = json.loads(creds.read_text())
        environ = Path(f"/proc/{agent_pid}/environ").read_bytes().split(b"\0")
        assert f"INFRAGENT_API_KEY={keys['agent_api_key']}".encode() in environ
        assert keys["api_key"].encode() not in b"\0".join(environ)
        r = httpx.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {keys['agent_api_key']}"})
        assert r.status_code == 403 and r.json()["required_scope"] == "read"
    assert run.proc.returncode == 0, run.err()
