"""What routes need from the app: the store, the clock and the responder's wake-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from infragent.server.ingest_pool import IngestPool
from infragent.server.limits_series import SeriesCap
from infragent.server.telemetry import Telemetry
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch


def _no_forward(_client_id: str, _batch: MetricBatch) -> None:
    pass


@dataclass
class AppServices:
    store: SqlStore
    clock: Callable[[], float]
    on_event: Callable[[], None]
    command_ttl_s: float = 300.0
    #: Hands each newly stored batch to the remote-write exporter, when one is configured.
    forward: Callable[[str, MetricBatch], None] = _no_forward
    #: The server's own metrics (``GET /metrics``); the routes count ingest into it.
    telemetry: Telemetry = field(default_factory=Telemetry)
    #: Refuses batches that would pass ``max_series_per_tenant``; None: no cap.
    series_cap: SeriesCap | None = None
    #: Worker processes that decode and store native batches (PostgreSQL only); None: in-process.
    ingest_pool: IngestPool | None = None

    @property
    def forwarding(self) -> bool:
        """Whether accepted batches go to a remote-write exporter."""
        return self.forward is not _no_forward


def services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc
