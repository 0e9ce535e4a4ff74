"""The server's own metrics (``GET /metrics``, Prometheus text): how ingest and the responder are doing.

Why a registry per app and not prometheus_client's global one: ``create_app`` may run many times in
one process (every test does), and the global registry refuses a second metric of the same name.
Each ``Telemetry`` owns a ``CollectorRegistry`` that lives and dies with its app.

Why counters are incremented by the routes but the backlog and series gauges are read at scrape
time: a gauge kept up to date on every write would need the count after every commit, while a
scraper asks every 15 to 60 s; reading it then costs one query per scrape and is never stale.
A failing read (database down) drops that gauge from the scrape instead of failing the scrape, so
the counters still arrive when they matter most.

What it exposes is counts and tenant ids, no tenant data, so ``/metrics`` needs no API key, like
other exporters; keep it off the public network if tenant ids are sensitive (docs/configuration.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infragent.server.ingest.outcome import IngestOutcome

logger = logging.getLogger(__name__)

Path = Literal["native", "otlp"]
PATHS: tuple[Path, ...] = ("native", "otlp")
#: Why a request or points were refused; a closed set keeps the label's cardinality fixed.
REASONS = ("bad_request", "too_large", "unsupported", "series_cap", "invalid_point")
#: Store write latency buckets (seconds): a batch takes about a millisecond, a busy SQLite seconds.
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: At most this many tenants get an ``infragent_series`` sample (the largest): a scrape stays bounded.
MAX_SERIES_TENANTS = 1000
#: The ingest path of each ingest route (``api/metrics.py``, ``api/otlp.py``), by route template.
INGEST_ROUTES: dict[str, Path] = {"/api/v1/metrics": "native", "/v1/metrics": "otlp"}


class RouteTemplates:
    """The app's route templates, to name the route of a request answered before FastAPI routed it.

    Why: ``BodyLimitMiddleware`` refuses a body whose declared size is over the cap before any
    route runs, so FastAPI never puts the route in the scope; without this, such a 413 would be
    counted on ``other`` and on no ingest path. ``create_app`` binds the templates of its routers.
    """

    def __init__(self, templates: Iterable[str] = ()) -> None:
        self._patterns = [(compile_path(t)[0], t) for t in dict.fromkeys(templates)]

    def template(self, scope: Scope) -> str:
        """The template of the route that serves ``scope`` (``/api/v1/events/{event_id}``), or ``other``."""
        route = scope.get("route")
        found = getattr(route, "path", None)
        if found:
            return str(found)
        path = str(scope.get("path", ""))
        return next((t for regex, t in self._patterns if regex.match(path)), "other")


class _ScrapeGauges(Collector):
    """Gauges computed when scraped: the responder's backlog and the series count per tenant."""

    def __init__(self) -> None:
        self.pending: Callable[[], int] | None = None
        self.series: Callable[[], Mapping[str, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # no reads at registration: the store may not be reachable yet

    def collect(self) -> Iterable[Metric]:
        if self.pending is not None:
            try:
                value = self.pending()
            except Exception:  # a scrape must not fail because the database did
                logger.warning("/metrics: cannot read the pending event count", exc_info=True)
            else:
                pending = GaugeMetricFamily(
                    "infragent_responder_pending_events", "Events stored but not yet handled by a responder."
                )
                pending.add_metric([], value)
                yield pending
        if self.series is not None:
            try:
                counts = self.series()
            except Exception:  # as above
                logger.warning("/metrics: cannot read the series counts", exc_info=True)
            else:
                family = GaugeMetricFamily(
                    "infragent_series",
                    "Metric series stored per tenant (largest tenants only).",
                    labels=["tenant"],
                )
                for tenant, n in counts.items():
                    family.add_metric([tenant], n)
                yield family


class Telemetry:
    """The metrics of one app, and the helpers routes call so the label values stay consistent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.points = Counter(
            "infragent_ingest_points", "Data points stored, by ingest path.", ["path"], registry=r
        )
        self.batches = Counter(
            "infragent_ingest_batches",
            "Batches written: stored, or a duplicate of one stored before (nothing stored).",
            ["path", "outcome"],
            registry=r,
        )
        self.rejected_points = Counter(
            "infragent_ingest_rejected_points",
            "Data points refused, by reason (0 added when a refused body could not be decoded).",
            ["path", "reason"],
            registry=r,
        )
        self.rejected_requests = Counter(
            "infragent_ingest_rejected_requests",
            "Ingest requests refused whole, by reason (their points may be unknown).",
            ["path", "reason"],
            registry=r,
        )
        self.write_seconds = Histogram(
            "infragent_ingest_write_seconds",
            "Time to write one batch to the store.",
            ["path"],
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.events = Counter("infragent_events_received", "Events reported by SDKs and agents.", registry=r)
        self.http = Counter(
            "infragent_http_requests",
            "HTTP requests by route template and status.",
            ["route", "status"],
            registry=r,
        )
        for path in PATHS:  # every series present from the first scrape, so rate() sees the first increase
            self.points.labels(path)
            self.write_seconds.labels(path)
            for outcome in ("stored", "duplicate"):
                self.batches.labels(path, outcome)
            for reason in REASONS:
                self.rejected_points.labels(path, reason)
                self.rejected_requests.labels(path, reason)
        self._gauges = _ScrapeGauges()
        r.register(self._gauges)
        self.routes = RouteTemplates()

    def bind(self, pending: Callable[[], int], series: Callable[[], Mapping[str, int]]) -> None:
        """Give the scrape-time gauges their sources (the store is opened after this object)."""
        self._gauges.pending = pending
        self._gauges.series = series

    def bind_routes(self, templates: Iterable[str]) -> None:
        """Learn the app's route templates (``RouteTemplates``), once its routers are known."""
        self.routes = RouteTemplates(templates)

    def stored(self, path: Path, points: int, *, duplicate: bool) -> None:
        self.batches.labels(path, "duplicate" if duplicate else "stored").inc()
        if points:
            self.points.labels(path).inc(points)

    def ingested(self, path: Path, outcome: IngestOutcome) -> None:
        """Count one ingest body, from the server process or a worker: one place, so both agree.

        Batches written before a failure count as stored; a 503 (a retry) or a 500 (a bug) is not a
        refusal and has no reason label.
        """
        for seconds in outcome.write_s:
            self.write_seconds.labels(path).observe(seconds)
        if outcome.stored_batches:
            self.batches.labels(path, "stored").inc(outcome.stored_batches)
        if outcome.duplicate_batches:
            self.batches.labels(path, "duplicate").inc(outcome.duplicate_batches)
        if outcome.stored_points:
            self.points.labels(path).inc(outcome.stored_points)
        if outcome.label:
            self.rejected(path, outcome.label, outcome.points)
        if outcome.rejected_points:
            self.rejected(path, "invalid_point", outcome.rejected_points, whole_request=False)

    def body_too_large(self, scope: Scope) -> None:
        """Count a body ``BodyLimitMiddleware`` refused (413), on its ingest path if it was sent to one."""
        path = INGEST_ROUTES.get(self.routes.template(scope))
        if path is not None:
            self.rejected(path, "too_large")

    def rejected(self, path: Path, reason: str, points: int = 0, *, whole_request: bool = True) -> None:
        """Count a refusal; ``whole_request`` False for points dropped from an otherwise stored request."""
        if whole_request:
            self.rejected_requests.labels(path, reason).inc()
        if points:
            self.rejected_points.labels(path, reason).inc(points)


class RequestCounter:
    """ASGI middleware counting requests by route *template* (``/api/v1/events/{event_id}``).

    Why the template: a label per concrete path would grow with every id. Unmatched paths count as
    ``other``. FastAPI puts the matched route in the request scope, which this middleware shares;
    a request answered before routing is matched by ``Telemetry.routes``.
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(str(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.telemetry.http.labels(self.telemetry.routes.template(scope), str(status)).inc()
