"""The agent's status → verdict table: the shared policy plus what the agent's data needs.

Why each row: a 401/403/404 is the agent's configuration (key, URL, proxy), not its data, so the data
stays on disk and shipping pauses; only 400/413/422 blame the batch itself, which no retry can fix,
so it goes to the dead-letter file. Nothing the server answers makes the agent delete data.
"""

from __future__ import annotations

import random

import pytest

from infragent.agent.delivery import PAUSE_CAP_S, PAUSE_MIN_S, Refusals, Verdict, classify, pause_delay
from infragent.backoff import Backoff


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ack"),
        (201, "ack"),
        (202, "ack"),
        (204, "ack"),
        (409, "ack"),  # duplicate batch_id: the server already has it
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (599, "retry"),
        (501, "retry"),  # final for the shared policy, but not the batch's fault: keep it
        (505, "retry"),
        (400, "dead_letter"),  # the server says the batch is malformed: no retry can fix it
        (413, "dead_letter"),
        (422, "dead_letter"),
        (401, "pause"),  # wrong or revoked key: keep the data, wait for an operator
        (403, "pause"),  # a key without the scope
        (404, "pause"),  # wrong server URL or path (a proxy, a typo)
        (405, "pause"),
        (407, "pause"),
        (410, "pause"),
        (415, "pause"),  # the server does not read what this agent sends: a version mismatch
        (451, "pause"),
        (302, "retry"),  # unexpected: never a reason to throw data away
        (100, "retry"),
        (0, "retry"),
    ],
)
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) == verdict


def test_pause_starts_at_a_minute_and_grows_to_ten_minutes() -> None:
    backoff = Backoff(base_s=PAUSE_MIN_S, cap_s=PAUSE_CAP_S, rng=random.Random(7))
    delays = [pause_delay(backoff, None) for _ in range(12)]
    assert delays[0] == PAUSE_MIN_S == 60.0
    assert all(PAUSE_MIN_S <= d <= PAUSE_CAP_S == 600.0 for d in delays)
    assert max(delays[4:]) > 240.0  # the window has grown
    assert pause_delay(backoff, 900.0) == PAUSE_CAP_S  # a Retry-After never parks it past the cap
    backoff.reset()
    assert pause_delay(backoff, 75.0) == 75.0  # a longer Retry-After is a floor


def test_refusals_say_why_until_each_loop_is_accepted_again() -> None:
    refusals = Refusals()
    assert refusals.reason is None
    refusals.refused("metrics", "HTTP 401: invalid API key")
    refusals.refused("events", "HTTP 403: missing scope ingest")
    assert refusals.reason == "metrics: HTTP 401: invalid API key; events: HTTP 403: missing scope ingest"
    refusals.accepted("metrics")
    assert refusals.reason == "events: HTTP 403: missing scope ingest"
    refusals.accepted("events")
    refusals.accepted("never-refused")
    assert refusals.reason is None
