"""The base of the vendor stand-ins: a real HTTP server on 127.0.0.1 that records every request.

Why real servers rather than a mocked transport: a channel adapter's whole job is the wire (URL,
headers, body, status codes, ``Retry-After``, a refused connection), so the tests must cross a
socket to mean anything, and the e2e tests, browser tests and the benchmark point a running
InfrAgent server at the same stand-ins.

The API every stand-in has (``SlackStandIn``, ``DiscordStandIn``, ``TeamsStandIn``,
``PagerDutyStandIn``, ``WebhookReceiver``)::

    with SlackStandIn() as slack:
        ...send...
        slack.wait_for(1)                        # poll with a deadline; raises AssertionError
        assert slack.received[0].json["text"] == "..."
        slack.fail_next(2, 503)                  # the next 2 requests get a 503 (vendor's body)
        slack.fail_next(1, 429, retry_after=7)   # with ``Retry-After: 7``
        slack.down()                             # connection refused, port kept
        slack.up()                               # listening again on the SAME port (same URL)
        slack.reset()                            # forget requests, failures and vendor state

* ``url``: ``http://127.0.0.1:<port>``; each stand-in adds its vendor's URLs (``webhook_url``…).
* ``received``: every request in arrival order, failed ones included, as ``Received(at, method,
  path, headers, body, json)``: ``path`` keeps the query string, ``headers`` are lower-cased,
  ``json`` is the parsed body or None.
* ``fail_next(n, status, *, retry_after=None, body=None)``: the next ``n`` requests are recorded,
  then answered with ``status`` and the vendor's own error body for it (or ``body``: bytes, str, or
  a JSON value); vendor state does not change.
* ``down()``/``up()``: ``down`` closes the listening socket while a bound, non-listening socket
  keeps holding the port (see ``support.servers.PortReservation``), so connections are refused and
  no other process can take the port; ``up`` listens on it again.

Every answer is sent with ``Connection: close``: no pooled connection outlives ``down()``, and
closing never waits on an idle keep-alive connection. ``close()`` stops the server and joins its
thread; nothing is left open (no ``ResourceWarning``).
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import orjson

JsonBody = bytes | str | dict[str, Any] | list[Any]


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the stand-in received it."""

    at: float
    method: str
    #: the request target: path and query string (``/api/webhooks/1/t?wait=true``)
    path: str
    #: lower-cased names
    headers: dict[str, str]
    body: bytes
    #: the body parsed as JSON, None when it is not JSON
    json: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: status, body and headers (``content-type`` defaults to JSON)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, orjson.dumps(value), {"content-type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), {"content-type": "text/plain; charset=utf-8", **(headers or {})})


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | str | None
    body: JsonBody | None


class StandIn:
    """A recording HTTP server; subclasses implement ``answer`` (and ``failure_reply``/``clear``)."""

    name = "stand-in"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._failures: deque[_Failure] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._holder: socket.socket | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        self._holder, self._port = holder, holder.getsockname()[1]
        self.up()
        return self

    def up(self) -> None:
        """Listen (again) on the stand-in's port; a no-op when it is already listening."""
        if self._server is not None:
            return
        if self._holder is None:
            raise RuntimeError(f"the {self.name} is closed")
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.standin = self
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def down(self) -> None:
        """Stop listening: connections are refused until ``up()``; the port stays reserved."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5.0)

    def close(self) -> None:
        self.down()
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- test API ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._holder is None:
            raise RuntimeError(f"the {self.name} is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def received(self) -> list[Received]:
        """Every request so far (failed ones too), in arrival order."""
        with self._lock:
            return list(self._received)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until at least ``n`` requests arrived (polling); ``AssertionError`` after the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.received
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {len(got)} requests after {timeout_s} s, wanted {n}")
            time.sleep(0.01)

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        retry_after: float | str | None = None,
        body: JsonBody | None = None,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After``), changing nothing."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, body) for _ in range(n))

    def reset(self) -> None:
        """Forget every request, pending failure and vendor state (a fresh vendor, same URL)."""
        with self._lock:
            self._received.clear()
            self._failures.clear()
            self.clear()

    # -- for subclasses ----------------------------------------------------------------------------

    def answer(self, request: Received) -> Reply:
        """The vendor's answer to a request that is not failed on purpose (called under the lock)."""
        return Reply(404)

    def failure_reply(self, request: Received, status: int, retry_after: float | str | None) -> Reply:
        """The vendor's error body for ``status`` (``fail_next`` without ``body``)."""
        return Reply.json(status, {"error": HTTPStatus(status).phrase if status in _STATUSES else "error"})

    def clear(self) -> None:
        """Forget vendor state (called under the lock by ``reset``)."""

    # -- used by the handler -----------------------------------------------------------------------

    def _handle(self, request: Received) -> Reply:
        with self._lock:
            self._received.append(request)
            failure = self._failures.popleft() if self._failures else None
            if failure is None:
                return self.answer(request)
        reply = self._failure(request, failure)
        if failure.retry_after is not None:
            reply = Reply(
                reply.status, reply.body, {**reply.headers, "retry-after": str(failure.retry_after)}
            )
        return reply

    def _failure(self, request: Received, failure: _Failure) -> Reply:
        if failure.body is None:
            return self.failure_reply(request, failure.status, failure.retry_after)
        if isinstance(failure.body, bytes):
            return Reply(failure.status, failure.body, {"content-type": "application/octet-stream"})
        if isinstance(failure.body, str):
            return Reply.text(failure.status, failure.body)
        return Reply.json(failure.status, failure.body)


_STATUSES = frozenset(s.value for s in HTTPStatus)


def parse_json(body: bytes) -> Any:
    """``body`` as JSON, None when it is not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) resets the connection: expected, not noise.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLEOFError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5.0  # a client that sends headers and stalls cannot hold shutdown for long

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows failures; a line per request on stderr is noise

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self.close_connection = True
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Received(
            at=time.time(),
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            json=parse_json(body),
        )
        reply = self.server.standin._handle(request)
        self.send_response(reply.status)
        headers = {"content-type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.send_header("connection", "close")
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()
