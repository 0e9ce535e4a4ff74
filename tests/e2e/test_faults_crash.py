"""The fault suite's crash fault, end to end with real processes: the service is SIGKILLed, the
agent's exit watch reports it, the responder restarts it through the agent, and it answers again.

Runs bench/faults' own modules (one trial), so the benchmark's harness cannot rot unnoticed. No
timing is asserted: the figures are the benchmark's (docs/benchmarks.md, "Faults").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "faults"


def test_crash_is_detected_and_healed_by_a_restart(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import scenarios
        from stack import Stack
    finally:
        sys.path.remove(str(BENCH))
    stack = Stack(tmp_path, say=lambda _text: None)
    try:
        stack.up()
        outcome = scenarios.crash(stack, 1, lambda _text: None)
    finally:
        stack.close()
    assert outcome.note == "", outcome.note
    assert (outcome.detected, outcome.healed, outcome.unsafe, outcome.storms) == (True, True, 0, 0)
    assert outcome.actions == 1
