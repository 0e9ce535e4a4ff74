"""Metric ingest (native and OTLP) in worker processes: the server's HTTP process hands each body to a pool.

Why processes: decoding a 6,000-point batch, cutting it into chunks and COPYing them costs a few
milliseconds of CPU under the GIL, so one server process tops out at about one core of ingest
however many cores the machine has. With ``ingest_processes = N`` the HTTP process only reads the
body and checks the key; N spawned workers, each with its own database connections, series-id
cache and series cap, do the rest in parallel. PostgreSQL takes concurrent writers (the write path
is idempotent per batch id and safe for racing writers: ``store/metrics``); SQLite has one
writer per file, so there the pool is never used (``enabled_for``).

Why ``spawn``: the HTTP process runs threads (the event loop, the database pool); forking it would
copy their locks in whatever state they were. A spawned worker imports only what ingest needs.

What crosses the socket is the raw body (tens of KiB) one way and a small msgpack ``IngestOutcome``
the other; every error becomes a field of the outcome (``outcome.run`` and the one failure map in
``server/errors.py``, the same the server process uses), so no exception object ever has to cross.
The HTTP process keeps the counters for ``/metrics``. This module imports no FastAPI router and no
``server.api`` module: a worker loads only what ingest needs.

Trade-offs, documented in docs/scaling.md: the series cap is enforced per worker against the
count in the database, so concurrent new series may overshoot it by up to one batch per worker;
with remote write configured the HTTP process decodes an accepted body once more to forward it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import socket
import struct
from dataclasses import dataclass

import msgspec

from infragent.server.errors import unavailable
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.native import ingest_native
from infragent.server.ingest.otlp.store import ingest_export
from infragent.server.ingest.outcome import IngestOutcome
from infragent.server.ingest.outcome import unavailable as unavailable_outcome
from infragent.store.engine import create_engine
from infragent.store.metrics import MetricWriter, SqlMetricStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker needs to open its own connections (it is spawned: nothing else is shared)."""

    database_url: str
    max_series_per_tenant: int
    max_decompressed: int


class IngestWorker:
    """What one worker process holds and runs: its metric store and series cap, over its own engine.

    What it runs is what the server process runs in its thread pool (``ingest_native``,
    ``ingest_export``), with the same failure map, so both paths answer alike by construction.
    Built from parts so that a test can drive it in-process over an engine it controls.
    """

    def __init__(self, metrics: MetricWriter, cap: SeriesCap | None, max_decompressed: int) -> None:
        self.metrics = metrics
        self.cap = cap
        self.max_decompressed = max_decompressed

    @classmethod
    def open(cls, config: WorkerConfig) -> IngestWorker:
        """The worker process's own engine and state, from what crossed the spawn."""
        # No pre-ping: a connection the database dropped fails one write (503, retried by the
        # agent) and SQLAlchemy then discards the pool; pinging costs a round trip on every batch.
        engine = create_engine(config.database_url, pool_size=4, pre_ping=False)
        return cls(
            SqlMetricStore(engine), SeriesCap(engine, config.max_series_per_tenant), config.max_decompressed
        )

    def handle(
        self, kind: str, client_id: str, body: bytes, media_type: str, encoding: str | None, now: float
    ) -> IngestOutcome:
        limit = self.max_decompressed
        if kind == "otlp":
            return ingest_export(
                self.metrics, self.cap, client_id, body, media_type, encoding, now, max_decompressed=limit
            )
        return ingest_native(self.metrics, self.cap, client_id, body, encoding, now, max_decompressed=limit)


_HEAD = struct.Struct("<II")  # request: frame length, body length; reply: frame length, 0


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes from ``sock``, or None at end of stream (the server closed our socket)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _serve(config: WorkerConfig, sock: socket.socket) -> None:
    """A worker process: answer one framed request at a time until the server closes the socket."""
    logging.basicConfig(level=logging.WARNING)
    worker = IngestWorker.open(config)
    sock.sendall(_HEAD.pack(0, 0))  # ready: connected and imported
    while (head := _recv_exactly(sock, _HEAD.size)) is not None:
        frame_len, body_len = _HEAD.unpack(head)
        frame = _recv_exactly(sock, frame_len)
        body = _recv_exactly(sock, body_len)
        if frame is None or body is None:
            return
        kind, client_id, encoding, now, media_type = _request.decode(frame)
        reply = _encoder.encode(worker.handle(kind, client_id, body, media_type, encoding, now))
        sock.sendall(_HEAD.pack(len(reply), 0) + reply)


_request = msgspec.msgpack.Decoder(tuple[str, str, str | None, float, str])
_encoder = msgspec.msgpack.Encoder()
_outcome = msgspec.msgpack.Decoder(IngestOutcome)
#: What the server answers when the worker that had the body died: the body was not (or not wholly)
#: stored, and a retry is safe since every write is idempotent.
_WORKER_LOST = unavailable_outcome(unavailable("ingest worker restarted; retry"))


def enabled_for(database_url: str, processes: int) -> bool:
    """Worker processes only help a database that takes concurrent writers: PostgreSQL."""
    return processes > 0 and not database_url.startswith("sqlite")


@dataclass(eq=False)
class _Link:
    """One worker process and the server's end of its socket."""

    process: multiprocessing.process.BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class IngestPool:
    """``processes`` spawned workers, each serving one batch at a time over its own socket pair.

    Why socket pairs and not ``ProcessPoolExecutor``: the executor moves every call through two
    helper threads and a pickled work item, which cost the HTTP process ~1 ms of CPU a batch
    (measured with py-spy); here the event loop writes the body straight to an idle worker's
    socket and awaits the reply, with no thread hop. A worker that dies is replaced.
    """

    def __init__(self, config: WorkerConfig, processes: int) -> None:
        self.config = config
        self.processes = processes
        self._idle: asyncio.Queue[_Link] = asyncio.Queue()
        self._links: list[_Link] = []
        self._context = multiprocessing.get_context("spawn")

    async def _spawn(self) -> _Link:
        mine, theirs = socket.socketpair()
        process = self._context.Process(target=_serve, args=(self.config, theirs), daemon=True)
        await asyncio.to_thread(process.start)
        theirs.close()
        reader, writer = await asyncio.open_connection(sock=mine, limit=1 << 20)
        await reader.readexactly(_HEAD.size)  # the worker is connected and ready
        link = _Link(process, reader, writer)
        self._links.append(link)
        return link

    async def start(self) -> None:
        """Spawn the workers now (and wait until each has connected), not on the first batch."""
        for link in await asyncio.gather(*(self._spawn() for _ in range(self.processes))):
            self._idle.put_nowait(link)
        log.info("ingest workers ready: %s", sorted(link.process.pid or 0 for link in self._links))

    async def native(self, client_id: str, body: bytes, encoding: str | None, now: float) -> IngestOutcome:
        """Decode and store one native batch in a worker; a dead worker answers 503 (retryable)."""
        return await self._outcome(("native", client_id, encoding, now, ""), body)

    async def otlp(
        self, client_id: str, body: bytes, media_type: str, encoding: str | None, now: float
    ) -> IngestOutcome:
        """Decode and store one OTLP export in a worker; a dead worker answers 503 (retryable)."""
        return await self._outcome(("otlp", client_id, encoding, now, media_type), body)

    def pids(self) -> list[int]:
        """The worker processes serving now (a dead one is listed until a request finds it dead)."""
        return [link.process.pid for link in self._links if link.process.pid is not None]

    async def _outcome(self, request: tuple[str, str, str | None, float, str], body: bytes) -> IngestOutcome:
        reply = await self._call(request, body)
        return _WORKER_LOST if reply is None else _outcome.decode(reply)

    async def _call(self, request: tuple[str, str, str | None, float, str], body: bytes) -> bytes | None:
        """Send one request to an idle worker and return its reply, or None if the worker died."""
        link = await self._idle.get()
        try:
            frame = _encoder.encode(request)
            link.writer.write(_HEAD.pack(len(frame), len(body)) + frame)
            link.writer.write(body)
            frame_len, _ = _HEAD.unpack(await link.reader.readexactly(_HEAD.size))
            reply = await link.reader.readexactly(frame_len)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.error("ingest worker %s died; starting another", link.process.pid)
            await self._replace(link)
            return None
        except BaseException:  # cancelled mid-request: the reply would desynchronize the socket
            await self._replace(link)
            raise
        self._idle.put_nowait(link)
        return reply

    async def _replace(self, link: _Link) -> None:
        self._drop(link)
        try:
            self._idle.put_nowait(await self._spawn())
        except Exception:
            log.exception("could not start an ingest worker")

    def _drop(self, link: _Link) -> None:
        if link in self._links:
            self._links.remove(link)
        link.writer.close()
        if link.process.is_alive():
            link.process.kill()
        link.process.join(timeout=5)

    def close(self) -> None:
        for link in list(self._links):
            self._drop(link)
