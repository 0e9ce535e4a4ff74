"""Native metric ingest: ``POST /api/v1/metrics`` takes one gzip'd msgpack ``MetricBatch`` from an agent.

Thin: the key and its ``ingest`` scope (401/403, ``server/auth.py``), the Content-Type (415) and
the raw size (413, by ``BodyLimitMiddleware`` while the body streams) are checked here; decoding,
admission and the write are the ingest use case (``server/ingest/native.py``, run by
``AppServices.ingest`` in a thread or a worker process), whose ``IngestOutcome`` this route turns
into JSON. Every failure is answered by the one map in
``server/errors.py``: storage down or the connection pool exhausted is 503 with ``Retry-After``.

Why the raw body and not a pydantic model: msgspec decodes and validates a batch several times
faster, and the body must be inflated under a cap (``max_decompressed_bytes``) before anything
parses it (see ``wire``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from infragent import wire
from infragent.server.api.deps import services
from infragent.server.auth import Principal, require
from infragent.server.errors import retry_after_header

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])


class MetricsAccepted(BaseModel):
    batch_id: str
    accepted_points: int
    duplicate: bool


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


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
        503: {"description": "storage busy or unavailable; retry after Retry-After seconds"},
    },
)
async def ingest_metrics(
    request: Request, who: Annotated[Principal, Depends(require("metrics.write"))]
) -> MetricsAccepted:
    """Store a batch once; a resent batch id answers ``duplicate: true`` and stores nothing."""
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
    out = await svc.ingest.native(who.client_id, body, encoding, svc.clock())
    if not out.ok:
        raise HTTPException(out.status, detail=out.reason, headers=retry_after_header(out.retry_after_s))
    return MetricsAccepted(batch_id=out.batch_id, accepted_points=out.stored_points, duplicate=out.duplicate)
