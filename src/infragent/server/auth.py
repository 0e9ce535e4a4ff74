"""Bearer API-key authentication and the scope each route declares, with a short key cache so ingest
does not hit the database per request.

How a route declares and enforces its scope: it takes ``Depends(require("<operation>"))``, where the
operation is a row of ``auth/scopes.py``'s table. That one dependency checks the key (401), checks
the scope (403 with ``required_scope``, by ``ScopeError``) and declares the scope to OpenAPI as a
``security`` requirement on the ``ApiKey`` scheme (``declared_scopes`` reads it back, and
``tests/integration/server/test_scopes.py`` fails on a route that declares none). OTLP takes
``attempt(...)`` instead, which returns the refusal as a value so the route can answer it as a
``google.rpc.Status``.

Why a revoked key is refused at once: ``revoke`` drops it from this process's cache; other server
processes keep a cached key for at most ``CACHE_TTL_S`` (docs/api.md "Keys"). A rotated key is
dropped too, so its end of grace (``expires_at``) is read at once here; every request checks it.

Rate limits (``server/public_limits.py``) are applied here, where the caller becomes known: per key
or user on success, per client address on each 401.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from infragent.auth import apikeys, scopes
from infragent.auth import sessions as session_tokens
from infragent.auth.scopes import ScopeError
from infragent.server.errors import answer_for, is_storage_failure, retry_after_header
from infragent.server.public_limits import ApiLimits, client_address
from infragent.server.sessions import SessionService, SignedIn
from infragent.store import tenants
from infragent.store.base import Database
from infragent.store.records import KeyRecord

logger = logging.getLogger(__name__)

CACHE_TTL_S = 30.0
#: A key's ``last_used_at`` is written at most this often (per server process).
USE_FLUSH_S = 60.0
#: Where ``require``/``attempt`` record their operation on the dependency (as ``web/deps.page`` does),
#: so the authorization-matrix test reads every route's permission from the route table.
OPERATION_ATTR = "__infragent_operation__"

#: The security scheme every authenticated route declares, with its scope (OpenAPI ``security``).
API_KEY = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="ia_<key_id>_<secret>",
    description="An InfrAgent API key. Each operation lists the one scope it needs "
    "(ingest, read, operate, admin); a key holding admin is granted every scope.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, in which tenant, holding which scopes: an API key, or a signed-in user whose
    role gives the scopes (``auth/scopes.py`` ``ROLE_SCOPES``)."""

    client_id: str
    key_id: str  # "" for a signed-in user
    scopes: tuple[str, ...]
    user_id: str | None = None
    role: str | None = None
    email: str = ""
    #: the session's CSRF token, for the pages to embed; "" for a key
    csrf_token: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names who did it."""
        return f"user:{self.user_id}" if self.user_id else f"key:{self.key_id}"

    def can(self, operation: str) -> bool:
        """What a page asks before showing a button: the same table the API enforces."""
        return scopes.can(self.scopes, operation)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not authorized, for a route that answers it in its own format (OTLP)."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class KeyCache:
    """Keys by id for ``CACHE_TTL_S``, and the time each was last used, written in batches.

    Why last use is batched: writing ``last_used_at`` on every request would turn every ingest
    request into a database write. ``note_use`` keeps the time in memory; the first use after
    ``flush_every_s`` starts a background thread that writes every noted key at once, so a key's
    row is written at most once per ``flush_every_s`` by each server process. ``close`` (the app's
    shutdown) writes what is left; a process that dies loses at most the last minute of notes.
    """

    def __init__(
        self,
        store: Database,
        ttl_s: float = CACHE_TTL_S,
        *,
        clock: Callable[[], float] = time.time,
        flush_every_s: float = USE_FLUSH_S,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self.clock = clock
        self._flush_every = flush_every_s
        self._entries: dict[str, tuple[float, KeyRecord | None]] = {}
        self._lock = threading.Lock()
        self._uses: dict[str, float] = {}
        self._flushed_at = -math.inf
        self._flusher: threading.Thread | None = None
        self._closed = False

    def get(self, key_id: str) -> KeyRecord | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key_id)
        if hit and hit[0] > now:
            return hit[1]
        with self._store.read() as conn:
            record = tenants.get_key(conn, key_id)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_id] = (now + self._ttl, record)
        return record

    def fresh(self, key_id: str) -> bool:
        """Whether ``get`` would answer from memory, without the store."""
        with self._lock:
            hit = self._entries.get(key_id)
        return hit is not None and hit[0] > time.monotonic()

    def drop(self, key_id: str) -> None:
        """Forget a key at once (called on revoke and rotate)."""
        with self._lock:
            self._entries.pop(key_id, None)

    def note_use(self, key_id: str) -> None:
        """Remember that ``key_id`` was used now; start a flush when the last one is old enough."""
        now = self.clock()
        with self._lock:
            self._uses[key_id] = now
            due = now - self._flushed_at >= self._flush_every
            busy = self._flusher is not None and self._flusher.is_alive()
            if not due or busy or self._closed:
                return
            self._flushed_at = now
            batch, self._uses = self._uses, {}
            self._flusher = threading.Thread(
                target=self._write, args=(batch,), name="infragent-key-uses", daemon=True
            )
            self._flusher.start()

    def _write(self, batch: dict[str, float]) -> None:
        try:
            with self._store.write() as conn:
                tenants.record_key_uses(conn, batch)
        except Exception as exc:  # noqa: BLE001 - any failure: keep the notes, retry at the next flush
            logger.warning("could not record API keys' last use (%s); will retry", type(exc).__name__)
            with self._lock:
                for key_id, used_at in batch.items():
                    self._uses[key_id] = max(used_at, self._uses.get(key_id, used_at))

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait for a running flush to end (a test's synchronisation point; ``close``)."""
        with self._lock:
            flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=timeout_s)

    def close(self) -> None:
        """Wait for a running flush, then write the notes left (the app's shutdown)."""
        with self._lock:
            self._closed = True
        self.settle()
        with self._lock:
            batch, self._uses = self._uses, {}
        if batch:
            self._write(batch)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: Request) -> tuple[str, str]:
    """(key id, secret) from the ``Authorization`` header, or 401 saying what is missing."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <api_key>'")
    parsed = apikeys.parse(token.strip())
    if parsed is None:
        raise _unauthorized("invalid API key")
    return parsed


def _principal(cache: KeyCache, key_id: str, secret: str, operation: str) -> Principal:
    record = cache.get(key_id)
    if record is None or not apikeys.matches(secret, record.secret_hash):
        raise _unauthorized("invalid API key")
    if record.revoked:  # said only to a caller that holds the secret
        raise _unauthorized("API key revoked")
    if record.expired(cache.clock()):
        raise _unauthorized("API key expired: it was rotated and its grace period has ended")
    scopes.check(record.scopes, operation)
    cache.note_use(record.key_id)  # a refused scope is not a use; no I/O (a flush is a thread)
    return Principal(record.client_id, record.key_id, record.scopes)


def session_principal(signed: SignedIn) -> Principal:
    record = signed.session
    return Principal(
        record.client_id,
        "",
        signed.scopes,
        user_id=record.user_id,
        role=signed.role,
        email=signed.email,
        csrf_token=record.csrf_token,
    )


async def signed_in(request: Request) -> Principal | None:
    """The signed-in user of this request's session cookie, or None (no cookie, or not live)."""
    cookie = request.cookies.get(session_tokens.COOKIE)
    if not cookie:
        return None
    service: SessionService = request.app.state.services.sessions
    signed = await anyio.to_thread.run_sync(service.resolve, cookie)
    return session_principal(signed) if signed is not None else None


def csrf_refused(request: Request, who: Principal) -> bool:
    """Whether a state-changing request signed in by cookie lacks its session's CSRF token."""
    if request.method in session_tokens.SAFE_METHODS:
        return False
    return not session_tokens.csrf_ok(who.csrf_token, request.headers.get(session_tokens.CSRF_HEADER))


async def authorize(request: Request, operation: str) -> Principal:
    """The caller's principal if its key (``Authorization: Bearer``) or its signed-in user (session
    cookie, and for a state-changing request the CSRF header) may do ``operation``; else 401
    (HTTPException) or 403 (``ScopeError``, or a missing CSRF token), or 429 past a rate limit
    (``server/public_limits.py``: per key or user, and per address after too many 401s)."""
    limits: ApiLimits = request.app.state.services.limits
    address = client_address(request)
    blocked = limits.refused_address(address)
    if blocked is not None:
        raise blocked
    try:
        who = await _authenticate(request, operation)
    except HTTPException as exc:
        if exc.status_code == 401:
            refused = await limits.failed(address)
            if refused is not None:
                raise refused from None
        raise
    await limits.admit(who.actor)
    return who


async def _authenticate(request: Request, operation: str) -> Principal:
    """``authorize`` without the rate limits. No thread hop when the key is in the cache (every
    request but the first of each key): a thread-pool hop measured ~0.5 ms of the HTTP process's
    CPU per ingest request."""
    if "authorization" not in request.headers and session_tokens.COOKIE in request.cookies:
        who = await signed_in(request)
        if who is None:
            raise _unauthorized("not signed in: the session ended or expired; sign in again")
        if csrf_refused(request, who):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token (X-CSRF-Token)")
        scopes.check(who.scopes, operation)
        return who
    key_id, secret = _bearer(request)
    cache: KeyCache = request.app.state.services.keys
    if cache.fresh(key_id):
        return _principal(cache, key_id, secret, operation)  # no I/O: served from the cache
    return await anyio.to_thread.run_sync(_principal, cache, key_id, secret, operation)


def require(operation: str) -> Callable[..., Awaitable[Principal]]:
    """The dependency of a route doing ``operation``: enforces its scope and declares it to OpenAPI."""
    scope = scopes.required(operation)

    async def principal(
        request: Request,
        _declared: HTTPAuthorizationCredentials | None = Security(API_KEY, scopes=[scope]),
    ) -> Principal:
        return await authorize(request, operation)

    principal.__name__ = f"require_{operation.replace('.', '_')}"
    setattr(principal, OPERATION_ATTR, operation)
    return principal


def attempt(operation: str) -> Callable[..., Awaitable[Principal | Refusal]]:
    """``require`` for a route that answers refusals in its own format: the refusal is returned."""
    scope = scopes.required(operation)

    async def principal_or_refusal(
        request: Request,
        _declared: HTTPAuthorizationCredentials | None = Security(API_KEY, scopes=[scope]),
    ) -> Principal | Refusal:
        try:
            return await authorize(request, operation)
        except HTTPException as exc:
            return Refusal(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        except ScopeError as exc:
            return Refusal(403, str(exc))
        except Exception as exc:  # checking a key not in the cache reads the database
            if not is_storage_failure(exc):
                raise
            answer = answer_for(exc)  # 503, answered in the route's own format like its other failures
            return Refusal(answer.status, answer.reason, retry_after_header(answer.retry_after_s) or {})

    principal_or_refusal.__name__ = f"attempt_{operation.replace('.', '_')}"
    setattr(principal_or_refusal, OPERATION_ATTR, operation)
    return principal_or_refusal


def declared_scopes(route: APIRoute) -> list[str]:
    """The scopes ``route`` declares on the ``ApiKey`` scheme (what OpenAPI shows as its ``security``)."""
    found: list[str] = []

    def walk(dependant: Dependant) -> None:
        if dependant.call is API_KEY:
            found.extend(s for s in dependant.own_oauth_scopes or [] if s not in found)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


async def scope_refused(_request: Request, exc: Exception) -> JSONResponse:
    """The app's handler of ``ScopeError``: 403 whose body names the scope the key lacks."""
    assert isinstance(exc, ScopeError)
    return JSONResponse({"detail": str(exc), "required_scope": exc.required_scope}, status_code=403)
