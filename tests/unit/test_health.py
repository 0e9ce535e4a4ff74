"""The up/down state machine, table-driven: a series of results in, the transitions out.

Result ``i`` happens at ``now = 10 * i``, so ``since`` and ``downtime_s`` are easy to read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from infragent.health import CheckResult, CheckState, CheckTransition, step

UP = CheckResult("up", 1.0)
DOWN = CheckResult("down", 2.0, "connection refused")
NA = CheckResult("unavailable", None, "systemd is not running")


@dataclass(frozen=True)
class Case:
    id: str
    results: str  # u = up, d = down, n = unavailable
    expected: list[tuple[int, str]]  # (index of result, transition kind)
    failures_before_down: int = 3
    successes_before_up: int = 1


CASES = [
    Case("healthy start is not news", "uuuu", []),
    Case("down from the start after threshold", "ddd", [(2, "app_down")]),
    Case("below threshold never fires", "dduddu", []),
    Case("one down per outage", "uddddddd", [(3, "app_down")]),
    Case("recovers after one success", "uddduu", [(3, "app_down"), (4, "app_recovered")]),
    Case(
        "two outages, two pairs",
        "ddduddddu",
        [(2, "app_down"), (3, "app_recovered"), (6, "app_down"), (8, "app_recovered")],
    ),
    Case("flapping below threshold stays quiet", "dudududu", []),
    Case(
        "flapping with threshold 1 reports each flip",
        "dudu",
        [(0, "app_down"), (1, "app_recovered"), (2, "app_down"), (3, "app_recovered")],
        1,
    ),
    Case(
        "successes_before_up: a lone success does not recover",
        "ddudduu",
        [(1, "app_down"), (6, "app_recovered")],
        2,
        2,
    ),
    Case("unavailable neither fails nor resets", "ddndn", [(3, "app_down")]),
    Case("only unavailable: silence", "nnnn", []),
]


def run(case: Case) -> tuple[CheckState, list[tuple[int, CheckTransition]]]:
    state = CheckState("web", case.failures_before_down, case.successes_before_up)
    results = {"u": UP, "d": DOWN, "n": NA}
    transitions: list[tuple[int, CheckTransition]] = []
    for index, letter in enumerate(case.results):
        state, transition = step(state, results[letter], now=10.0 * index)
        if transition is not None:
            transitions.append((index, transition))
    return state, transitions


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_transitions(case: Case) -> None:
    _, transitions = run(case)
    assert [(index, t.kind) for index, t in transitions] == case.expected


def test_down_transition_details() -> None:
    _, [(_, down)] = run(Case("", "uddd", []))
    assert down.details() == {
        "check": "web",
        "error": "connection refused",
        "latency_ms": 2.0,
        "consecutive_failures": 3,
        "since": 10.0,  # the outage began at the first failure, not when it was confirmed
        "downtime_s": None,
    }
    assert down.at == 30.0


def test_recovery_reports_downtime_and_the_last_error() -> None:
    state, [_, (_, recovered)] = run(Case("", "udddddu", []))
    assert recovered.kind == "app_recovered"
    assert recovered.since == 10.0
    assert recovered.downtime_s == 50.0
    assert recovered.consecutive_failures == 5
    assert recovered.error == "connection refused"
    assert recovered.latency_ms == 1.0
    assert (state.status, state.consecutive_failures, state.failing_since) == ("up", 0, None)


def test_a_broken_streak_restarts_the_outage_clock() -> None:
    _, [(_, down)] = run(Case("", "dduddd", []))
    assert down.since == 30.0


def test_recovery_says_when_the_outage_was_detected() -> None:
    state, [(_, down), (_, recovered)] = run(Case("", "udddddu", []))
    assert (down.since, down.down_at) == (10.0, 30.0)
    assert (recovered.since, recovered.down_at) == (10.0, 30.0)
    assert state.down_at is None


def test_unknown_then_down_needs_the_threshold_too() -> None:
    state = CheckState("web", failures_before_down=2)
    state, first = step(state, DOWN, now=0.0)
    assert first is None and state.status == "unknown" and state.consecutive_failures == 1
    state, second = step(state, DOWN, now=1.0)
    assert second is not None and second.kind == "app_down" and state.status == "down"
