"""Native metric ingest: ``POST /api/v1/metrics`` takes one gzip'd msgpack ``MetricBatch`` from an agent.

Why the raw body and not a pydantic model: msgspec decodes and validates a batch several times
faster, and the body must be inflated under a cap before anything parses it (see ``wire.py``).
The order of checks is cheapest first and nothing is stored until all pass: API key (401/403),
Content-Type (415), raw size (413, by ``BodyLimitMiddleware`` while the body streams), decompressed
size (413, while inflating), then shape and values (400).

Why a fixed decompressed cap (``MAX_DECOMPRESSED_BYTES``, 32 MiB) rather than a multiple of
``max_body_bytes``: the routes do not see ``Settings``, and the cap exists to bound memory per
request, which is an absolute figure. A 1 MiB gzip body of float batches inflates 2 to 4 times, far below it.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from infragent import wire
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, ingest_principal_async
from infragent.server.ingest_pool import IngestPool
from infragent.server.limits_series import SeriesCap, SeriesCapError
from infragent.server.telemetry import REASON_BY_STATUS
from infragent.store.metrics import SqlMetricStore, WriteResult

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])

MAX_DECOMPRESSED_BYTES = 32 * 1024 * 1024
_create_lock = threading.Lock()


class MetricsAccepted(BaseModel):
    batch_id: str
    accepted_points: int
    duplicate: bool


def metric_store(request: Request) -> SqlMetricStore:
    """One ``SqlMetricStore`` per app, created on first use so its series-id cache is shared.

    It lives on ``app.state.metrics`` (a test or ``create_app`` may put one there first) and uses
    the engine of the app's ``SqlStore``, which owns and disposes it.
    """
    state = request.app.state
    store: SqlMetricStore | None = getattr(state, "metrics", None)
    if store is None:
        with _create_lock:
            store = getattr(state, "metrics", None)
            if store is None:
                svc: AppServices = services(request)
                store = SqlMetricStore(svc.store.engine)
                state.metrics = store
    return store


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def store_native(
    store: SqlMetricStore,
    cap: SeriesCap | None,
    client_id: str,
    body: bytes,
    encoding: str | None,
    now: float,
    max_decompressed: int = MAX_DECOMPRESSED_BYTES,
) -> tuple[wire.MetricBatch, WriteResult, float]:
    """Decode, admit and store one batch: the route's work, in the server's thread pool or in an
    ingest worker (``server/ingest_pool.py``). Returns the batch, what was stored and the write's
    seconds; raises ``wire.WireError`` (4xx), ``SeriesCapError`` (429) or a database error.

    The series cap refuses new series past the tenant's cap before anything is stored.
    """
    batch, columns = wire.decode_with_columns(
        body, content_encoding=encoding, max_decompressed=max_decompressed
    )
    admitted = cap.admit(client_id, [(batch.node_id, batch.series)]) if cap is not None else None
    start = time.perf_counter()
    result = store.write_batch(client_id, batch, now, columns)
    seconds = time.perf_counter() - start
    if cap is not None and admitted is not None:
        cap.written(admitted)
    return batch, result, seconds


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A gzip-compressed msgpack MetricBatch (see docs/api.md).",
        "content": {wire.CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "",
    response_model=MetricsAccepted,
    openapi_extra=_BODY_DOC,
    responses={
        400: {"description": "malformed or invalid batch"},
        413: {"description": "body or decompressed body over the limit"},
        415: {"description": "unsupported Content-Type or Content-Encoding"},
        429: {"description": "series cap reached: new series refused; retry after Retry-After seconds"},
    },
)
async def ingest_metrics(
    request: Request, who: Annotated[Principal, Depends(ingest_principal_async)]
) -> MetricsAccepted:
    """Store a batch once; a resent batch id answers ``duplicate: true`` and stores nothing.

    Decoding and the database write run in a worker thread: both are CPU or blocking I/O, and the
    event loop must keep reading other agents' bodies meanwhile.
    """
    svc = services(request)  # not dependencies: a sync one would cost a thread-pool hop per batch
    media_type = _media_type(request.headers.get("content-type"))
    if media_type != wire.CONTENT_TYPE:
        svc.telemetry.rejected("native", "unsupported")
        raise HTTPException(
            status_code=415,
            detail=f"unsupported Content-Type {media_type or '(none)'!r}: send {wire.CONTENT_TYPE!r}",
        )
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    now = svc.clock()
    if svc.ingest_pool is not None:
        return await _ingest_in_pool(svc, svc.ingest_pool, who.client_id, body, encoding, now)

    store = metric_store(request)

    def decode_and_write() -> tuple[wire.MetricBatch, WriteResult]:
        batch, result, seconds = store_native(store, svc.series_cap, who.client_id, body, encoding, now)
        svc.telemetry.write_seconds.labels("native").observe(seconds)
        svc.telemetry.stored("native", result.accepted_points, duplicate=result.duplicate)
        if not result.duplicate:
            svc.forward(who.client_id, batch)
        return batch, result

    try:
        batch, result = await anyio.to_thread.run_sync(decode_and_write)
    except wire.WireError as exc:
        svc.telemetry.rejected("native", REASON_BY_STATUS[exc.status])
        raise HTTPException(status_code=exc.status, detail=exc.reason) from None
    except SeriesCapError as exc:
        svc.telemetry.rejected("native", "series_cap", exc.points)
        raise HTTPException(429, detail=str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
    return MetricsAccepted(
        batch_id=batch.batch_id, accepted_points=result.accepted_points, duplicate=result.duplicate
    )


async def _ingest_in_pool(
    svc: AppServices, pool: IngestPool, client_id: str, body: bytes, encoding: str | None, now: float
) -> MetricsAccepted:
    """The same contract as the in-process path, with the work done in an ingest worker process."""
    out = await pool.native(client_id, body, encoding, now)
    if out.status != 200:
        if out.label:  # a refusal; a 503 (storage or worker unavailable) is a retry, not a refusal
            svc.telemetry.rejected("native", out.label, out.points)
        headers = {"Retry-After": str(out.retry_after_s)} if out.retry_after_s else None
        raise HTTPException(out.status, detail=out.reason, headers=headers)
    svc.telemetry.write_seconds.labels("native").observe(out.write_s)
    svc.telemetry.stored("native", out.accepted_points, duplicate=out.duplicate)
    if not out.duplicate and svc.forwarding:
        limit = MAX_DECOMPRESSED_BYTES
        batch = await anyio.to_thread.run_sync(
            lambda: wire.decode_batch(body, content_encoding=encoding, max_decompressed=limit)
        )
        svc.forward(client_id, batch)
    return MetricsAccepted(
        batch_id=out.batch_id, accepted_points=out.accepted_points, duplicate=out.duplicate
    )
