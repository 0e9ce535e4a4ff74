"""Native metric ingest: decode, admit and store one gzip'd msgpack ``MetricBatch`` from an agent.

The use case behind ``POST /api/v1/metrics``, the same in the server's thread pool and in an ingest
worker process (``pool.py``); the route only checks the key and the Content-Type and encodes the
returned ``IngestOutcome``. Checks run cheapest first and nothing is stored until all pass: size
after inflating (413, while inflating, under ``max_decompressed_bytes``), shape and values (400),
then the series cap (429); only then the write, idempotent per batch id.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from infragent import wire
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.outcome import IngestOutcome, Tally, run
from infragent.store.metrics import MetricWriter


def ingest_native(
    metrics: MetricWriter,
    cap: SeriesCap | None,
    client_id: str,
    body: bytes,
    encoding: str | None,
    now: float,
    *,
    max_decompressed: int,
    forward: Callable[[wire.MetricBatch], None] | None = None,
) -> IngestOutcome:
    """Store one batch and say what happened; never raises (failures are outcomes).

    ``forward`` receives the batch once it is newly stored (not for a duplicate): the remote-write
    exporter's hand-off, when one is configured.
    """

    def work(tally: Tally) -> IngestOutcome:
        batch, columns = wire.decode_with_columns(
            body, content_encoding=encoding, max_decompressed=max_decompressed
        )
        admitted = cap.admit(client_id, [(batch.node_id, batch.series)]) if cap is not None else None
        start = time.perf_counter()
        result = metrics.write_batch(client_id, batch, now, columns)
        tally.wrote(result, time.perf_counter() - start)
        if cap is not None and admitted is not None:
            cap.written(admitted)
        if forward is not None and not result.duplicate:
            forward(batch)
        return tally.stored_outcome(batch_id=batch.batch_id)

    return run(work, "native", client_id)
