"""The port the responder asks an LLM through, and the one HTTP exchange every adapter shares.

Why a Protocol with a single method: the responder only ever needs "one JSON answer for this
prompt, constrained by this schema"; everything vendor-specific (URL, auth header, envelope) stays
in the adapter, so adding a vendor never touches the decision loop.

Why the adapters are strict: the caller fails closed. A transport error, a timeout, a non-2xx
status, a blocked or truncated answer, or an envelope of the wrong shape all raise ``LlmError`` —
an adapter never hands back a partial or guessed answer, and never retries (the responder owns
retry and escalation policy).

Why a watchdog on top of httpx's timeout: ``httpx.Timeout(t)`` bounds each connect/read/write
*operation*, not the request, so a server that drips one byte every ``t - ε`` seconds could hold a
responder worker forever. ``post_json`` also shuts the socket down when the overall deadline
passes, which wakes the blocked read at once.

Why a fresh ``httpx.Client`` per request: the watchdog needs the request's own socket (learned
when the connection is made), and an LLM call takes seconds, so pooling saves nothing that
matters. It also leaves the adapters without mutable state: one instance may be shared by every
responder worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import httpx
import orjson

from infragent.errors import LlmError

logger = logging.getLogger(__name__)

PROVIDERS = ("gemini", "openai")
DEFAULT_BASE_URLS: Mapping[str, str] = {
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "openai": "https://api.openai.com/v1",
}
#: A schema-constrained decision is a few KB; anything near this is a broken or hostile server.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: Vendor error messages are quoted in ``LlmError``; keep them to a readable line.
MAX_QUOTED_CHARS = 300


class LlmClient(Protocol):
    """One LLM provider, asked for schema-constrained JSON."""

    name: str
    model: str

    def complete_json(self, system: str, user: str, schema: dict[str, Any]) -> str:
        """Ask for one JSON answer constrained by ``schema``; return the raw text of the answer.

        Raise ``infragent.errors.LlmError`` on transport error, timeout, non-2xx status,
        missing/blocked candidate, or a response body of the wrong shape. Never return a guess.
        """
        ...


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash; raise ValueError if it is not http(s).

    Why at construction: a typo in the URL is a configuration mistake, and should surface when the
    responder is wired, not as an ``LlmError`` on the first incident.
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid LLM base URL {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"LLM base URL must be an absolute http(s) URL, got {base_url!r}")
    return base_url.rstrip("/")


def check_timeout(timeout_s: float) -> float:
    if not timeout_s > 0:
        raise ValueError(f"LLM timeout must be positive, got {timeout_s!r}")
    return float(timeout_s)


def redact(message: str, secret: str | None) -> str:
    """Replace ``secret`` in ``message``: vendor error bodies are quoted and some echo the key."""
    if secret:
        return message.replace(secret, "***")
    return message


def quote(text: str) -> str:
    """Shorten vendor-supplied text for an error message."""
    text = " ".join(text.split())
    if len(text) > MAX_QUOTED_CHARS:
        return text[:MAX_QUOTED_CHARS] + "…"
    return text


def post_json(
    provider: str,
    url: str,
    payload: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    timeout_s: float,
) -> Any:
    """POST ``payload`` as JSON and return the decoded JSON body of a 2xx answer.

    Raise ``LlmError`` on anything else: transport failure, the overall deadline passing, a
    non-2xx status (quoting the vendor's ``error.message`` when there is one), a body over
    ``MAX_RESPONSE_BYTES``, or a body that is not JSON. Callers redact the API key from the error.
    """
    started = time.monotonic()
    content = orjson.dumps(payload)
    request_headers = {"content-type": "application/json", "accept": "application/json", **headers}
    status = 0
    body = b""
    with (
        _Deadline(timeout_s) as deadline,
        httpx.Client(
            timeout=httpx.Timeout(timeout_s), verify=_ssl_context(), follow_redirects=False
        ) as client,
    ):
        try:
            with client.stream(
                "POST",
                url,
                content=content,
                headers=request_headers,
                extensions={"trace": deadline.trace},
            ) as response:
                status = response.status_code
                body = _read_capped(response, provider)
        except httpx.TimeoutException as exc:
            raise LlmError(f"{provider}: timed out after {time.monotonic() - started:.1f}s") from exc
        except (httpx.HTTPError, OSError) as exc:
            if deadline.expired:
                raise LlmError(
                    f"{provider}: timed out after {time.monotonic() - started:.1f}s (overall deadline)"
                ) from exc
            raise LlmError(f"{provider}: transport error: {type(exc).__name__}: {exc}") from exc
    elapsed = time.monotonic() - started
    if deadline.expired:
        # A body delimited by connection close looks complete when the watchdog cuts it short.
        raise LlmError(f"{provider}: timed out after {elapsed:.1f}s (overall deadline)")
    logger.debug("%s answered HTTP %d in %.2fs (%d bytes)", provider, status, elapsed, len(body))
    if not 200 <= status < 300:
        raise LlmError(f"{provider}: HTTP {status}: {_error_detail(body)}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise LlmError(
            f"{provider}: HTTP {status} body is not JSON: {quote(body.decode('utf-8', 'replace'))}"
        ) from None


def _read_capped(response: httpx.Response, provider: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise LlmError(f"{provider}: response body exceeds {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_detail(body: bytes) -> str:
    """The vendor's own words for a failure: both wire formats use ``{"error": {"message": ...}}``."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return quote(body.decode("utf-8", "replace")) or "(empty body)"
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        error = decoded["error"]
        message = error.get("message")
        kind = error.get("status") or error.get("type") or error.get("code")
        if isinstance(message, str):
            return f"{kind}: {quote(message)}" if isinstance(kind, str) and kind else quote(message)
    return quote(body.decode("utf-8", "replace"))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process (~50 ms) instead of one per request.

    An ``SSLContext`` may be shared between threads; each request still gets its own connection.
    """
    return httpx.create_ssl_context()


class _Deadline:
    """Shut the request's socket down when ``seconds`` have passed since entry.

    The socket is learned from httpcore's documented ``trace`` extension as each connection is
    made (a fresh ``httpx.Client`` per request guarantees one is). ``shutdown`` — unlike
    ``close`` — wakes a thread blocked in ``recv`` on Linux, so the read fails at once.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._socket = sock  # after TLS, the wrapped socket replaces the (detached) raw one
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._socket
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # ``socket.socket.shutdown`` rather than ``sock.shutdown``: on an SSLSocket the override also
    # drops the SSL object under the reading thread, which then fails with ValueError instead of
    # an OSError that httpcore maps to a ReadError.
    with contextlib.suppress(OSError):  # already closed: the request finished or failed on its own
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
