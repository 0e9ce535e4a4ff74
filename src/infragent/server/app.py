"""create_app(settings): the only place the server is wired together."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from infragent import __version__
from infragent.config import Settings
from infragent.server.api import agents, clients, commands, events, health, metrics, otlp, query, selfmetrics
from infragent.server.api.deps import AppServices
from infragent.server.auth import KeyCache
from infragent.server.ingest_pool import IngestPool, WorkerConfig, enabled_for
from infragent.server.limits import BodyLimitMiddleware
from infragent.server.limits_series import SeriesCap
from infragent.server.maintenance import start_maintenance
from infragent.server.telemetry import MAX_SERIES_TENANTS, RequestCounter, Telemetry
from infragent.store.sql import SqlStore, open_store


def _summary(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
    ]
    return JSONResponse({"detail": _summary(exc), "errors": errors}, status_code=422)


def create_app(
    settings: Settings,
    *,
    store: SqlStore | None = None,
    on_event: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the ASGI app; the store is opened (and migrated) here unless one is handed in."""
    owned = store is None
    the_store = store or open_store(settings.resolved_database_url)

    exporter = None
    if settings.remote_write_url:
        from infragent.remote_write import RemoteWriteExporter

        exporter = RemoteWriteExporter(settings.remote_write_url, headers=settings.remote_write_headers)

    ingest_pool = None
    db_url = the_store.engine.url.render_as_string(hide_password=False)  # the workers open the same
    if enabled_for(db_url, settings.ingest_processes):
        config = WorkerConfig(db_url, settings.max_series_per_tenant, metrics.MAX_DECOMPRESSED_BYTES)
        ingest_pool = IngestPool(config, settings.ingest_processes)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if exporter is not None:
            exporter.start()
        if ingest_pool is not None:
            await ingest_pool.start()
        upkeep = start_maintenance(settings, _app.state, the_store.engine, telemetry.registry, clock)
        yield
        upkeep.stop()
        if ingest_pool is not None:
            ingest_pool.close()
        if exporter is not None:
            exporter.close(timeout_s=5)
        if owned:
            the_store.close()

    app = FastAPI(
        title="InfrAgent",
        version=__version__,
        description="Observe, detect, decide, act, verify, record.",
        lifespan=lifespan,
    )
    telemetry = Telemetry()
    series_cap = SeriesCap(the_store.engine, settings.max_series_per_tenant)
    telemetry.bind(the_store.pending_count, lambda: series_cap.series_counts(MAX_SERIES_TENANTS))
    wake = on_event or (lambda: None)

    def event_received() -> None:  # the events route calls this once per stored event
        telemetry.events.inc()
        wake()

    app.state.services = AppServices(
        store=the_store,
        clock=clock,
        on_event=event_received,
        command_ttl_s=settings.command_ttl_s,
        telemetry=telemetry,
        series_cap=series_cap,
        ingest_pool=ingest_pool,
    )
    if exporter is not None:
        app.state.services.forward = exporter.submit
    app.state.remote_write = exporter
    app.state.keys = KeyCache(the_store)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in (health.router, clients.router, events.router, agents.router, commands.router):
        app.include_router(router)
    app.include_router(metrics.router)
    app.include_router(otlp.router)
    app.include_router(query.router)
    app.include_router(selfmetrics.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestCounter, telemetry=telemetry)
    return app
