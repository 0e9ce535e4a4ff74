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
from infragent.store.metrics import MetricReader

#: A host is online when seen within 3 of the agent's default 60 s intervals (as ``GET /api/v1/hosts``).
ONLINE_S = 3 * 60.0


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
