"""One retry policy for every HTTP sender: which answers are worth another try, and how long to wait.

Why one module: the agent's shipper, the SDK client, the webhook dispatch and the remote-write
exporter each had their own copy, and the copies disagreed (``Retry-After: 1.5`` accepted by one and
refused by another, 408 retried by one only). A user who reads one page of the docs must get the
same behaviour from every part of InfrAgent. Pure: no I/O, no clock (``now`` is passed in), and no
randomness of its own (the ``rng`` is passed in or owned by a ``Backoff``), so every decision is
table-tested without waiting.

Status classification (RFC 9110, section 15), ``classify_status``:

======================================  ========  ==============================================
answer                                  verdict   why
======================================  ========  ==============================================
2xx                                     success
408 Request Timeout, 425 Too Early,     retry     the server asks for the same request later
429 Too Many Requests
any other 4xx (400, 401, 403, 404,      final     the request itself is wrong: the same bytes
409, 413, 422 …)                                  fail the same way every time
500, 502, 503, 504                      retry     the server (or a gateway) failed, not the request
501 Not Implemented,                    final     the server says it does not, and will not,
505 HTTP Version Not Supported                    support this method or protocol version
any other 5xx (507, 509, CDN 520-530 …)  retry     still a server failure; sending again is cheap
                                                  next to losing what the request carries
1xx, 3xx, anything outside 100-599      final     no sender here follows redirects, so the same
                                                  URL gives the same answer; it needs an operator
======================================  ========  ==============================================

A caller may be more patient than "final" when the data is not at fault: the agent keeps a batch
in its spool (and retries) unless the server blamed the batch itself with a 4xx.

Transport failures, ``classify_failure``: a timeout, a refused or reset connection, a DNS failure,
a proxy failure, or a response the server garbled are retried; a request that cannot be sent as
built (an unsupported URL scheme, a request the client library refuses to encode) is final.

``Retry-After`` (RFC 9110, section 10.2.3), ``parse_retry_after``:

* delta-seconds, ``"120"``; fractional seconds, ``"1.5"``, are accepted too (some servers send
  them, and refusing would fall back to a shorter jittered wait than the server asked for);
* an HTTP-date in any of the three formats RFC 9110 requires a recipient to read; one without a
  zone (the asctime form, or a date with ``-0000``) is GMT, as the RFC defines all HTTP-dates;
  a date in the past means "now" (0.0);
* a negative number, a non-ASCII digit, ``inf``/``nan``/exponents, or anything else unreadable is
  refused (None): the header is not valid, and the caller falls back to its own backoff rather
  than failing on a hint;
* the result is capped (``cap_s``, a day by default) so a nonsense value cannot overflow or park a
  sender forever; each sender then caps it again at its own back-off cap.

Waiting, ``jittered_delay``: capped exponential backoff with full jitter, a uniform draw in
``[0, min(cap, base * 2**attempt)]``. After an outage every sender retries at once; spreading each
wait over the whole window, rather than adding a little noise to a fixed delay, keeps the herd
from arriving in waves (AWS Architecture Blog, "Exponential Backoff And Jitter"). A server's
``Retry-After`` is a floor, since the server knows when it will have room, but the cap still wins:
a bad header must not park an agent for hours while its spool fills, nor an app's request thread.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC
from typing import Literal

Verdict = Literal["success", "retry", "final"]

#: What went wrong below HTTP; each client maps its own exceptions onto these.
TransportFailure = Literal["timeout", "connect", "network", "protocol", "proxy", "unsendable"]

#: Statuses whose meaning is "try the same request again later" (RFC 9110 15.5.9, RFC 8470, RFC 6585).
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Server errors that say the request can never succeed there (RFC 9110 15.6.2 and 15.6.6).
FINAL_SERVER_STATUSES = frozenset({501, 505})
#: Default cap of a parsed ``Retry-After``: no sender waits longer than a day for one hint.
MAX_RETRY_AFTER_S = 86_400.0

#: Past this exponent ``base * 2**n`` is far above any sane cap; stop growing to avoid overflow.
_MAX_EXPONENT = 62
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def classify_status(status: int) -> Verdict:
    """What an HTTP answer with ``status`` means for the request (see the module table)."""
    if 200 <= status <= 299:
        return "success"
    if status in RETRY_STATUSES:
        return "retry"
    if 500 <= status <= 599:
        return "final" if status in FINAL_SERVER_STATUSES else "retry"
    return "final"


def classify_failure(failure: TransportFailure) -> Verdict:
    """Whether a request that got no HTTP answer is worth another try: all but ``unsendable``."""
    return "final" if failure == "unsendable" else "retry"


def parse_retry_after(value: str | None, now: float, *, cap_s: float = MAX_RETRY_AFTER_S) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or unreadable.

    ``now`` is the current Unix time, passed in so callers and tests control the clock.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), cap_s)
    if text[0] in "+-" or text[0].isdigit():
        return None  # a signed or malformed number is not a date either
    import email.utils  # lazily: ~3 MB of RSS in the agent, and only an HTTP-date needs it

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime dates and "-0000" carry no zone: HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), cap_s)


def jittered_delay(
    attempt: int, base_s: float, cap_s: float, rng: random.Random, retry_after_s: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    A uniform draw in ``[0, min(cap_s, base_s * 2**attempt)]``, raised to ``retry_after_s`` when the
    server sent one, and never above ``cap_s``.
    """
    window = min(cap_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    delay = rng.uniform(0.0, window)
    if retry_after_s is not None:
        delay = max(delay, min(max(retry_after_s, 0.0), cap_s))
    return delay


class Backoff:
    """Delays for consecutive failures of one open-ended operation; ``reset()`` after a success.

    For loops that retry until they succeed or stop (the agent's shippers, the remote-write sender):
    the object counts the failures so the caller does not have to.
    """

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()  # jitter, not crypto
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Failures so far (since the last reset)."""
        return self._attempt

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait before the next try; each call counts one more failure."""
        delay = jittered_delay(self._attempt, self.base_s, self.cap_s, self._rng, retry_after)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A bounded number of retries, for one request that must give up at some point.

    For callers that answer someone waiting (the SDK client, the webhook dispatch);
    ``max_retries`` counts retries, not attempts.
    """

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
        """Seconds to wait before retry number ``retry`` (0-based); ``Retry-After`` is a floor."""
        return jittered_delay(retry, self.base_s, self.cap_s, rng, retry_after_s)
