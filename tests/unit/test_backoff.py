"""The one retry policy, table-driven: status and failure classes, Retry-After, backoff windows.

Every sender (agent shipper, SDK client, webhook dispatch, remote write) imports these; a case here
is a promise about all four.
"""

from __future__ import annotations

import random
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from infragent.backoff import (
    MAX_RETRY_AFTER_S,
    Backoff,
    RetryPolicy,
    TransportFailure,
    Verdict,
    classify_failure,
    classify_status,
    parse_retry_after,
)

# -- status classes (RFC 9110) ---------------------------------------------------------------------

STATUS_CASES: list[tuple[int, Verdict, str]] = [
    (200, "success", "2xx"),
    (201, "success", "2xx"),
    (202, "success", "2xx"),
    (204, "success", "2xx"),
    (299, "success", "2xx"),
    (408, "retry", "request timeout: the same request later"),
    (425, "retry", "too early: the same request later"),
    (429, "retry", "throttled"),
    (400, "final", "the request is wrong"),
    (401, "final", "bad credentials"),
    (403, "final", "forbidden"),
    (404, "final", "no such resource"),
    (409, "final", "conflict (the agent acks a duplicate batch itself)"),
    (413, "final", "too large"),
    (422, "final", "invalid"),
    (451, "final", "legal"),
    (499, "final", "any other 4xx"),
    (500, "retry", "server failed"),
    (502, "retry", "bad gateway"),
    (503, "retry", "unavailable"),
    (504, "retry", "gateway timeout"),
    (501, "final", "not implemented: never will be"),
    (505, "final", "HTTP version not supported: never will be"),
    (507, "retry", "other 5xx: a server failure"),
    (520, "retry", "CDN origin error"),
    (599, "retry", "other 5xx"),
    (100, "final", "1xx: unexpected"),
    (301, "final", "3xx: nobody follows redirects"),
    (302, "final", "3xx"),
    (304, "final", "3xx"),
    (0, "final", "nonsense"),
    (600, "final", "nonsense"),
]


@pytest.mark.parametrize(("status", "verdict", "why"), STATUS_CASES, ids=[str(c[0]) for c in STATUS_CASES])
def test_classify_status(status: int, verdict: Verdict, why: str) -> None:
    assert classify_status(status) == verdict, why


FAILURE_CASES: list[tuple[TransportFailure, Verdict]] = [
    ("timeout", "retry"),
    ("connect", "retry"),
    ("network", "retry"),
    ("protocol", "retry"),
    ("proxy", "retry"),
    ("unsendable", "final"),
]


@pytest.mark.parametrize(("failure", "verdict"), FAILURE_CASES)
def test_classify_failure(failure: TransportFailure, verdict: Verdict) -> None:
    assert classify_failure(failure) == verdict


# -- Retry-After -------------------------------------------------------------------------------------

NOW = parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()

RETRY_AFTER_CASES: list[tuple[str | None, float | None, str]] = [
    ("120", 120.0, "delta-seconds"),
    (" 7 ", 7.0, "surrounding blanks"),
    ("0", 0.0, "zero: retry now"),
    ("1.5", 1.5, "fractional seconds"),
    ("0.25", 0.25, "fractional below one"),
    ("Wed, 21 Oct 2015 07:29:30 GMT", 90.0, "IMF-fixdate"),
    ("Wednesday, 21-Oct-15 07:29:30 GMT", 90.0, "RFC 850 date"),
    ("Wed Oct 21 07:29:30 2015", 90.0, "asctime: a naive date, GMT by definition"),
    ("Wed, 21 Oct 2015 07:29:30", 90.0, "naive date without zone: GMT"),
    ("Wed, 21 Oct 2015 07:29:30 -0000", 90.0, "-0000 parses naive: GMT"),
    ("Wed, 21 Oct 2015 09:29:30 +0200", 90.0, "explicit offset"),
    ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0, "date in the past: retry now"),
    ("-5", None, "negative: refused"),
    ("-0.5", None, "negative fraction: refused"),
    ("+5", None, "signed: not delta-seconds"),
    ("1e3", None, "exponent: not delta-seconds"),
    ("inf", None, "infinity: garbage"),
    ("nan", None, "nan: garbage"),
    ("1.", None, "dangling point"),
    ("١٢", None, "non-ASCII digits are not delta-seconds"),
    ("soon", None, "garbage"),
    ("", None, "empty"),
    (None, None, "absent"),
    ("99999999999999999999999", MAX_RETRY_AFTER_S, "huge: capped"),
    ("Fri, 21 Oct 2095 07:28:00 GMT", MAX_RETRY_AFTER_S, "far future date: capped"),
]


@pytest.mark.parametrize(
    ("header", "expected", "why"), RETRY_AFTER_CASES, ids=[c[2] for c in RETRY_AFTER_CASES]
)
def test_parse_retry_after(header: str | None, expected: float | None, why: str) -> None:
    assert parse_retry_after(header, NOW) == expected, why


def test_parse_retry_after_takes_a_cap() -> None:
    assert parse_retry_after("120", NOW, cap_s=30.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", NOW, cap_s=60.0) == 60.0


def test_parse_retry_after_round_trips_a_formatted_date() -> None:
    header = format_datetime(parsedate_to_datetime("Thu, 22 Oct 2015 07:28:00 GMT"), usegmt=True)
    assert parse_retry_after(header, NOW) == 86400.0


# -- waiting: Backoff (open-ended loops) ---------------------------------------------------------------


class EdgeRng(random.Random):
    """Returns one end of the requested interval and remembers the intervals asked for."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end
        self.windows: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.windows.append((a, b))
        return a if self.end == "low" else b


def test_windows_double_from_base_up_to_the_cap() -> None:
    rng = EdgeRng("high")
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=rng)
    delays = [backoff.next_delay() for _ in range(9)]
    assert rng.windows == [(0.0, w) for w in (1, 2, 4, 8, 16, 32, 60, 60, 60)]  # full jitter: from 0
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.attempt == 9


def test_delays_stay_within_full_jitter_bounds_and_spread_over_the_window() -> None:
    backoff = Backoff(base_s=0.5, cap_s=10.0, rng=random.Random(42))
    for attempt in range(12):
        assert 0.0 <= backoff.next_delay() <= min(10.0, 0.5 * 2**attempt)
    samples = [Backoff(1.0, 60.0, random.Random(seed)) for seed in range(300)]
    at_attempt_5 = []
    for b in samples:
        for _ in range(5):
            b.next_delay()
        at_attempt_5.append(b.next_delay())
    assert max(at_attempt_5) <= 32.0
    assert min(at_attempt_5) < 4.0 < 28.0 < max(at_attempt_5)  # not "window ± a little"


def test_reset_starts_over_and_huge_attempt_counts_do_not_overflow() -> None:
    rng = EdgeRng("high")
    backoff = Backoff(base_s=2.0, cap_s=30.0, rng=rng)
    for _ in range(5000):
        assert backoff.next_delay() <= 30.0
    backoff.reset()
    assert backoff.next_delay() == 2.0


@pytest.mark.parametrize(
    ("end", "retry_after", "expected"),
    [
        ("low", 5.0, 5.0),  # the server's floor wins over a short jittered wait
        ("high", 0.5, 1.0),  # ...but does not shorten a longer one
        ("low", 500.0, 60.0),  # capped: a bad header must not park the agent
        ("low", -3.0, 0.0),
        ("low", None, 0.0),
    ],
)
def test_retry_after_is_a_floor_capped_at_cap(end: str, retry_after: float | None, expected: float) -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=EdgeRng(end))
    assert backoff.next_delay(retry_after=retry_after) == expected


def test_backoff_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=10.0, cap_s=1.0)


# -- waiting: RetryPolicy (a bounded number of retries) ------------------------------------------------


def test_policy_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=10, base_s=0.5, cap_s=8.0)
    rng = random.Random(1)

    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (500, 8.0)]:
        delays = [policy.delay_s(retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed step
        assert min(delays) < ceiling * 0.2


def test_policy_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(cap_s=30.0)
    rng = random.Random(1)

    assert policy.delay_s(0, rng, retry_after_s=12.0) == 12.0
    assert policy.delay_s(0, rng, retry_after_s=3600.0) == 30.0


def test_policy_attempts_count_the_first_try() -> None:
    assert RetryPolicy(max_retries=0).attempts == 1
    assert RetryPolicy(max_retries=5).attempts == 6


@pytest.mark.parametrize("kwargs", [{"max_retries": -1}, {"base_s": -1.0}, {"cap_s": -0.1}])
def test_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
