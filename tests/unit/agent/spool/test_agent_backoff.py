"""Backoff windows, Retry-After and the status → verdict table of the shipper."""

from __future__ import annotations

import random
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from infragent.agent.backoff import Backoff, Verdict, classify, parse_retry_after


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


NOW = parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:29:30 GMT", 90.0),
        ("Wed, 21 Oct 2015 07:29:30 -0000", 90.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: retry now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("١٢", None),  # non-ASCII digits are not delta-seconds
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_parse_retry_after_round_trips_a_formatted_date() -> None:
    header = format_datetime(parsedate_to_datetime("Thu, 22 Oct 2015 07:28:00 GMT"), usegmt=True)
    assert parse_retry_after(header, NOW) == 86400.0


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ack"),
        (201, "ack"),
        (202, "ack"),
        (204, "ack"),
        (409, "ack"),  # duplicate batch_id: the server already has it
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (599, "retry"),
        (400, "set_aside"),
        (401, "set_aside"),
        (403, "set_aside"),
        (404, "set_aside"),
        (413, "set_aside"),
        (422, "set_aside"),
        (451, "set_aside"),
        (302, "retry"),  # unexpected: never a reason to throw data away
        (100, "retry"),
        (0, "retry"),
    ],
)
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) == verdict


def test_backoff_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=10.0, cap_s=1.0)
