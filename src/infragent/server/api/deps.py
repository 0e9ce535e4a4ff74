"""What routes need from the app: its one ``AppServices`` (``server/services.py``), and parts of it.

Why dependencies that only read ``app.state.services``: every service is built once by
``create_app``; a route never creates one, so nothing depends on which request came first.
"""

from __future__ import annotations

from fastapi import Request

from infragent.server.services import AppServices
from infragent.store.metrics import SqlMetricStore

__all__ = ["AppServices", "metric_store", "services"]


def services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc


def metric_store(request: Request) -> SqlMetricStore:
    """The app's one ``SqlMetricStore`` (shared with ingest and maintenance)."""
    return services(request).metric_store
