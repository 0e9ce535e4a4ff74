"""Servers for tests: a real ASGI app under uvicorn on port 0, and ports that no server may take.

Why port 0 everywhere: a port probed as free can be taken by another process before the server
binds it, a race a busy CI machine loses now and then. A server bound to port 0 gets a port from the
kernel and reports it; we poll until uvicorn says it started, like httpx's own test suite does.

Two cases where the port must be known before its server listens, each with its own safe helper:

* ``closed_port()``: an address nobody serves (a connection-refused test). Nothing binds it, so a
  race can only make such a test connect somewhere else, never make a server fail to start.
* ``reserve_port()``: a URL that must exist before its server starts, or outlive a restart (an
  agent shipping to a server the test stops and starts again). The reservation holds the port bound,
  without listening, for as long as the test needs it; see ``PortReservation``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signals
        pass


@contextmanager
def serve(app: Any, host: str = "127.0.0.1", timeout_s: float = 15.0, port: int = 0) -> Iterator[str]:
    """Serve ``app`` and yield its base URL; shut it down on exit.

    Leave ``port`` at 0 and use the URL yielded; pass one only from a ``PortReservation``.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


class PortReservation:
    """A loopback port held for one test: refused while no server listens, never given to another.

    How: a socket bound with ``SO_REUSEADDR`` that never listens. Linux then refuses connections to
    the port (nothing listens), keeps it out of every automatic choice (``bind`` to port 0 and the
    local port of an outgoing connection skip a bound port), and lets exactly one kind of socket
    share it: another ``SO_REUSEADDR`` socket binding that port by number, which is what uvicorn
    (``infragent server --port N``, ``serve(port=N)``) does. So a server can stop and start again on
    the same URL, and nothing else can take the port in between.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reserve_port(host: str = "127.0.0.1") -> PortReservation:
    """Hold a port until ``close()`` (or the ``with`` block ends); see ``PortReservation``."""
    return PortReservation(host)


def closed_port() -> int:
    """A loopback port nothing listens on, for connection-refused tests; never give it to a server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
