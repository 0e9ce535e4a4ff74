"""A scripted HTTP server for the agent's unit tests: replies queued per path, requests recorded.

Why not the real server here: these tests pin the agent's reaction to each answer (503 with
Retry-After, 400, 401, a command to run); the reliability tests in tests/e2e run the real server.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from support.servers import serve


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    """``reply(path, status, body, headers)`` queues an answer; unqueued paths get ``default``."""

    requests: list[Seen] = field(default_factory=list)
    replies: dict[str, deque[tuple[int, bytes, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    default: Callable[[str], tuple[int, bytes]] = lambda path: (200, b"{}")
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def reply(
        self, path: str, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None
    ) -> None:
        with self.lock:
            self.replies[path].append((status, body, headers or {}))

    def seen(self, path: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        with self.lock:
            self.requests.append(Seen(request.method, path, request.url.query, dict(request.headers), body))
            queued = self.replies[path]
            status, content, headers = queued.popleft() if queued else (*self.default(path), {})
        return Response(content, status_code=status, headers=headers, media_type="application/json")


@contextmanager
def scripted_server() -> Iterator[Scripted]:
    script = Scripted()
    methods = ["GET", "POST", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", script.handle, methods=methods)])
    with serve(app) as url:
        script.url = url
        yield script
