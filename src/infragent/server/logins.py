"""Failed sign-ins per client IP: past ``login_rate_limit`` in ``login_rate_window_s``, every sign-in
from that address is refused (429 with ``Retry-After``) until the window lets one more through.

Why only failures count: a person signing in and out all day is not guessing passwords; someone
trying passwords fails. Why, once over the limit, even a *right* password is refused: otherwise the
attacker would go on guessing and only the wrong guesses would be answered 429 — a right one would
still be told apart. So the throttle is asked before the password is checked (``blocked``), and a
failure is counted after (``failed``), with ``server/ratelimit.RateLimit`` as the counter (a moving
window: no burst at a window's edge). Per server process, like the registration limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from infragent.server.ratelimit import RateLimit

#: Addresses remembered as blocked at most; past it the oldest entries are forgotten first.
MAX_BLOCKED = 10_000


class LoginThrottle:
    """``blocked(ip)`` before checking a password, ``failed(ip)`` after a wrong one."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures = RateLimit("login", limit, window_s)
        self._until: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def blocked(self, ip: str) -> int | None:
        """Whole seconds until ``ip`` may try again, or None when it may now."""
        now = self._clock()
        with self._lock:
            until = self._until.get(ip)
            if until is None:
                return None
            if until <= now:
                del self._until[ip]
                return None
        return max(1, int(until - now + 0.999))

    def failed(self, ip: str) -> int | None:
        """Count a failed sign-in from ``ip``: the seconds it must now wait, or None while under the limit."""
        wait_s = self._failures.hit(ip)
        if wait_s is None:
            return None
        with self._lock:
            if len(self._until) >= MAX_BLOCKED:
                for stale in sorted(self._until, key=self._until.__getitem__)[: MAX_BLOCKED // 10]:
                    del self._until[stale]
            self._until[ip] = self._clock() + wait_s
        return wait_s
