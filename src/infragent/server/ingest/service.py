"""``Ingest``: the one entry the ingest routes call, whichever process does the work.

Why a service between the routes and the use cases: whether a body is handled in the server's
thread pool or in a worker process (``ingest_processes``), and what is forwarded to remote write,
is the composition root's decision (``create_app``), made once; the routes only authenticate,
check the Content-Type, call ``native`` or ``otlp`` and encode the ``IngestOutcome`` they get back.
Every outcome is counted here, by ``Telemetry.ingested``, whichever path produced it.

Why the work runs in a thread: decoding and the database write are CPU or blocking I/O, and the
event loop must keep reading other clients' bodies meanwhile.

Every newly stored batch is also handed to the alert evaluator (``observer``, ``alerting/``), which
only enqueues it. A batch a worker process stored is decoded once more here, as for remote write,
but only for a tenant that has rules (``BatchObserver.wants``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import anyio.to_thread

from infragent import wire
from infragent.server.ingest import otlp as otlp_codec
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.native import ingest_native
from infragent.server.ingest.otlp.store import ingest_export
from infragent.server.ingest.outcome import IngestOutcome
from infragent.server.ingest.pool import IngestPool
from infragent.server.telemetry import Telemetry
from infragent.store.metrics import MetricWriter

#: Hands a newly stored batch of a tenant to the remote-write exporter.
Forward = Callable[[str, wire.MetricBatch], None]


class BatchObserver(Protocol):
    """The alert evaluator, as ingest sees it (``alerting.Evaluator``)."""

    def wants(self, client_id: str) -> bool: ...

    def observe_batch(self, client_id: str, batch: wire.MetricBatch) -> None: ...


@dataclass(frozen=True)
class Ingest:
    metrics: MetricWriter
    cap: SeriesCap | None
    telemetry: Telemetry
    max_decompressed: int
    #: worker processes (PostgreSQL, ``ingest_processes`` > 0); None: in the server's thread pool
    pool: IngestPool | None = None
    #: the remote-write exporter's hand-off; None: not configured
    forward: Forward | None = None
    #: the alert evaluator; None: rules are off (``rules_enabled``)
    observer: BatchObserver | None = None

    async def native(self, client_id: str, body: bytes, encoding: str | None, now: float) -> IngestOutcome:
        """Store one native batch; with remote write, a batch a worker stored is decoded once more here."""
        if self.pool is not None:
            out = await self.pool.native(client_id, body, encoding, now)
            hand_off = self._hand_off_for(client_id)
            if hand_off is not None and out.ok and not out.duplicate:
                limit = self.max_decompressed
                batch = await anyio.to_thread.run_sync(
                    lambda: wire.decode_batch(body, content_encoding=encoding, max_decompressed=limit)
                )
                hand_off(batch)
        else:
            work = partial(
                ingest_native,
                self.metrics,
                self.cap,
                client_id,
                body,
                encoding,
                now,
                max_decompressed=self.max_decompressed,
                forward=self._hand_off_for(client_id),
            )
            out = await anyio.to_thread.run_sync(work)
        self.telemetry.ingested("native", out)
        return out

    async def otlp(
        self, client_id: str, body: bytes, media_type: str, encoding: str | None, now: float
    ) -> IngestOutcome:
        """Store one OTLP export; in the server process when forwarding (its batches are at hand here)."""
        if self.pool is not None and self.forward is None:
            out = await self.pool.otlp(client_id, body, media_type, encoding, now)
            observer = self.observer
            if observer is not None and out.ok and out.stored_batches and observer.wants(client_id):
                limit = min(self.max_decompressed, otlp_codec.MAX_DECOMPRESSED_BYTES)
                decoded = await anyio.to_thread.run_sync(
                    lambda: otlp_codec.decode(otlp_codec.inflate(body, encoding, limit), media_type, now=now)
                )
                for group in decoded.groups:
                    observer.observe_batch(client_id, group.batch("otlp"))
        else:
            work = partial(
                ingest_export,
                self.metrics,
                self.cap,
                client_id,
                body,
                media_type,
                encoding,
                now,
                max_decompressed=self.max_decompressed,
                forward=self._hand_off_for(client_id),
            )
            out = await anyio.to_thread.run_sync(work)
        self.telemetry.ingested("otlp", out)
        return out

    def _hand_off_for(self, client_id: str) -> Callable[[wire.MetricBatch], None] | None:
        """What a newly stored batch of the tenant is handed to: remote write and/or the evaluator."""
        forward = self.forward
        observer = self.observer if self.observer is not None and self.observer.wants(client_id) else None
        if forward is None and observer is None:
            return None

        def hand_off(batch: wire.MetricBatch) -> None:
            if forward is not None:
                forward(client_id, batch)
            if observer is not None:
                observer.observe_batch(client_id, batch)

        return hand_off
