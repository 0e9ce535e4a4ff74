"""Native metric ingest in worker processes: the server's HTTP process hands each body to a pool.

Why processes: decoding a 6,000-point batch, cutting it into chunks and COPYing them costs a few
milliseconds of CPU under the GIL, so one server process tops out at about one core of ingest
however many cores the machine has. With ``ingest_processes = N`` the HTTP process only reads the
body and checks the key; N spawned workers, each with its own database connections, series-id
cache and series cap, do the rest in parallel. PostgreSQL takes concurrent writers (the write path
is idempotent per batch id and safe for racing writers: ``store/metrics.py``); SQLite has one
writer per file, so there the pool is never used (``enabled_for``).

Why ``spawn``: the HTTP process runs threads (the event loop, the database pool); forking it would
copy their locks in whatever state they were. A spawned worker imports only what ingest needs.

What crosses the socket is the raw body (tens of KiB) one way and a small msgpack ``Outcome`` the
other; every error becomes a field of the ``Outcome``, so no exception object ever has to cross.
The HTTP process keeps the counters for ``/metrics``.

Trade-offs, documented in docs/scaling.md: the series cap is enforced per worker against the
count in the database, so concurrent new series may overshoot it by up to one batch per worker;
with remote write configured the HTTP process decodes an accepted body once more to forward it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from infragent import wire

if TYPE_CHECKING:
    from infragent.store.metrics import WriteResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    database_url: str
    max_series_per_tenant: int
    max_decompressed: int


class Outcome(msgspec.Struct, frozen=True):
    """What a worker did with one body: stored (``status`` 200) or why not (4xx/5xx and ``reason``)."""

    status: int = 200
    reason: str = ""
    batch_id: str = ""
    points: int = 0
    accepted_points: int = 0
    duplicate: bool = False
    write_s: float = 0.0
    retry_after_s: int = 0
    #: the telemetry reason label of a refusal ("series_cap", "malformed", …)
    label: str = ""


class OtlpOutcome(msgspec.Struct, frozen=True):
    """What a worker did with one OTLP export: ``answer`` is the encoded response on success."""

    status: int = 200
    reason: str = ""
    answer: bytes = b""
    label: str = ""
    points: int = 0
    retry_after_s: int = 0
    rejected_points: int = 0
    stored_batches: int = 0
    duplicate_batches: int = 0
    stored_points: int = 0
    write_s: list[float] = msgspec.field(default_factory=list)


class _Worker:
    """The state of one worker process: its engine, metric store and series cap."""

    def __init__(self, config: WorkerConfig) -> None:
        from infragent.server.limits_series import SeriesCap
        from infragent.store.engine import create_engine
        from infragent.store.metrics import SqlMetricStore

        # No pre-ping: a connection the database dropped fails one write (503, retried by the
        # agent) and SQLAlchemy then discards the pool; pinging costs a round trip on every batch.
        self.engine = create_engine(config.database_url, pool_size=4, pre_ping=False)
        self.store = SqlMetricStore(self.engine)
        self.cap = SeriesCap(self.engine, config.max_series_per_tenant)
        self.max_decompressed = config.max_decompressed

    def native(self, client_id: str, body: bytes, encoding: str | None, now: float) -> Outcome:
        from sqlalchemy.exc import OperationalError

        from infragent.server.api.metrics import store_native
        from infragent.server.limits_series import SeriesCapError
        from infragent.server.telemetry import REASON_BY_STATUS

        try:
            batch, result, seconds = store_native(
                self.store, self.cap, client_id, body, encoding, now, self.max_decompressed
            )
        except wire.WireError as exc:
            return Outcome(status=exc.status, reason=exc.reason, label=REASON_BY_STATUS[exc.status])
        except SeriesCapError as exc:
            return Outcome(
                status=429,
                reason=str(exc),
                points=exc.points,
                retry_after_s=exc.retry_after_s,
                label="series_cap",
            )
        except OperationalError as exc:
            log.warning("ingest worker %d: storage unavailable: %s", os.getpid(), exc.orig)
            return Outcome(status=503, reason="storage is busy or unavailable; retry later", retry_after_s=1)
        return Outcome(
            batch_id=batch.batch_id,
            points=batch.point_count,
            accepted_points=result.accepted_points,
            duplicate=result.duplicate,
            write_s=seconds,
        )

    def otlp(
        self, client_id: str, body: bytes, media_type: str, encoding: str | None, now: float
    ) -> OtlpOutcome:
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.exc import TimeoutError as PoolTimeoutError

        from infragent.server.api.otlp import SeriesCapThrottledError, ThrottledError, store_export
        from infragent.server.ingest import otlp
        from infragent.server.telemetry import REASON_BY_STATUS

        tally: dict[str, int] = {"stored": 0, "duplicate": 0, "points": 0}
        write_s: list[float] = []

        def stored(_batch: wire.MetricBatch, result: WriteResult, seconds: float) -> None:
            tally["duplicate" if result.duplicate else "stored"] += 1
            tally["points"] += result.accepted_points
            write_s.append(seconds)

        def outcome(**fields: Any) -> OtlpOutcome:
            return OtlpOutcome(
                stored_batches=tally["stored"],
                duplicate_batches=tally["duplicate"],
                stored_points=tally["points"],
                write_s=write_s,
                **fields,
            )

        try:
            decoded = store_export(self.store, self.cap, client_id, body, media_type, encoding, now, stored)
        except wire.WireError as exc:
            return outcome(status=exc.status, reason=exc.reason, label=REASON_BY_STATUS[exc.status])
        except SeriesCapThrottledError as exc:
            return outcome(
                status=429,
                reason=exc.reason,
                retry_after_s=exc.retry_after_s,
                label="series_cap",
                points=exc.points,
            )
        except ThrottledError as exc:
            return outcome(status=exc.status, reason=exc.reason, retry_after_s=exc.retry_after_s)
        except (OperationalError, PoolTimeoutError) as exc:
            log.warning("ingest worker %d: storage unavailable: %s", os.getpid(), exc)
            return outcome(status=503, reason="storage is busy or unavailable; retry later", retry_after_s=5)
        return outcome(
            answer=otlp.encode_response(decoded, media_type), rejected_points=decoded.rejected_points
        )


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
    worker = _Worker(config)
    sock.sendall(_HEAD.pack(0, 0))  # ready: connected and imported
    while (head := _recv_exactly(sock, _HEAD.size)) is not None:
        frame_len, body_len = _HEAD.unpack(head)
        frame = _recv_exactly(sock, frame_len)
        body = _recv_exactly(sock, body_len)
        if frame is None or body is None:
            return
        kind, client_id, encoding, now, media_type = _request.decode(frame)
        reply_value: Outcome | OtlpOutcome
        try:
            if kind == "otlp":
                reply_value = worker.otlp(client_id, body, media_type, encoding, now)
            else:
                reply_value = worker.native(client_id, body, encoding, now)
        except Exception:  # a bug or an unexpected store error: answer 500, keep serving
            log.exception("ingest worker %d: batch failed", os.getpid())
            failed = "internal error while storing the batch"
            reply_value = OtlpOutcome(status=500, reason=failed) if kind == "otlp" else Outcome(500, failed)
        reply = _encoder.encode(reply_value)
        sock.sendall(_HEAD.pack(len(reply), 0) + reply)


_request = msgspec.msgpack.Decoder(tuple[str, str, str | None, float, str])
_encoder = msgspec.msgpack.Encoder()
_outcome = msgspec.msgpack.Decoder(Outcome)
_otlp_outcome = msgspec.msgpack.Decoder(OtlpOutcome)


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

    async def native(self, client_id: str, body: bytes, encoding: str | None, now: float) -> Outcome:
        """Decode and store one native batch in a worker; a dead worker answers 503 (retryable)."""
        reply = await self._call(("native", client_id, encoding, now, ""), body)
        if reply is None:
            return Outcome(status=503, reason="ingest worker restarted; retry", retry_after_s=1)
        return _outcome.decode(reply)

    async def otlp(
        self, client_id: str, body: bytes, media_type: str, encoding: str | None, now: float
    ) -> OtlpOutcome:
        """Decode and store one OTLP export in a worker; a dead worker answers 503 (retryable)."""
        reply = await self._call(("otlp", client_id, encoding, now, media_type), body)
        if reply is None:
            return OtlpOutcome(status=503, reason="ingest worker restarted; retry", retry_after_s=1)
        return _otlp_outcome.decode(reply)

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
