"""``infragent agent install`` / ``uninstall`` as a user runs them (into a temp root; no systemd here)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infragent.auth.apikeys import generate

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


def test_install_then_uninstall(tmp_path: Path) -> None:
    etc, units = tmp_path / "etc", tmp_path / "units"
    r = _cli(
        "install",
        "--server",
        "http://127.0.0.1:8470",
        "--key",
        KEY,
        "--config-dir",
        str(etc),
        "--unit-dir",
        str(units),
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((etc / "agent.env").stat().st_mode) == 0o600
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
