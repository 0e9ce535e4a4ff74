"""The demo story end to end: a real crash, a real report, a signed restart, a healthy app again."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infragent.demo.story import run_demo

pytestmark = pytest.mark.e2e


def test_demo_heals_on_each_database(db_url: str) -> None:
    lines: list[str] = []
    result = run_demo(db_url, interval_s=0.5, timeout_s=60, say=lines.append)
    assert result.error is None, "\n".join(lines)
    assert result.healed and result.action == "restart"
    assert result.result is not None and result.result.startswith("done: restarted")
    r = result
    assert None not in (
        r.failed_at,
        r.detected_at,
        r.reported_at,
        r.decided_at,
        r.action_sent_at,
        r.healthy_at,
    )
    assert r.failed_at <= r.detected_at <= r.reported_at  # type: ignore[operator]
    # The responder may decide before the SDK has read the server's 202: decided_at is only after detection.
    assert r.detected_at <= r.decided_at <= r.action_sent_at <= r.healthy_at  # type: ignore[operator]


def test_demo_cli_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infragent", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["healed"] is True and data["action"] == "restart"
    assert set(data) >= {"detected_at", "reported_at", "decided_at", "action_sent_at", "healthy_at", "result"}
    assert "SDK detected app_down" in proc.stderr  # the timeline goes to stderr with --json
