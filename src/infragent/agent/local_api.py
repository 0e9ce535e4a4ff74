"""The agent's local HTTP endpoints (``/health``, ``/metrics`` …) on one selector thread.

Why not ``http.server`` or an ASGI server: ``http.server`` imports ``http.client`` and the
``email`` package (about 7 MB resident, measured), uvicorn far more, and the agent's whole budget
is 19.7 MiB. What is served here is a handful of small GET responses to a load balancer, systemd
or Prometheus, so one thread multiplexing non-blocking sockets with ``selectors`` is enough: it
costs no thread per connection and nothing at all while idle (it blocks until a socket is ready or
it is woken to stop — no polling timer).

Limits keep a misbehaving client from costing the agent memory or the thread: a request head over
``max_request_bytes`` gets 431, a connection idle for ``idle_timeout_s`` is closed, at most
``max_connections`` are open at once (the oldest is dropped), and only ``GET`` is served (405
otherwise, 404 for unknown paths). It binds 127.0.0.1 by default: health data is not for the world.

Once listening, the agent writes where (``local-api.json`` in its data directory, see
``BoundAddress``): with ``HEALTH_CHECK_PORT=0`` the kernel picks the port, and that file is how
``infragent up`` and the tests learn it without probing for a free port first (a race).

``render_prometheus`` writes the text exposition format 0.0.4 by hand — prometheus_client would
cost more memory than the agent's whole HTTP stack — with the escaping the format requires.
"""

from __future__ import annotations

import logging
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

import msgspec

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    400: "Bad Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Reply(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE


Handler = Callable[[], Reply]


class _Client(msgspec.Struct):
    sock: socket.socket
    deadline: float
    inbuf: bytearray = msgspec.field(default_factory=bytearray)
    outbuf: bytes = b""


class LocalApi:
    """Serves ``routes`` (path → handler) over HTTP on ``host:port`` from one thread."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Handler],
        *,
        max_request_bytes: int = 8192,
        idle_timeout_s: float = 5.0,
        max_connections: int = 32,
    ) -> None:
        self._routes = dict(routes)
        self._max_request = max_request_bytes
        self._idle_s = idle_timeout_s
        self._max_conns = max_connections
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=64)
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._clients: dict[socket.socket, _Client] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="infragent-local-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close every socket; returns once the thread has finished."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            logger.debug("local API wake-up failed; the thread is already gone")
        if self._thread.is_alive():
            self._thread.join(5)
        for sock in (self._listener, self._wake_r, self._wake_w, *self._clients):
            sock.close()
        self._clients.clear()

    # -- the loop ---------------------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, mask in sel.select(self._timeout()):
                    try:
                        self._dispatch(sel, key.fileobj, mask)
                    except Exception:  # loop boundary: one bad connection must not stop the endpoint
                        logger.exception("local API: error on a connection")
                        if key.fileobj in self._clients:
                            self._drop(sel, self._clients[key.fileobj])
                self._expire(sel)

    def _timeout(self) -> float | None:
        if not self._clients:
            return None  # idle: sleep until a connection arrives or close() wakes us
        return max(0.0, min(c.deadline for c in self._clients.values()) - time.monotonic())

    def _dispatch(self, sel: selectors.BaseSelector, sock: object, mask: int) -> None:
        if sock is self._wake_r:
            self._wake_r.recv(64)
        elif sock is self._listener:
            self._accept(sel)
        else:
            client = self._clients[sock]  # type: ignore[index]
            if mask & selectors.EVENT_READ:
                self._read(sel, client)
            if mask & selectors.EVENT_WRITE and client.sock in self._clients:
                self._write(sel, client)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and the like: log, keep the listener
                logger.exception("local API: accept failed")
                return
            if len(self._clients) >= self._max_conns:
                oldest = min(self._clients.values(), key=lambda c: c.deadline)
                self._drop(sel, oldest)
            sock.setblocking(False)
            self._clients[sock] = _Client(sock, time.monotonic() + self._idle_s)
            sel.register(sock, selectors.EVENT_READ)

    def _read(self, sel: selectors.BaseSelector, client: _Client) -> None:
        try:
            chunk = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, client)
            return
        if not chunk:
            self._drop(sel, client)
            return
        client.inbuf += chunk
        end = client.inbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(client.inbuf) > self._max_request:
                self._respond(sel, client, Reply(431, b'{"error": "request too large"}'))
            return
        self._respond(sel, client, self._route(bytes(client.inbuf[:end])))

    def _route(self, head: bytes) -> Reply:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return Reply(400, b'{"error": "malformed request line"}')
        method, target, _ = parts
        handler = self._routes.get(target.split("?", 1)[0])
        if handler is None:
            return Reply(404, b'{"error": "not found"}')
        if method != "GET":
            return Reply(405, b'{"error": "only GET is served"}')
        try:
            return handler()
        except Exception:  # handler boundary: answer 500 and keep serving
            logger.exception("local API: handler for %s failed", target)
            return Reply(500, b'{"error": "internal error"}')

    def _respond(self, sel: selectors.BaseSelector, client: _Client, reply: Reply) -> None:
        head = (
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Unknown')}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            "Cache-Control: no-store\r\n"
            + ("Allow: GET\r\n" if reply.status == 405 else "")
            + "Connection: close\r\n\r\n"
        )
        client.outbuf = head.encode("latin-1") + reply.body
        client.inbuf.clear()
        sel.modify(client.sock, selectors.EVENT_WRITE)
        self._write(sel, client)

    def _write(self, sel: selectors.BaseSelector, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, client)
            return
        client.outbuf = client.outbuf[sent:]
        if not client.outbuf:
            self._drop(sel, client)

    def _expire(self, sel: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for client in [c for c in self._clients.values() if c.deadline <= now]:
            self._drop(sel, client)

    def _drop(self, sel: selectors.BaseSelector, client: _Client) -> None:
        self._clients.pop(client.sock, None)
        try:
            sel.unregister(client.sock)
        except (KeyError, ValueError):
            logger.debug("local API: socket was not registered")
        client.sock.close()


# -- where it listens ---------------------------------------------------------------------------

ADDRESS_FILE = "local-api.json"


class BoundAddress(msgspec.Struct, frozen=True):
    """Where a running agent's local API listens, written to ``ADDRESS_FILE`` in its data dir.

    Why the pid: a file left by an agent that was killed names a dead process, so a reader waiting
    for a given child (``infragent up``, the tests) compares pids instead of trusting any file.
    """

    pid: int
    host: str
    port: int
    #: Push mode: the port of the push endpoint (``INFRAGENT_PUSH_PORT=0`` picks any free one).
    push_port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def publish_address(data_dir: Path, address: BoundAddress) -> Path:
    """Write ``address`` atomically (temp file, then rename): a reader never sees half of it."""
    path = data_dir / ADDRESS_FILE
    temporary = path.with_name(f".{ADDRESS_FILE}.{address.pid}")
    temporary.write_bytes(msgspec.json.encode(address) + b"\n")
    temporary.replace(path)
    return path


def read_address(data_dir: Path) -> BoundAddress | None:
    """The address last published in ``data_dir``; None if there is none (yet) or it is unreadable."""
    try:
        return msgspec.json.decode((data_dir / ADDRESS_FILE).read_bytes(), type=BoundAddress)
    except (OSError, msgspec.DecodeError):
        return None


def withdraw_address(data_dir: Path, pid: int) -> None:
    """Remove the published address if it is ``pid``'s (a stopping agent removes only its own)."""
    found = read_address(data_dir)
    if found is not None and found.pid == pid:
        (data_dir / ADDRESS_FILE).unlink(missing_ok=True)


# -- Prometheus text exposition format 0.0.4 ---------------------------------------------------


class Family(msgspec.Struct, frozen=True):
    """One metric family: ``samples`` are (labels, value); a counter's name ends in ``_total``."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...]


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def render_prometheus(families: Iterable[Family]) -> bytes:
    """The exposition text: ``# HELP``, ``# TYPE``, then one line per sample, newline-terminated."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            selector = f"{{{label_text}}}" if label_text else ""
            lines.append(f"{family.name}{selector} {format_value(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


# -- what the agent reports about itself --------------------------------------------------------


class Snapshot(msgspec.Struct, frozen=True):
    """The agent's figures at one moment; ``health_document`` and ``metric_families`` are pure on it."""

    version: str
    uptime_s: float
    ready: bool
    endpoint: str
    reachable: bool | None
    last_success: float | None
    latency_ms: float | None
    error: str | None
    buffer_bytes: int
    buffer_max_bytes: int
    buffer_records: int
    buffer_points: int
    checks: Mapping[str, str]  # check name → "up" | "down" | "unknown"
    cpu_percent: float
    rss_bytes: int
    points_collected: int
    points_sent: int
    points_dropped: int
    points_dead_lettered: int
    corrupt_records: int
    collector_errors: Mapping[str, int]
    events_sent: int
    #: Why the server refuses this agent (401/403/404 …: key, scope, URL), or None.
    refused: str | None = None

    @property
    def usage_percent(self) -> float:
        return round(100.0 * self.buffer_bytes / self.buffer_max_bytes, 2)

    @property
    def degraded(self) -> bool:
        """Degraded: the server is unreachable or refuses the agent, or the spool is over 80 % full."""
        return self.reachable is False or self.refused is not None or self.usage_percent > 80.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def health_document(s: Snapshot) -> dict[str, object]:
    """The ``/health`` JSON; ``system_resources`` are the agent process's own figures."""
    app_down = any(status == "down" for status in s.checks.values())
    return {
        "status": "degraded" if s.degraded else "healthy",
        "uptime_seconds": round(s.uptime_s, 3),
        "version": s.version,
        "checks": {
            "application": {"status": "degraded" if app_down else "healthy", "checks": dict(s.checks)},
            "collector_connectivity": {
                "endpoint": s.endpoint,
                "last_successful_send": _iso(s.last_success),
                "latency_ms": None if s.latency_ms is None else round(s.latency_ms, 2),
                "error": s.error,
                "refused": s.refused,
            },
            "buffer": {
                "current_size": s.buffer_bytes,
                "max_size": s.buffer_max_bytes,
                "usage_percent": s.usage_percent,
                "dropped": s.points_dropped,
            },
            "system_resources": {
                "cpu_percent": round(s.cpu_percent, 3),
                "memory_mb": round(s.rss_bytes / (1024 * 1024), 2),
            },
        },
    }


def metric_families(s: Snapshot) -> list[Family]:
    """The ``/metrics`` families, named ``agent_*`` as documented in docs/agent.md."""

    def one(name: str, kind: Literal["gauge", "counter"], help_text: str, value: float) -> Family:
        return Family(name, kind, help_text, (({}, value),))

    return [
        one("agent_buffer_size", "gauge", "Bytes held by the disk spool.", s.buffer_bytes),
        one("agent_buffer_usage_percent", "gauge", "Spool use in percent of its cap.", s.usage_percent),
        one("agent_buffer_records", "gauge", "Batches waiting in the spool.", s.buffer_records),
        one("agent_buffer_points", "gauge", "Points waiting in the spool.", s.buffer_points),
        one("agent_server_reachable", "gauge", "1 if the last send reached the server.", s.reachable is True),
        one(
            "agent_server_auth_failing",
            "gauge",
            "1 while the server refuses the agent (401/403/404 …): data kept, shipping paused.",
            s.refused is not None,
        ),
        one("agent_server_latency_ms", "gauge", "Latency of the last answered send.", s.latency_ms or 0.0),
        one("agent_points_collected_total", "counter", "Points collected and spooled.", s.points_collected),
        one("agent_points_sent_total", "counter", "Points the server acknowledged.", s.points_sent),
        one("agent_points_dropped_total", "counter", "Points dropped: spool over its cap.", s.points_dropped),
        one(
            "agent_points_dead_lettered_total",
            "counter",
            "Points the server refused as malformed (400/413/422), moved to the dead-letter file.",
            s.points_dead_lettered,
        ),
        one("agent_corrupt_records_total", "counter", "Damaged spool regions set aside.", s.corrupt_records),
        Family(
            "agent_collector_errors_total",
            "counter",
            "Collection failures by metric family.",
            tuple(({"family": name}, count) for name, count in sorted(s.collector_errors.items())),
        ),
        one("agent_events_sent_total", "counter", "Events the server accepted.", s.events_sent),
        one("agent_uptime_seconds", "gauge", "Seconds since the agent started.", s.uptime_s),
    ]
