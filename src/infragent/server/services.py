"""``AppServices``: every shared service of one server, built once by ``build_services``.

Why one object built in one place: services used to be created in three ways — on ``AppServices``,
on ``app.state`` (the key cache, the remote-write exporter) and lazily by whichever came first, a
request or the maintenance thread (the metric store, behind a private lock of a route module).
Now ``create_app(settings)`` calls ``build_services`` once; routes reach the result through the
``services`` dependency (``server/api/deps.py``), background jobs get what they need passed in, and
``start``/``stop`` run in the app's lifespan. No service is created at import time or on first use.

What is shared and why it must be one instance: the metric store (its series-id cache, and on
SQLite the writer lock that ingest and compaction take in turn), the series cap (its per-tenant
counts), the key cache, the ingest worker pool, the remote-write exporter (one queue, one sender
thread), the responder's wake-up (``on_event``), the alert evaluator (``alerting``: its windows
and leases; None when ``rules_enabled`` is off) and the notifier (``notifier``: the notification
pipeline and delivery worker, woken by this process's commits; None when ``notify_enabled`` is off)
and the scheduler (``scheduler``: claims due scheduled runs; None when ``schedules_enabled`` is off).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from infragent.actions.webhook import WebhookDispatcher
from infragent.alerting import Evaluator, build_evaluator
from infragent.config import Settings
from infragent.notify.service import Notifier, build_notifier
from infragent.outbound.policy import OutboundPolicy
from infragent.server import charts
from infragent.server.auth import KeyCache
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.pool import IngestPool, WorkerConfig, enabled_for
from infragent.server.ingest.service import Ingest
from infragent.server.logins import LoginThrottle
from infragent.server.maintenance import Maintenance, build_maintenance
from infragent.server.public_limits import ApiLimits
from infragent.server.ratelimit import RateLimit
from infragent.server.remote import RemoteControl
from infragent.server.scheduler import Scheduler, load_runbooks
from infragent.server.sessions import SessionService
from infragent.server.stream import MetricsPoint, Sampler, StreamHub, build_hub
from infragent.server.telemetry import MAX_SERIES_TENANTS, Telemetry
from infragent.store import events
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore, open_store

if TYPE_CHECKING:
    from infragent.remote_write import RemoteWriteExporter


@dataclass(frozen=True)
class AppServices:
    """The server's shared services; ``start`` and ``stop`` are the app's lifespan."""

    settings: Settings
    store: SqlStore
    #: The one metric store: ingest, queries and maintenance share its caches (and SQLite lock).
    metric_store: SqlMetricStore
    clock: Callable[[], float]
    #: Called once per stored event: counts it and wakes the responder.
    on_event: Callable[[], None]
    #: The server's own metrics (``GET /metrics``).
    telemetry: Telemetry
    keys: KeyCache
    #: Signed-in users: start, resolve and end sessions (the cookie-signing key is read once).
    sessions: SessionService
    #: Refuses batches that would pass ``max_series_per_tenant``.
    series_cap: SeriesCap
    #: The one ingest entry of both ingest routes.
    ingest: Ingest
    maintenance: Maintenance
    #: Registrations per client IP (``registration_rate_limit`` per ``registration_rate_window_s``).
    registrations: RateLimit
    #: Remote control: checks, records and delivers the commands people ask for (push ones off the request).
    remote: RemoteControl
    #: Rate limits per key or user and per client IP on failed authentication, and their storage
    #: (``rate_limit_storage``); ``registrations`` is one of them (``server/public_limits.py``).
    limits: ApiLimits
    #: Failed sign-ins per client IP (``login_rate_limit`` per ``login_rate_window_s``).
    logins: LoginThrottle
    #: The live streams (``GET /api/v1/stream``): one feed per tenant with a subscriber.
    stream: StreamHub
    #: Worker processes for ingest (PostgreSQL, ``ingest_processes`` > 0); None: in-process.
    ingest_pool: IngestPool | None = None
    #: Forwards accepted batches to remote write, when ``remote_write_url`` is set.
    exporter: RemoteWriteExporter | None = None
    #: Whether ``stop`` closes ``store`` (it was opened here, not handed in).
    owns_store: bool = False
    #: What a tenant's URLs may reach (``webhook_allowed_networks``), checked when one is registered.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    #: The alert evaluator (streaming at ingest, timers on a tick); None when ``rules_enabled`` is off.
    #: The events path calls ``alerting.claims_event`` and ``alerting.observe_event``.
    alerting: Evaluator | None = None
    #: The notification pipeline and delivery worker; None when ``notify_enabled`` is off.
    notifier: Notifier | None = None
    #: Claims the due runs of scheduled runbooks; None when ``schedules_enabled`` is off.
    scheduler: Scheduler | None = None

    @property
    def command_ttl_s(self) -> float:
        return self.settings.command_ttl_s

    async def start(self) -> None:
        """Start what runs in the background: the exporter's sender, the ingest workers, upkeep, rules."""
        if self.exporter is not None:
            self.exporter.start()
        if self.ingest_pool is not None:
            await self.ingest_pool.start()
        self.maintenance.start()
        if self.alerting is not None:
            self.alerting.start()
        if self.notifier is not None:
            self.notifier.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def stop(self) -> None:
        """Stop in the reverse order; close the store if it was opened here."""
        self.stream.stop()
        if self.scheduler is not None:
            self.scheduler.stop()  # a claim under way commits or rolls back whole
        if self.alerting is not None:
            self.alerting.stop()  # gives its leases up: another server takes over at once
        if self.notifier is not None:
            self.notifier.stop()  # waits a little for sends in flight; leases cover the rest
        self.maintenance.stop()
        self.remote.stop()  # finishes the pushes under way while the store is still open
        if self.ingest_pool is not None:
            self.ingest_pool.close()
        if self.exporter is not None:
            self.exporter.close(timeout_s=5)
        self.keys.close()  # writes the keys' last use noted since the last flush
        self.limits.close()
        if self.owns_store:
            self.store.close()


def build_services(
    settings: Settings,
    *,
    store: SqlStore | None = None,
    metric_store: SqlMetricStore | None = None,
    on_event: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> AppServices:
    """Build every shared service once. The store is opened (and migrated) unless one is handed in;
    the metric store uses the store's engine unless one is handed in (a test's broken database)."""
    limits = ApiLimits.from_settings(settings)  # first: a bad rate_limit_storage fails before anything opens
    runbooks = load_runbooks(settings) if settings.schedules_enabled else {}  # a bad file, before too
    the_store = store or open_store(settings.resolved_database_url)
    metrics = metric_store or SqlMetricStore(the_store.engine)
    telemetry = Telemetry()
    cap = SeriesCap(metrics.engine, settings.max_series_per_tenant)
    telemetry.bind(lambda: _pending_events(the_store), lambda: cap.series_counts(MAX_SERIES_TENANTS))

    exporter = None
    if settings.remote_write_url:
        from infragent.remote_write import RemoteWriteExporter  # only a server that forwards pays for it

        exporter = RemoteWriteExporter(settings.remote_write_url, headers=settings.remote_write_headers)

    pool = None
    db_url = metrics.engine.url.render_as_string(hide_password=False)  # the workers open the same
    if enabled_for(db_url, settings.ingest_processes):
        config = WorkerConfig(db_url, settings.max_series_per_tenant, settings.max_decompressed_bytes)
        pool = IngestPool(config, settings.ingest_processes)

    wake = on_event or (lambda: None)
    alerting = (
        build_evaluator(settings, the_store, metrics, clock=clock, registry=telemetry.registry)
        if settings.rules_enabled
        else None
    )

    notifier = (
        build_notifier(settings, the_store, clock=clock, registry=telemetry.registry, environ=os.environ)
        if settings.notify_enabled
        else None
    )

    scheduler = (
        Scheduler(the_store, runbooks, tick_s=settings.schedule_tick_s, clock=clock)
        if settings.schedules_enabled
        else None
    )

    def event_received() -> None:  # the events route calls this once per stored event
        telemetry.events.inc()
        wake()

    return AppServices(
        settings=settings,
        store=the_store,
        metric_store=metrics,
        clock=clock,
        on_event=event_received,
        telemetry=telemetry,
        keys=KeyCache(the_store, clock=clock),
        sessions=SessionService(the_store, settings, clock),
        series_cap=cap,
        ingest=Ingest(
            metrics,
            cap,
            telemetry,
            settings.max_decompressed_bytes,
            pool=pool,
            forward=exporter.submit if exporter is not None else None,
            observer=alerting,
        ),
        maintenance=build_maintenance(settings, metrics, telemetry.registry, clock),
        remote=RemoteControl(
            the_store,
            WebhookDispatcher(
                policy=OutboundPolicy.from_cidrs(settings.webhook_allowed_networks),
                timeout_s=settings.webhook_timeout_s,
                retries=settings.webhook_retries,
            ),
            command_ttl_s=settings.command_ttl_s,
            clock=clock,
        ),
        registrations=limits.registrations,
        limits=limits,
        logins=LoginThrottle(settings.login_rate_limit, settings.login_rate_window_s),
        stream=build_hub(
            settings,
            the_store,
            metrics,
            clock=clock,
            registry=telemetry.registry,
            sampler=_chart_sampler(metrics),
        ),
        ingest_pool=pool,
        exporter=exporter,
        owns_store=store is None,
        outbound=OutboundPolicy.from_cidrs(settings.webhook_allowed_networks),
        alerting=alerting,
        notifier=notifier,
        scheduler=scheduler,
    )


def _chart_sampler(metrics: SqlMetricStore) -> Sampler:
    """The stream's ``metrics`` events carry the host page's chart values (``server/charts.py``)."""

    def sample(client_id: str, host: str, after_ts: float) -> list[MetricsPoint]:
        points = charts.live_values(metrics, client_id, host, after_ts)
        return [MetricsPoint(p["ts"], p["values"]) for p in points]

    return sample


def _pending_events(store: SqlStore) -> int:
    """The responder's backlog, for the ``infragent_events_pending`` gauge."""
    with store.read() as conn:
        return events.pending_count(conn)
