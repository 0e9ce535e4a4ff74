"""OTLP ingest: inflate, decode, admit and store one ``ExportMetricsServiceRequest``.

The use case behind ``POST /v1/metrics``, the same in the server's thread pool and in an ingest
worker process (``server/ingest/pool.py``); the route only checks the key and the Content-Type and
encodes the returned ``IngestOutcome`` (a ``google.rpc.Status`` on failure).

Why the batch id is a hash of the client and the inflated body: OTLP has no idempotency key, and an
exporter that timed out re-sends the same bytes. ``sha256(client_id, body)`` plus the host group's
index makes that resend a no-op in ``write_batch``; the same points sent in a different body are
stored again (OTLP itself accepts duplicates as the price of at-least-once delivery).

Why a failure midway is safe to retry: each host group's write is idempotent, so the groups written
before a 503 are skipped when the exporter sends the request again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from infragent import wire
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.otlp import MAX_DECOMPRESSED_BYTES, decode, encode_response, inflate
from infragent.server.ingest.outcome import IngestOutcome, Tally, run
from infragent.store.metrics import MetricWriter


def ingest_export(
    metrics: MetricWriter,
    cap: SeriesCap | None,
    client_id: str,
    body: bytes,
    media_type: str,
    encoding: str | None,
    now: float,
    *,
    max_decompressed: int,
    forward: Callable[[wire.MetricBatch], None] | None = None,
) -> IngestOutcome:
    """Store what is valid, count what is not; never raises (failures are outcomes).

    The body may inflate to ``max_decompressed`` bytes, or to the 20 MiB the OTLP specification
    recommends if that is lower. The series cap counts the new series of all host groups together
    and refuses the whole request (429), so an exporter backs off and retries instead of losing data.
    """

    def work(tally: Tally) -> IngestOutcome:
        raw = inflate(body, encoding, min(max_decompressed, MAX_DECOMPRESSED_BYTES))
        decoded = decode(raw, media_type, now=now)
        admitted = None
        if cap is not None:
            groups = [(g.node_id, g.series) for g in decoded.groups]
            admitted = cap.admit(client_id, groups, points=decoded.accepted_points + decoded.rejected_points)
        digest = hashlib.sha256(client_id.encode() + b"\0" + raw).hexdigest()
        for i, group in enumerate(decoded.groups):
            batch = group.batch(f"otlp:{digest}:{i}")
            start = time.perf_counter()
            result = metrics.write_batch(client_id, batch, now)
            tally.wrote(result, time.perf_counter() - start)
            if forward is not None and not result.duplicate:
                forward(batch)
        if cap is not None and admitted is not None:
            cap.written(admitted)
        return tally.stored_outcome(
            answer=encode_response(decoded, media_type), rejected_points=decoded.rejected_points
        )

    return run(work, "otlp", client_id)
