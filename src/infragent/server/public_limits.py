"""The API's rate limits, built once from the settings: per key (and per signed-in user), per client
IP on failed authentication, per client IP on registration (``server/ratelimit.py`` says how they
count and why they fail open).

Where each applies and why:

* **per key / per user** — every request ``server/auth.py`` authorizes counts against its key
  (``key:<id>``) or its user (``user:<id>``): ``api_rate_limit_per_key`` per ``api_rate_window_s``.
  One runaway script or leaked key cannot starve the server for everyone else.
* **per IP, failed authentication** — every 401 (no key, a wrong or revoked or expired key, an ended
  session) counts against the client's address: ``api_rate_limit_per_ip`` per ``api_rate_window_s``.
  Past it, the address gets 429 on every authenticated route until the window frees a slot, even
  with a good key, so guessing keys is capped. Remembered per process (``Blocked``) so the success
  path asks Redis nothing extra; with Redis, each server process learns of the block at the address'
  next failure.
* **per IP, registration** — ``registration_rate_limit`` per ``registration_rate_window_s`` (the one
  unauthenticated write; ``server/api/clients.py``).
* not limited: ``/health*`` and ``/metrics`` (they must stay scrapeable), static files and the API
  docs (no work behind them), the pages (signed in; H1's sign-in form has its own limiter).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import HTTPException, Request
from limits.storage import Storage

from infragent.config import Settings
from infragent.server.ratelimit import RateLimit, close_storage, open_storage

_MAX_BLOCKED = 10_000


def client_address(request: Request) -> str:
    """The TCP peer's address (a proxy's, unless uvicorn trusts its ``X-Forwarded-For``)."""
    return request.client.host if request.client else "unknown"


def too_many(detail: str, wait_s: int) -> HTTPException:
    """A 429 with ``Retry-After`` in whole seconds."""
    return HTTPException(status_code=429, detail=detail, headers={"Retry-After": str(wait_s)})


async def hit(limit: RateLimit, key: str) -> int | None:
    """``limit.hit(key)`` off the event loop when it may wait on Redis."""
    if limit.blocking:
        return await anyio.to_thread.run_sync(limit.hit, key)
    return limit.hit(key)


class Blocked:
    """Addresses this process refuses until a time (monotonic), learnt from the failed-auth limit."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_s(self, address: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            until = self._until.get(address)
            if until is None:
                return None
            if until <= now:
                del self._until[address]
                return None
        return max(1, int(until - now + 0.999))

    def block(self, address: str, wait_s: int) -> None:
        with self._lock:
            if len(self._until) >= _MAX_BLOCKED:
                self._until.clear()  # bounded memory; the shared counter still holds them
            self._until[address] = time.monotonic() + wait_s


@dataclass
class ApiLimits:
    """Every rate limit of one server, sharing one storage."""

    storage: Storage
    per_key: RateLimit
    failed_auth: RateLimit
    registrations: RateLimit
    blocked: Blocked = field(default_factory=Blocked)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiLimits:
        storage = open_storage(settings.rate_limit_storage)
        window = settings.api_rate_window_s
        return cls(
            storage=storage,
            per_key=RateLimit("api-key", settings.api_rate_limit_per_key, window, storage),
            failed_auth=RateLimit("auth-failed", settings.api_rate_limit_per_ip, window, storage),
            registrations=RateLimit(
                "register",
                settings.registration_rate_limit,
                settings.registration_rate_window_s,
                storage,
            ),
        )

    def refused_address(self, address: str) -> HTTPException | None:
        """A 429 for an address past its failed-authentication limit (no I/O), else None."""
        wait_s = self.blocked.wait_s(address)
        if wait_s is None:
            return None
        return too_many(f"too many failed authentications from {address}; retry in {wait_s} s", wait_s)

    async def failed(self, address: str) -> HTTPException | None:
        """Count a failed authentication of ``address``; past the limit, block it in this process and
        return the 429 to answer instead of the 401."""
        wait_s = await hit(self.failed_auth, address)
        if wait_s is None:
            return None
        self.blocked.block(address, wait_s)
        return too_many(f"too many failed authentications from {address}; retry in {wait_s} s", wait_s)

    async def admit(self, actor: str) -> None:
        """Count one request of ``actor`` (``key:<id>`` or ``user:<id>``); 429 past the limit."""
        wait_s = await hit(self.per_key, actor)
        if wait_s is not None:
            kind = "API key" if actor.startswith("key:") else "user"
            raise too_many(f"rate limit of this {kind} reached; retry in {wait_s} s", wait_s)

    def close(self) -> None:
        close_storage(self.storage)
