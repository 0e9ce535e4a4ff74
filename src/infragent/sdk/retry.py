"""Retry policy for SDK → server requests: capped exponential backoff with full jitter.

Why full jitter: many app instances lose the server at the same moment (deploy, network blip);
spreading each retry uniformly over ``[0, min(cap, base·2^n)]`` keeps them from coming back in
lock-step and knocking the server over again (AWS Architecture Blog, "Exponential Backoff And
Jitter"). Why honour ``Retry-After``: the server knows better than us when it will have room.

Pure functions only: no clock, no sleep, no randomness of its own — the caller passes them in, so
the policy is testable without waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: Transient by nature: the server is throttling (429) or failing (5xx). Other 4xx mean the
#: request itself is wrong, and sending it again cannot help.
_THROTTLED = 429

#: Past this exponent ``base * 2**n`` is far above any sane cap; stop growing to avoid overflow.
_MAX_EXPONENT = 62


def is_retryable_status(status: int) -> bool:
    """True for 429 and every 5xx; False for everything else (including 400/401/403/413/422)."""
    return status == _THROTTLED or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None.

    A value we cannot read is ignored (None) rather than raised: a malformed hint must not turn a
    retryable response into a failure; the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; ``max_retries`` counts retries, not attempts."""

    max_retries: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"backoff base and cap must be >= 0, got {self.base_s} and {self.cap_s}")

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def delay_s(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        ``Retry-After`` wins over the backoff when present, but is still capped at ``cap_s``:
        the SDK runs inside the user's app, and a server asking for an hour must not park a
        request thread for an hour.
        """
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.cap_s)
        ceiling = min(self.cap_s, self.base_s * 2 ** min(retry, _MAX_EXPONENT))
        return rng.uniform(0.0, ceiling)
