"""The failed-sign-in throttle (``server/logins.py``): counted per address, blocking every attempt
once over the limit until the wait has passed, with a clock passed in."""

from __future__ import annotations

from infragent.server.logins import LoginThrottle


def test_past_the_limit_an_address_is_blocked_until_its_wait_ends() -> None:
    now = [1000.0]
    throttle = LoginThrottle(2, 60, clock=lambda: now[0])
    assert throttle.blocked("10.0.0.1") is None
    assert throttle.failed("10.0.0.1") is None
    assert throttle.failed("10.0.0.1") is None
    wait = throttle.failed("10.0.0.1")
    assert wait is not None and 1 <= wait <= 60
    assert throttle.blocked("10.0.0.1") == wait
    assert throttle.blocked("10.0.0.2") is None  # per address
    now[0] += wait
    assert throttle.blocked("10.0.0.1") is None


def test_a_limit_of_zero_turns_it_off() -> None:
    throttle = LoginThrottle(0, 60)
    assert all(throttle.failed("10.0.0.1") is None for _ in range(50))
    assert throttle.blocked("10.0.0.1") is None
