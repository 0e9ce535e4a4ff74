"""The two ways a command reaches the agent, both ending in the same ``CommandProcessor``.

Why both modes share one code path: push (the server POSTs a signed webhook to the agent) and
pull (the agent long-polls the server and fetches the same signed messages) differ only in who
opens the connection. Signature, replay, ledger, allowlist and execution must not differ, so each
transport is a thin adapter around ``CommandProcessor.handle``:

* ``create_push_app`` — a Starlette ASGI app (sibling of the SDK's ``create_webhook_app``); the body
  is read with the SDK's capped reader, so an oversized request is refused without buffering it,
  and the blocking run happens in a worker thread so the event loop keeps answering.
* ``process_pulled`` — what the pull loop calls for each fetched command; it returns the result,
  the HTTP-equivalent status and the report to send back to the server. It is defined in
  ``commands.py`` (re-exported here), so that pull mode never imports Starlette.
* ``PushServer`` — what the agent runtime starts in push mode (``COMMAND_MODE=push``): the push app
  under uvicorn on a thread of its own, on ``INFRAGENT_PUSH_HOST:INFRAGENT_PUSH_PORT`` (default
  ``0.0.0.0:8472``), separate from the local API, which stays on loopback and read-only.

Starlette and uvicorn are imported only when push mode is used: the pull-mode agent (and
``process_pulled``) must not pay their memory.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from typing import TYPE_CHECKING

from infragent.agent.commands import REPORT_FIELDS, CommandProcessor, process_pulled

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/commands"
__all__ = ["DEFAULT_PATH", "REPORT_FIELDS", "PushServer", "create_push_app", "process_pulled"]


def create_push_app(processor: CommandProcessor, path: str = DEFAULT_PATH) -> Starlette:
    """An ASGI app serving ``POST {path}`` for push mode; ``PushServer`` runs it on the agent host."""
    _unhide("typing_extensions")  # Starlette needs it; ``lean.hide`` hides it from pull mode
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from infragent.sdk.webhook import read_capped

    async def endpoint(request: Request) -> Response:
        body = await read_capped(request, processor.max_body_bytes)
        if body is None:
            status, result = processor.refuse_oversize(request.headers)
        else:
            headers = dict(request.headers)
            status, result = await run_in_threadpool(processor.handle, headers, body)
        return JSONResponse(result, status_code=status)

    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])


def _unhide(module: str) -> None:
    """Undo ``lean.hide``'s hiding of ``module``: push mode imports what needs it."""
    if module in sys.modules and sys.modules[module] is None:
        del sys.modules[module]


class PushServer:
    """The push endpoint of a running agent: ``create_push_app`` under uvicorn, on its own thread.

    Why the socket is bound here, before uvicorn runs: a port in use is then an ``OSError`` from
    ``start()`` (the agent exits 1 naming it) instead of a failure inside a thread, and a listening
    socket queues the server's first command even before uvicorn's loop is up, so nothing waits.
    """

    def __init__(self, processor: CommandProcessor, host: str, port: int, path: str = DEFAULT_PATH) -> None:
        self._processor = processor
        self._host = host
        self._port = port
        self.path = path
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.address: tuple[str, int] = (host, port)

    def start(self) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._sock = socket.create_server((self._host, self._port), family=family, backlog=64)
        self.address = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            create_push_app(self._processor, self.path),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self._server = uvicorn.Server(config)  # off the main thread: it installs no signal handlers
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="infragent-push", daemon=True
        )
        self._thread.start()
        logger.info("push endpoint on %s:%d%s", *self.address, self.path)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, let a running command finish (up to ``timeout_s``), close the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
