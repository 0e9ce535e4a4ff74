"""``Ingest``: the one entry the ingest routes call, whichever process does the work.

Why a service between the routes and the use cases: whether a body is handled in the server's
thread pool or in a worker process (``ingest_processes``), and what is forwarded to remote write,
is the composition root's decision (``create_app``), made once; the routes only authenticate,
check the Content-Type, call ``native`` or ``otlp`` and encode the ``IngestOutcome`` they get back.
Every outcome is counted here, by ``Telemetry.ingested``, whichever path produced it.

Why the work runs in a thread: decoding and the database write are CPU or blocking I/O, and the
event loop must keep reading other clients' bodies meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import anyio.to_thread

from infragent import wire
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.native import ingest_native
from infragent.server.ingest.otlp.store import ingest_export
from infragent.server.ingest.outcome import IngestOutcome
from infragent.server.ingest.pool import IngestPool
from infragent.server.telemetry import Telemetry
from infragent.store.metrics import MetricWriter

#: Hands a newly stored batch of a tenant to the remote-write exporter.
Forward = Callable[[str, wire.MetricBatch], None]


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

    async def native(self, client_id: str, body: bytes, encoding: str | None, now: float) -> IngestOutcome:
        """Store one native batch; with remote write, a batch a worker stored is decoded once more here."""
        if self.pool is not None:
            out = await self.pool.native(client_id, body, encoding, now)
            if self.forward is not None and out.ok and not out.duplicate:
                limit = self.max_decompressed
                batch = await anyio.to_thread.run_sync(
                    lambda: wire.decode_batch(body, content_encoding=encoding, max_decompressed=limit)
                )
                self.forward(client_id, batch)
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
                forward=self._forward_for(client_id),
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
                forward=self._forward_for(client_id),
            )
            out = await anyio.to_thread.run_sync(work)
        self.telemetry.ingested("otlp", out)
        return out

    def _forward_for(self, client_id: str) -> Callable[[wire.MetricBatch], None] | None:
        forward = self.forward
        if forward is None:
            return None
        return lambda batch: forward(client_id, batch)
