"""Stand-ins for the InfrAgent server and for a user's app, served for real under uvicorn.

Why scripted: the real server cannot be made to answer 503 or hang on demand; these apps answer a
queued sequence of replies and record every request, so the SDK's retry and reporting behaviour is
tested over real HTTP without sleeping.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "ia_test_c2VjcmV0"


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``hang`` holds the request open until the test releases it."""

    status: int = 202
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class ScriptedServer:
    """Answers POSTs with queued replies, then with success; records what it received."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reset()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def reset(self) -> None:
        """Forget script and history (one server is shared by a module's tests)."""
        self.release.set()  # a request still hanging from the previous test may finish now
        self.release = threading.Event()
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self._accepted: list[bool] = []
        self.accepted = threading.Event()

    def script(self, *replies: Reply | int) -> None:
        for reply in replies:
            self.replies.append(Reply(status=reply) if isinstance(reply, int) else reply)

    def events(self) -> list[Any]:
        """Bodies of the events that were accepted (2xx), in order."""
        return [r.json for r, ok in zip(self.requests, self._accepted, strict=True) if ok]

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        self.requests.append(
            Received(
                method=request.method,
                path=request.url.path,
                headers=dict(request.headers),
                json=json.loads(raw) if raw else None,
            )
        )
        reply = self.replies.popleft() if self.replies else Reply(status=_default_status(request.url.path))
        ok = 200 <= reply.status < 300
        self._accepted.append(ok)
        if reply.hang:
            await anyio.to_thread.run_sync(functools.partial(self.release.wait, 30))
        body = reply.body
        if body is None:
            if request.url.path == "/api/v1/events" and ok:
                body = {"event_id": f"ev-{len(self.requests)}", "status": "received"}
            else:
                body = {"detail": f"scripted {reply.status}"} if not ok else {}
        response = JSONResponse(body, status_code=reply.status, headers=reply.headers)
        if ok:
            self.accepted.set()
        return response


def _default_status(path: str) -> int:
    return 202 if path == "/api/v1/events" else 200


class HealthApp:
    """A user's app whose ``GET /health`` answers ``status`` (toggle it to simulate an outage)."""

    def __init__(self) -> None:
        self.status = 200
        self.app = Starlette(routes=[Route("/health", self._health, methods=["GET"])])

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": self.status < 400}, status_code=self.status)


def refused_url() -> str:
    """A loopback base URL where nothing listens (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
