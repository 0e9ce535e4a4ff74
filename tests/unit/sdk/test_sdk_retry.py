"""The retry policy as pure functions: which statuses, how long, what Retry-After means."""

from __future__ import annotations

import random

import pytest

from infragent.sdk.retry import RetryPolicy, is_retryable_status, parse_retry_after

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(s, True) for s in (429, 500, 502, 503, 504, 599)],
        *[(s, False) for s in (400, 401, 403, 404, 413, 422, 200, 302)],
    ],
)
def test_only_throttling_and_server_errors_are_retryable(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("Sun, 15 Jun 2025 15:06:52 GMT", 12.0),
        ("Sun, 15 Jun 2025 15:00:00 GMT", 0.0),  # in the past: go now
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=10, base_s=0.5, cap_s=8.0)
    rng = random.Random(1)

    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (500, 8.0)]:
        delays = [policy.delay_s(retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed step
        assert min(delays) < ceiling * 0.2


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(cap_s=30.0)
    rng = random.Random(1)

    assert policy.delay_s(0, rng, retry_after_s=12.0) == 12.0
    assert policy.delay_s(0, rng, retry_after_s=3600.0) == 30.0


def test_attempts_count_the_first_try() -> None:
    assert RetryPolicy(max_retries=0).attempts == 1
    assert RetryPolicy(max_retries=5).attempts == 6


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"base_s": -1.0}, {"cap_s": -0.1}])
def test_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
