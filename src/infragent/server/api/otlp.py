"""OTLP/HTTP metrics ingest: ``POST /v1/metrics``, so any OpenTelemetry SDK or Collector can push to us.

The request and every answer follow the OTLP specification rather than our own API's conventions:
the response has the request's content type (protobuf or JSON); success is 200 with an
``ExportMetricsServiceResponse`` (with ``partialSuccess`` when some data points were rejected); every
4xx/5xx carries a ``google.rpc.Status``. That is why authentication is called here rather than as
a dependency: FastAPI would answer a 401 with its own ``{"detail": …}`` body. The check order is
the native route's (``api/metrics.py``): API key (401/403), Content-Type (415), raw size (413, by
``BodyLimitMiddleware``, whose 413 body is its own JSON), decompressed size (413), shape (400).

Why the batch id is a hash of the client and the inflated body: OTLP has no idempotency key, and an
exporter that timed out re-sends the same bytes. ``sha256(client_id, body)`` plus the host group's
index makes that resend a no-op in ``write_batch``; the same points sent in a different body are
stored again (OTLP itself accepts duplicates as the price of at-least-once delivery).

Retryable answers: a database that is busy or down (``OperationalError``, a pool timeout) is a 503
with ``Retry-After``, which OTLP clients retry; because each host group's write is idempotent, the
groups written before the failure are skipped on the retry. ``ThrottledError`` is where admission
control (the per-tenant series cap, ``server/limits_series.py``) answers 429.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from infragent import wire
from infragent.errors import InfrAgentError
from infragent.server.api.deps import AppServices, services
from infragent.server.api.metrics import metric_store
from infragent.server.auth import ingest_principal_async
from infragent.server.ingest import otlp
from infragent.server.ingest_pool import IngestPool
from infragent.server.limits_series import Admission, SeriesCap, SeriesCapError
from infragent.server.telemetry import REASON_BY_STATUS
from infragent.store.metrics import SqlMetricStore, WriteResult

logger = logging.getLogger(__name__)

router = APIRouter(tags=["otlp"])

#: Seconds an exporter is asked to wait after a 503; short, since a busy database clears quickly.
RETRY_AFTER_S = 5


class ThrottledError(InfrAgentError):
    """Ingest must wait: answered with ``status`` (429 or 503) and ``Retry-After``, which OTLP retries."""

    def __init__(self, status: int, reason: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _failure(
    media_type: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = otlp.encode_status(status, message, media_type)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def _admit(cap: SeriesCap | None, client_id: str, decoded: otlp.Decoded) -> Admission | None:
    """Admission control before anything is stored; raise ``ThrottledError`` to refuse for now.

    The per-tenant series cap counts the new series of all host groups together and refuses the
    whole request with 429, so an exporter backs off and retries instead of losing the data; a
    request holding only series the tenant already has always passes.
    """
    if cap is None:
        return None
    try:
        return cap.admit(client_id, [(g.node_id, g.series) for g in decoded.groups])
    except SeriesCapError as exc:
        raise ThrottledError(429, str(exc), exc.retry_after_s) from None


class SeriesCapThrottledError(ThrottledError):
    """The series cap refused the request (429); ``points`` were in it, for the rejected counter."""

    def __init__(self, reason: str, retry_after_s: int, points: int) -> None:
        super().__init__(429, reason, retry_after_s)
        self.points = points


def store_export(
    store: SqlMetricStore,
    cap: SeriesCap | None,
    client_id: str,
    body: bytes,
    media_type: str,
    encoding: str | None,
    now: float,
    stored: Callable[[wire.MetricBatch, WriteResult, float], None],
) -> otlp.Decoded:
    """Inflate, decode, admit and store one export request; the route's work, in any process.

    Runs in the server's thread pool, or in an ingest worker (``server/ingest_pool.py``). Raises
    ``wire.WireError`` (4xx), ``ThrottledError`` (429/503) or a database error.
    """
    raw = otlp.inflate(body, encoding)
    decoded = otlp.decode(raw, media_type, now=now)
    try:
        admitted = _admit(cap, client_id, decoded)
    except ThrottledError as exc:
        points = decoded.accepted_points + decoded.rejected_points
        raise SeriesCapThrottledError(exc.reason, exc.retry_after_s, points) from None
    digest = hashlib.sha256(client_id.encode() + b"\0" + raw).hexdigest()
    for i, group in enumerate(decoded.groups):
        batch = group.batch(f"otlp:{digest}:{i}")
        start = time.perf_counter()
        result = store.write_batch(client_id, batch, now)
        stored(batch, result, time.perf_counter() - start)
    if cap is not None and admitted is not None:
        cap.written(admitted)
    return decoded


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportMetricsServiceRequest, optionally gzip-encoded (docs/otlp.md).",
        "content": {otlp.PROTOBUF: _BINARY, otlp.JSON: {"schema": {"type": "object"}}},
    }
}
_ANSWER = {"content": {otlp.PROTOBUF: _BINARY, otlp.JSON: {"schema": {"type": "object"}}}}


@router.post(
    "/v1/metrics",
    openapi_extra=_BODY_DOC,
    response_class=Response,
    responses={
        200: {"description": "ExportMetricsServiceResponse, with partialSuccess if points were rejected"}
        | _ANSWER,
        400: {"description": "google.rpc.Status: the body cannot be decoded"} | _ANSWER,
        401: {"description": "google.rpc.Status: missing or invalid API key"} | _ANSWER,
        413: {"description": "body or decompressed body over the limit"} | _ANSWER,
        415: {"description": "google.rpc.Status: unsupported Content-Type or Content-Encoding"} | _ANSWER,
        429: {"description": "google.rpc.Status: series cap reached; retry after Retry-After seconds"}
        | _ANSWER,
        503: {"description": "google.rpc.Status: storage busy; retry after Retry-After seconds"} | _ANSWER,
    },
)
async def export_metrics(request: Request) -> Response:
    """Store what is valid, count what is not, and answer in the request's own encoding.

    Inflating, decoding, hashing and the writes run in a worker thread, or in an ingest worker
    process (``ingest_processes``): they block or burn CPU, and the event loop must keep reading
    other exporters' bodies meanwhile.
    """
    svc = services(request)  # not dependencies: a sync one costs a thread-pool hop per request
    media_type = _media_type(request.headers.get("content-type"))
    answer_type = media_type if media_type in otlp.MEDIA_TYPES else otlp.JSON
    try:
        who = await ingest_principal_async(request)
    except HTTPException as exc:
        return _failure(answer_type, exc.status_code, str(exc.detail), exc.headers)
    if media_type not in otlp.MEDIA_TYPES:
        shown = media_type or "(none)"
        message = f"unsupported Content-Type {shown!r}: send {otlp.PROTOBUF!r} or {otlp.JSON!r}"
        svc.telemetry.rejected("otlp", "unsupported")
        return _failure(answer_type, 415, message)
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    now = svc.clock()

    if svc.ingest_pool is not None and not svc.forwarding:
        return await _export_in_pool(svc, svc.ingest_pool, who.client_id, body, media_type, encoding, now)
    store = metric_store(request)

    def stored(batch: wire.MetricBatch, result: WriteResult, seconds: float) -> None:
        svc.telemetry.write_seconds.labels("otlp").observe(seconds)
        svc.telemetry.stored("otlp", result.accepted_points, duplicate=result.duplicate)
        if not result.duplicate:
            svc.forward(who.client_id, batch)

    def decode_and_write() -> otlp.Decoded:
        try:
            return store_export(store, svc.series_cap, who.client_id, body, media_type, encoding, now, stored)
        except SeriesCapThrottledError as exc:
            svc.telemetry.rejected("otlp", "series_cap", exc.points)
            raise

    try:
        decoded = await anyio.to_thread.run_sync(decode_and_write)
    except wire.WireError as exc:
        svc.telemetry.rejected("otlp", REASON_BY_STATUS[exc.status])
        return _failure(answer_type, exc.status, exc.reason)
    except (OperationalError, PoolTimeoutError) as exc:
        cause = exc.orig if isinstance(exc, OperationalError) else exc  # not the SQL and its parameters
        logger.warning("OTLP ingest for client %s: storage unavailable: %s", who.client_id, cause)
        throttled = ThrottledError(503, "storage is busy or unavailable; retry later")
        return _throttled(answer_type, throttled)
    except ThrottledError as exc:
        return _throttled(answer_type, exc)
    if decoded.rejected_points:
        svc.telemetry.rejected("otlp", "invalid_point", decoded.rejected_points, whole_request=False)
        logger.debug("OTLP ingest for client %s: %s", who.client_id, decoded.error_message)
    return Response(otlp.encode_response(decoded, media_type), media_type=media_type)


def _throttled(media_type: str, exc: ThrottledError) -> Response:
    return _failure(media_type, exc.status, exc.reason, {"Retry-After": str(exc.retry_after_s)})


async def _export_in_pool(
    svc: AppServices,
    pool: IngestPool,
    client_id: str,
    body: bytes,
    media_type: str,
    encoding: str | None,
    now: float,
) -> Response:
    """The same answers as in-process, with the work done in an ingest worker process."""
    out = await pool.otlp(client_id, body, media_type, encoding, now)
    for seconds in out.write_s:
        svc.telemetry.write_seconds.labels("otlp").observe(seconds)
    if out.stored_batches or out.duplicate_batches:
        svc.telemetry.batches.labels("otlp", "stored").inc(out.stored_batches)
        svc.telemetry.batches.labels("otlp", "duplicate").inc(out.duplicate_batches)
        svc.telemetry.points.labels("otlp").inc(out.stored_points)
    if out.status != 200:
        if out.label:
            svc.telemetry.rejected("otlp", out.label, out.points)
        if out.retry_after_s:
            return _throttled(media_type, ThrottledError(out.status, out.reason, out.retry_after_s))
        return _failure(media_type, out.status, out.reason)
    if out.rejected_points:
        svc.telemetry.rejected("otlp", "invalid_point", out.rejected_points, whole_request=False)
    return Response(out.answer, media_type=media_type)
