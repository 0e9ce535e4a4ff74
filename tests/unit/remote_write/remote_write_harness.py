"""A scripted remote-write receiver (served for real under uvicorn) and a fake clock for the exporter.

Why scripted: no real store answers 503 with ``Retry-After`` or 413 on demand. This one answers a
queued sequence of replies (then 204), records every request's headers and decoded body, and so
lets the exporter's retry and rejection rules be tested over a real socket without sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import cramjam
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infragent.remote_write.proto import TimeSeries, decode_write_request


@dataclass(frozen=True)
class Reply:
    status: int = 204
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes  # as sent (snappy)
    series: list[TimeSeries]  # decoded
    status: int  # what we answered

    @property
    def samples(self) -> int:
        return sum(len(s) for s in self.series)


class Receiver:
    """``POST /api/v1/write``: answers scripted replies in order, then 204."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.app = Starlette(routes=[Route("/api/v1/write", self._write, methods=["POST"])])

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests = []

    def script(self, *replies: Reply | int) -> None:
        with self._lock:
            self.replies.extend(Reply(status=r) if isinstance(r, int) else r for r in replies)

    def accepted(self) -> list[TimeSeries]:
        """Every series of every 2xx-answered request, in arrival order."""
        with self._lock:
            return [s for r in self.requests if 200 <= r.status < 300 for s in r.series]

    async def _write(self, request: Request) -> Response:
        raw = await request.body()
        series = decode_write_request(bytes(cramjam.snappy.decompress_raw(raw)))
        with self._lock:
            reply = self.replies.popleft() if self.replies else Reply()
            self.requests.append(Received(request.url.path, dict(request.headers), raw, series, reply.status))
        return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type="text/plain")


class FakeTime:
    """A monotonic clock that moves only when the exporter sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
