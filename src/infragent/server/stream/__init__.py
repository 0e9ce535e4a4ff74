"""The tenant live stream (SSE, ``GET /api/v1/stream``): ``StreamHub`` and its feeds (docs/api.md
"Live stream"). ``build_hub`` makes the server's one hub from its settings and stores."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from infragent.config import Settings
from infragent.server.stream.cursor import Cursor, Event
from infragent.server.stream.hub import HubConfig, StreamHub
from infragent.server.stream.source import MetricsPoint, Sampler, StreamSource
from infragent.store.base import Database
from infragent.store.dashboard import ONLINE_WINDOW_S
from infragent.store.metrics import MetricReader

#: A host is online when seen within the dashboard's window (``store/dashboard.ONLINE_WINDOW_S``): one rule
#: for the pages and the stream's ``host`` events.
ONLINE_S = ONLINE_WINDOW_S


def build_hub(
    settings: Settings,
    store: Database,
    metric_store: MetricReader,
    *,
    clock: Callable[[], float],
    registry: CollectorRegistry | None = None,
    sampler: Sampler | None = None,
) -> StreamHub:
    """The server's hub; ``sampler`` gives the live chart values (default: CPU, memory, load)."""
    config = HubConfig(
        max_per_owner=settings.stream_max_connections,
        heartbeat_s=settings.stream_heartbeat_s,
        queue_max=settings.stream_queue_max,
    )
    source = StreamSource(store, metric_store, ONLINE_S, sampler=sampler)
    return StreamHub(source, config, clock=clock, registry=registry)


__all__ = [
    "Cursor",
    "Event",
    "HubConfig",
    "MetricsPoint",
    "Sampler",
    "StreamHub",
    "StreamSource",
    "build_hub",
]
