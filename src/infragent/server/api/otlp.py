"""OTLP/HTTP metrics ingest: ``POST /v1/metrics``, so any OpenTelemetry SDK or Collector can push to us.

The request and every answer follow the OTLP specification rather than our own API's conventions:
the response has the request's content type (protobuf or JSON); success is 200 with an
``ExportMetricsServiceResponse`` (with ``partialSuccess`` when some data points were rejected); every
4xx/5xx carries a ``google.rpc.Status``. That is why authentication is called here rather than as
a dependency: FastAPI would answer a 401 with its own ``{"detail": …}`` body. The check order is
the native route's (``api/metrics.py``): API key (401/403), Content-Type (415), raw size (413, by
``BodyLimitMiddleware``, whose 413 body is its own JSON), then the use case
(``server/ingest/otlp/store.py``, run by ``AppServices.ingest`` in a thread or a worker process):
decompressed size (413), shape (400), the series cap (429 with ``Retry-After``).

Retryable answers come from the one failure map (``server/errors.py``): a database that is busy or
down, or a full connection pool, is a 503 with ``Retry-After``, which OTLP clients retry.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, HTTPException, Request, Response

from infragent.server.api.deps import services
from infragent.server.auth import ingest_principal_async
from infragent.server.errors import answer_for, is_storage_failure, retry_after_header
from infragent.server.ingest import otlp

router = APIRouter(tags=["otlp"])


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _failure(
    media_type: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = otlp.encode_status(status, message, media_type)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


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
    """Store what is valid, count what is not, and answer in the request's own encoding."""
    svc = services(request)  # not dependencies: a sync one costs a thread-pool hop per request
    media_type = _media_type(request.headers.get("content-type"))
    answer_type = media_type if media_type in otlp.MEDIA_TYPES else otlp.JSON
    try:
        who = await ingest_principal_async(request)
    except HTTPException as exc:
        return _failure(answer_type, exc.status_code, str(exc.detail), exc.headers)
    except Exception as exc:  # checking a key not in the cache reads the database
        if not is_storage_failure(exc):
            raise
        answer = answer_for(exc)  # 503 as a google.rpc.Status, like the use case's own
        return _failure(answer_type, answer.status, answer.reason, retry_after_header(answer.retry_after_s))
    if media_type not in otlp.MEDIA_TYPES:
        shown = media_type or "(none)"
        message = f"unsupported Content-Type {shown!r}: send {otlp.PROTOBUF!r} or {otlp.JSON!r}"
        svc.telemetry.rejected("otlp", "unsupported")
        return _failure(answer_type, 415, message)
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    out = await svc.ingest.otlp(who.client_id, body, media_type, encoding, svc.clock())
    if not out.ok:
        return _failure(media_type, out.status, out.reason, retry_after_header(out.retry_after_s))
    return Response(out.answer, media_type=media_type)
