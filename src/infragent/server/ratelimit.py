"""Per-client-IP rate limit of the unauthenticated writes (today: client registration).

Why a limit on registration: it is the one write anyone may make without a key, and each answer
mints credentials and a tenant, so without a limit one address could fill the database with
tenants, or probe which e-mail addresses are registered (a taken address answers 409).

Why ``limits``' moving window in memory: the n+1st registration within any window of
``window_s`` seconds is refused, with no burst at a window's edge, and the state is a few
timestamps per address. It is per server process: N processes admit up to N times the limit
(docs/configuration.md says so). The address is the TCP peer's, which is the proxy's when a
reverse proxy is in front unless uvicorn is told to trust its ``X-Forwarded-For``
(``--forwarded-allow-ips``).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimit:
    """At most ``limit`` hits per ``window_s`` seconds per key; ``limit`` 0 turns the check off."""

    def __init__(self, name: str, limit: int, window_s: float) -> None:
        self._name = name
        self._item = RateLimitItemPerSecond(limit, max(1, math.ceil(window_s))) if limit > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> int | None:
        """Count one hit for ``key``: None when allowed, else the whole seconds until one would be."""
        if self._item is None or self._limiter.hit(self._item, self._name, key):
            return None
        reset_at = self._limiter.get_window_stats(self._item, self._name, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))
