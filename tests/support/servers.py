"""Run a real ASGI app under uvicorn on an ephemeral loopback port, in a thread.

Why a thread and port 0: no fixed ports, no sleeps — we poll the socket until uvicorn reports it
started, like httpx's own test suite does.
"""

from __future__ import annotations

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
    """Serve ``app`` and yield its base URL; shut it down on exit."""
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


def free_port() -> int:
    """A port that was free a moment ago, for URLs that must be known before their server starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
