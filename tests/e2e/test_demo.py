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
    # The outage opened an incident; the timeline names it where the event is stored and decided on.
    assert result.incident_id
    on_incident = [text for _, text in result.timeline if f"incident {result.incident_id}" in text]
    assert any(t.startswith("server stored event") for t in on_incident), "\n".join(lines)
    assert any(t.startswith("responder decided: restart") for t in on_incident), "\n".join(lines)
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
    assert data["incident_id"] and f"incident {data['incident_id']}" in proc.stderr
    assert "SDK detected app_down" in proc.stderr  # the timeline goes to stderr with --json


#: The story's steps in causal order: each is caused by (or follows) the one before it.
CAUSAL = [
    "the app crashed",
    "SDK detected app_down",
    "server stored event",
    "responder decided: restart",
    "responder sent the signed restart command",
    "SDK: signed restart command verified",
    "SDK: app restarted",
    "event processed",
]


def test_the_timeline_prints_in_causal_order() -> None:
    """Steps happen on several threads; each line carries the time its step happened, in that order."""
    lines: list[str] = []
    result = run_demo(interval_s=0.5, timeout_s=60, say=lines.append)
    assert result.error is None, "\n".join(lines)

    def position(step: str) -> int:
        found = [i for i, line in enumerate(lines) if step in line]
        assert len(found) == 1, f"{step!r} printed {len(found)} times:\n" + "\n".join(lines)
        return found[0]

    # Each step is stamped when it happened, not when the main thread noticed it (the old timeline
    # stamped the SDK's detection at its print time, after the in-process responder had acted).
    detected = next(at for at, text in result.timeline if "SDK detected app_down" in text)
    assert detected == result.detected_at
    # The report that caused the command is printed before the command (it used to be after).
    assert position("SDK detected app_down") < position("SDK: signed restart command verified")
    positions = [position(step) for step in CAUSAL]
    assert positions == sorted(positions), "\n".join(lines)
    # What is printed is the timeline, one line per step, and the times are when the steps happened.
    assert len(lines) == len(result.timeline)
    assert all(line.endswith(text) for line, (_, text) in zip(lines, result.timeline, strict=True))
    times = [at for at, _ in result.timeline]
    assert times == sorted(times)
    assert result.failed_at in times and result.healthy_at in times
