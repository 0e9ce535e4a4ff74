"""Retry discipline for agent → server sends: when to retry, how long to wait.

Why full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``): after a server outage
every agent retries at once; spreading each wait over the whole window, rather than adding a little
noise to a fixed delay, keeps the herd from arriving in waves (AWS Architecture Blog, "Exponential
Backoff And Jitter"). A server's ``Retry-After`` is a floor, since it knows when it will recover, but
the cap still wins so a bad header cannot park an agent for hours while its spool fills.

``classify`` is pure so the shipper's decision table can be tested on its own.
"""

from __future__ import annotations

import random
from datetime import UTC
from typing import Literal

Verdict = Literal["ack", "retry", "set_aside"]


class Backoff:
    """Delays for consecutive failures of one operation; ``reset()`` after a success."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Failures so far (since the last reset)."""
        return self._attempt

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next try; each call counts one more failure."""
        window = min(self.cap_s, self.base_s * 2.0 ** min(self._attempt, 64))
        self._attempt += 1
        delay = self._rng.uniform(0.0, window)
        if retry_after is not None:
            delay = max(delay, min(max(retry_after, 0.0), self.cap_s))
        return delay

    def reset(self) -> None:
        self._attempt = 0


def parse_retry_after(header_value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None.

    ``now`` is the current Unix time, passed in so callers and tests control the clock. A date in
    the past means "retry now" (0.0). Anything unparseable is None: the caller falls back to plain
    backoff rather than failing on a header.
    """
    if header_value is None:
        return None
    value = header_value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    import email.utils  # lazily: ~3 MB of RSS in the agent, and only an HTTP-date needs it

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def classify(status: int) -> Verdict:
    """What the shipper does with a batch after the server answered ``status``.

    * 2xx, and 409 (the server already holds this ``batch_id``): ack, it is stored.
    * 408, 429 and 5xx: retry; the server did not take it but may later.
    * any other 4xx (400, 401, 403, 404, 413, 422 …): set aside; sending the same bytes again
      cannot succeed, and retrying would block every batch behind it.
    * anything else (1xx, 3xx, nonsense): retry. A misconfigured proxy must not make the agent
      throw data away; the spool's bound limits what waiting costs.
    """
    if 200 <= status <= 299 or status == 409:
        return "ack"
    if status in (408, 429) or 500 <= status <= 599:
        return "retry"
    if 400 <= status <= 499:
        return "set_aside"
    return "retry"
