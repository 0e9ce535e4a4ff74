"""Rate limits: ``limits``' moving window, in memory or in Redis, failing open when Redis is down.

Who is limited (``server/public_limits.py`` builds them from the settings): each API key and each
signed-in user (``api_rate_limit_per_key`` per ``api_rate_window_s``), each client IP's failed
authentications (``api_rate_limit_per_ip``: a key guesser is stopped), and each client IP's
registrations (``registration_rate_limit`` per ``registration_rate_window_s``: each answer mints a
tenant and credentials, and a taken address answers 409, so without a limit one address could fill
the database with tenants or probe which addresses are registered).

Why a moving window: the n+1st hit within any window of ``window_s`` seconds is refused, with no
burst at a window's edge. Where the counts live is ``rate_limit_storage``: ``memory://`` counts per
server process (N processes admit up to N times the limit), ``redis://host:port/db`` shares them.
The address is the TCP peer's, which is the proxy's when a reverse proxy is in front unless uvicorn
is told to trust its ``X-Forwarded-For`` (``--forwarded-allow-ips``).

Why fail open: a rate limit protects the API; it must not become the thing that takes it down. When
the storage raises (Redis unreachable, timed out), the hit is allowed, a warning is logged at most
once a minute, and the storage is not asked again for ``OUTAGE_BACKOFF_S`` (so a dead Redis costs
one connect timeout per 5 s, not one per request). Redis is asked with short socket timeouts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Final

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from infragent.errors import ConfigError

logger = logging.getLogger(__name__)

#: After a storage failure, hits are allowed without asking the storage for this long.
OUTAGE_BACKOFF_S: Final = 5.0
#: Redis is asked with these timeouts: a slow Redis must not stall requests.
REDIS_TIMEOUT_S: Final = 0.5
_WARN_EVERY_S: Final = 60.0


def open_storage(url: str) -> Storage:
    """The counters' storage named by ``rate_limit_storage``; a bad URL is a ``ConfigError`` at start,
    not a surprise at the first request."""
    options: dict[str, float | str | bool] = {"wrap_exceptions": True}  # failures are StorageError
    if url.startswith(("redis://", "rediss://", "redis+unix://")):
        options |= {"socket_timeout": REDIS_TIMEOUT_S, "socket_connect_timeout": REDIS_TIMEOUT_S}
    try:
        storage = storage_from_string(url, **options)
    except Exception as exc:  # limits' ConfigurationError: unknown scheme, or redis not installed
        raise ConfigError("rate_limit_storage", f"cannot use {url!r} for rate limits: {exc}") from exc
    if not isinstance(storage, Storage):  # an async+ storage: this server counts synchronously
        raise ConfigError("rate_limit_storage", f"{url!r} is an async storage; use memory:// or redis://")
    return storage


def close_storage(storage: Storage) -> None:
    """Release a Redis storage's connections (memory storage has its own timer thread, stopped too)."""
    client = getattr(storage, "storage", None)  # RedisStorage keeps its redis.Redis here
    close = getattr(client, "close", None)
    if callable(close):
        close()
    timer = getattr(storage, "timer", None)  # MemoryStorage's expiry timer
    cancel = getattr(timer, "cancel", None)
    if callable(cancel):
        cancel()


class RateLimit:
    """At most ``limit`` hits per ``window_s`` seconds per key; ``limit`` 0 turns the check off."""

    def __init__(self, name: str, limit: int, window_s: float, storage: Storage | None = None) -> None:
        self._name = name
        self._item = RateLimitItemPerSecond(limit, max(1, math.ceil(window_s))) if limit > 0 else None
        self.storage = storage if storage is not None else MemoryStorage()
        #: Whether a hit may block on the network (then async callers hop to a thread).
        self.blocking = not isinstance(self.storage, MemoryStorage)
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._warned_at = -math.inf

    @property
    def enabled(self) -> bool:
        return self._item is not None

    def hit(self, key: str) -> int | None:
        """Count one hit for ``key``: None when allowed, else the whole seconds until one would be."""
        if self._item is None or self._skipping():
            return None
        try:
            if self._limiter.hit(self._item, self._name, key):
                return None
            return self._wait_s(key)
        except StorageError as exc:  # the storage is down: allow (module docstring)
            self._failed(exc)
            return None

    def exhausted(self, key: str) -> int | None:
        """Whether ``key`` has no hit left, without counting one: the seconds to wait, or None."""
        if self._item is None or self._skipping():
            return None
        try:
            if self._limiter.test(self._item, self._name, key):
                return None
            return self._wait_s(key)
        except StorageError as exc:
            self._failed(exc)
            return None

    def _wait_s(self, key: str) -> int:
        assert self._item is not None
        reset_at = self._limiter.get_window_stats(self._item, self._name, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def _skipping(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def _failed(self, exc: StorageError) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + OUTAGE_BACKOFF_S
            warn = now - self._warned_at >= _WARN_EVERY_S
            if warn:
                self._warned_at = now
        if warn:
            logger.warning(
                "rate limit %r: storage unavailable (%s: %s); allowing requests unlimited for now",
                self._name,
                type(exc.storage_error).__name__,
                exc.storage_error,
            )
