"""The dead-letter file: what the server called malformed is kept, readable, bounded, never resent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from infragent.agent.spool import DeadLetters, SpoolFullError


def test_entries_are_appended_as_json_lines_with_the_payload(tmp_path: Path) -> None:
    letters = DeadLetters(tmp_path / "dead-letter.jsonl", clock=lambda: 1_700_000_000.5)
    letters.add("metrics", "b-1", 4, b"\x1f\x8bgzip", 400, "HTTP 400: series[0]: a value is NaN")
    letters.add("event", "app_down/web", 0, b'{"type": "app_down"}', 422, "HTTP 422: bad severity")
    lines = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first == {
        "at": 1_700_000_000.5,
        "kind": "metrics",
        "id": "b-1",
        "points": 4,
        "status": 400,
        "reason": "HTTP 400: series[0]: a value is NaN",
        "payload": base64.b64encode(b"\x1f\x8bgzip").decode(),
    }
    assert second["kind"] == "event" and base64.b64decode(second["payload"]) == b'{"type": "app_down"}'
    assert [e.id for e in letters.entries()] == ["b-1", "app_down/web"]


def test_past_its_cap_the_file_rolls_over_once(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.jsonl"
    letters = DeadLetters(path, max_bytes=600)
    for i in range(8):
        letters.add("metrics", f"b-{i}", 1, b"x" * 100, 400, "HTTP 400")
    previous = path.with_name("dead-letter.jsonl.1")
    assert previous.exists() and path.stat().st_size <= 600 and previous.stat().st_size <= 600
    ids = [e.id for e in letters.entries()]
    assert ids == sorted(ids, key=lambda i: int(i[2:])) and ids[-1] == "b-7"  # oldest first, newest kept


def test_a_full_disk_raises_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    letters = DeadLetters(tmp_path / "dead-letter.jsonl", writer=full)
    with pytest.raises(SpoolFullError):
        letters.add("metrics", "b-1", 1, b"x", 400, "HTTP 400")
    assert list(letters.entries()) == []
