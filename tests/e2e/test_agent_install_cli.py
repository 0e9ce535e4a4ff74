"""``infragent agent install`` / ``uninstall`` as a user runs them (into a temp root; no systemd here),
against a real server: the installer checks the key there and never writes an admin key to the host.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infragent.auth.apikeys import generate
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import open_store
from support.servers import closed_port, serve

pytestmark = pytest.mark.e2e
KEY = generate().plaintext


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "infragent", "agent", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_dry_run_writes_nothing_and_masks_the_key(tmp_path: Path) -> None:
    r = _cli(
        "install",
        "--server",
        "http://127.0.0.1:8470",
        "--key",
        KEY,
        "--dry-run",
        "--config-dir",
        str(tmp_path / "etc"),
        "--unit-dir",
        str(tmp_path / "units"),
    )
    assert r.returncode == 0, r.stderr
    assert "would write" in r.stdout and "Restart=always" in r.stdout and "MemoryMax=" in r.stdout
    assert KEY not in r.stdout
    assert not (tmp_path / "etc").exists()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    store = open_store(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        # the tenant's webhook is on this machine: loopback is allowed explicitly
        settings = Settings(data_dir=tmp_path, webhook_allowed_networks=("127.0.0.0/8",))
        with serve(create_app(settings, store=store)) as base:
            yield base
    finally:
        store.close()


def _admin_key(base: str) -> str:
    body = {"email": "ops@example.com", "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/h"}
    r = httpx.post(f"{base}/api/v1/clients/register", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def _install(base: str, key: str, etc: Path, units: Path) -> subprocess.CompletedProcess[str]:
    return _cli("install", "--server", base, "--key", key, "--config-dir", str(etc), "--unit-dir", str(units))


def _written_key(etc: Path) -> str:
    lines = (etc / "agent.env").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith("INFRAGENT_API_KEY="))


def test_install_then_uninstall(tmp_path: Path, server: str) -> None:
    """Given the admin key, the host gets a new ingest-only key: it reports, it cannot read."""
    etc, units = tmp_path / "etc", tmp_path / "units"
    admin = _admin_key(server)
    r = _install(server, admin, etc, units)
    assert r.returncode == 0, r.stderr
    assert "minted ingest-only key" in r.stdout
    assert stat.S_IMODE((etc / "agent.env").stat().st_mode) == 0o600
    assert admin not in (etc / "agent.env").read_text()
    written = {"Authorization": f"Bearer {_written_key(etc)}"}
    event = {"type": "app_down", "service": "web", "severity": "info"}
    assert httpx.post(f"{server}/api/v1/events", json=event, headers=written).status_code == 202
    refused = httpx.get(f"{server}/api/v1/events", headers=written)
    assert refused.status_code == 403 and refused.json()["required_scope"] == "read"
    assert (units / "infragent-agent.service").exists()
    r = _cli("uninstall", "--config-dir", str(etc), "--unit-dir", str(units))
    assert r.returncode == 0 and not (etc / "agent.env").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "localhost:8470", "--key", KEY], "--server"),
        (["--server", "http://127.0.0.1:8470", "--key", "not-a-key"], "--key"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    r = _cli("install", *args, "--config-dir", str(tmp_path / "etc"), "--unit-dir", str(tmp_path / "u"))
    assert r.returncode == 2 and message in r.stderr


def test_an_ingest_key_is_written_as_given(tmp_path: Path, server: str) -> None:
    admin = {"Authorization": f"Bearer {_admin_key(server)}"}
    ingest = httpx.post(f"{server}/api/v1/keys", json={"scopes": ["ingest"]}, headers=admin).json()["api_key"]
    r = _install(server, ingest, tmp_path / "etc", tmp_path / "units")
    assert r.returncode == 0, r.stderr
    assert _written_key(tmp_path / "etc") == ingest


@pytest.mark.parametrize("reachable", [True, False])
def test_a_refused_key_or_no_server_installs_nothing(tmp_path: Path, server: str, reachable: bool) -> None:
    base = server if reachable else f"http://127.0.0.1:{closed_port()}"
    r = _install(base, KEY, tmp_path / "etc", tmp_path / "units")
    assert r.returncode == 2, r.stdout
    assert ("--key" if reachable else "cannot reach the server") in r.stderr
    assert not (tmp_path / "etc").exists()
