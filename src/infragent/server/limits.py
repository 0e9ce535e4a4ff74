"""Request body cap, enforced before the body is read whole.

Why ASGI middleware and not a dependency: by the time a route runs, the body may already be in
memory. Here a declared ``Content-Length`` over the cap is refused at once, and a chunked body is
counted as it streams and cut off at the cap.

A declared body is refused before routing, so no route counts it: ``on_refused`` is told of every
413 sent here, before it is sent, and the app's telemetry counts it on its ingest path
(``Telemetry.body_too_large``).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large_response(limit: int) -> tuple[Message, Message]:
    body = orjson.dumps({"detail": f"request body is larger than the limit of {limit} bytes"})
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, on_refused: Callable[[Scope], None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused or (lambda _scope: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self.on_refused(scope)
            for message in _too_large_response(self.max_bytes):
                await send(message)
            return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now; the app sees a disconnected client and stores nothing.
                    refused = True
                    self.on_refused(scope)
                    if not started:
                        for reply in _too_large_response(self.max_bytes):
                            await send(reply)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"BodyLimitMiddleware(max_bytes={self.max_bytes})"
