"""``GET /metrics``: the server's own metrics in the Prometheus text format, for any scraper.

Why no API key: a Prometheus scrape job rarely carries per-tenant credentials, and the page shows
counts and tenant ids only (see ``server/telemetry.py``). Why a plain ``def``: the backlog and
series gauges query the database at scrape time, so FastAPI runs it in a worker thread.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infragent.server.api.deps import services

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def scrape(request: Request) -> Response:
    """Counters since start-up, the write-latency histogram, and gauges read now."""
    registry = services(request).telemetry.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
