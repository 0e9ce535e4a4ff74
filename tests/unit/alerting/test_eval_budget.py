"""``Budget``: evaluation may burst, but over time uses at most its share of a core."""

from __future__ import annotations

import pytest

from infragent.alerting.budget import Budget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_evaluation_waits_for_the_refill() -> None:
    clock = Clock()
    budget = Budget(share=0.1, burst_s=1.0, clock=clock)
    assert budget.available()
    budget.spend(0.6)
    assert budget.available() and budget.wait_s() == 0.0
    budget.spend(0.6)  # 0.2 s over
    assert not budget.available()
    assert budget.wait_s() == pytest.approx(2.0)  # 0.2 s of CPU at 0.1 s per second
    clock.now += 2.5
    assert budget.available()


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    clock = Clock()
    budget = Budget(share=0.5, burst_s=1.0, clock=clock)
    clock.now += 1000.0  # idle for long: still only one burst
    budget.spend(1.2)
    assert not budget.available()
