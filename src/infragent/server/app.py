"""create_app(settings): the composition root, the only place the server is wired together.

Every shared service is built here, once, by ``server/services.py``'s ``build_services``, and
started and stopped by the app's lifespan; the routes in ``server/api`` only read them.

Failures a route does not answer itself are answered here, by the one map in ``server/errors.py``:
a database that is down or saturated is 503 with ``Retry-After`` on every route (as on ingest),
anything else a JSON 500 whose text names no SQL, parameter or driver message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError

from infragent import __version__
from infragent.auth.scopes import ScopeError
from infragent.config import Settings
from infragent.notify.errors import NotifyError
from infragent.server.api import (
    agents,
    alerts,
    approvals,
    audit,
    clients,
    commands,
    events,
    guardrails,
    health,
    incidents,
    keys,
    metrics,
    notify_channels,
    notify_deliveries,
    notify_inbox,
    notify_routes,
    notify_silences,
    otlp,
    query,
    rules,
    runs,
    schedules,
    selfmetrics,
    stream,
    users,
)
from infragent.server.auth import scope_refused
from infragent.server.docs import install_docs
from infragent.server.errors import (
    ROUTE_INTERNAL_ERROR,
    Answer,
    answer_for,
    notify_refusal,
    retry_after_header,
    run_refusal,
)
from infragent.server.headers import SecurityHeaders
from infragent.server.limits import BodyLimitMiddleware
from infragent.server.services import build_services
from infragent.server.telemetry import RequestCounter
from infragent.server.web import install_web
from infragent.store.metrics import SqlMetricStore
from infragent.store.run_errors import RunError
from infragent.store.sql import SqlStore

logger = logging.getLogger(__name__)


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


def _answer(answer: Answer) -> JSONResponse:
    headers = retry_after_header(answer.retry_after_s)
    return JSONResponse({"detail": answer.reason}, status_code=answer.status, headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Any SQLAlchemy error a route let through: 503 + ``Retry-After`` when the database is down or
    its pool exhausted, else a 500 (a bug), logged here because nothing re-raises it."""
    answer = answer_for(exc, internal=ROUTE_INTERNAL_ERROR)
    if answer.storage_unavailable:  # the driver's message, not the statement and its parameters
        cause = getattr(exc, "orig", None) or exc
        logger.warning("%s %s: storage unavailable: %s", request.method, request.url.path, cause)
    else:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _answer(answer)


async def _notify_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A notification request refused (``notify/errors.py``): its status, and the fields at fault."""
    assert isinstance(exc, NotifyError)
    status, body = notify_refusal(exc)
    return JSONResponse(body, status_code=status)


async def _run_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A request about runs, approvals or guardrails refused (``store/run_errors.py``)."""
    assert isinstance(exc, RunError)
    status, body = run_refusal(exc)
    return JSONResponse(body, status_code=status)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """Any other exception: a JSON 500 in the API's error shape. Starlette re-raises the exception
    after this answer is sent, so the server logs it with its traceback once, there."""
    return _answer(answer_for(exc, internal=ROUTE_INTERNAL_ERROR))


def create_app(
    settings: Settings,
    *,
    store: SqlStore | None = None,
    metric_store: SqlMetricStore | None = None,
    on_event: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the ASGI app and every shared service, once (``build_services``); nothing is lazy.

    The store is opened (and migrated) here unless one is handed in; ``metric_store`` defaults to
    one over the store's engine. ``on_event`` is the responder's wake-up, called per stored event.
    """
    services = build_services(
        settings, store=store, metric_store=metric_store, on_event=on_event, clock=clock
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        yield
        services.stop()

    app = FastAPI(
        title="InfrAgent",
        version=__version__,
        description="Observe, detect, decide, act, verify, record.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from the server's own files (no CDN)
        redoc_url=None,
    )
    app.state.services = services  # the only thing on app.state: routes read it via api/deps.py
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ScopeError, scope_refused)
    app.add_exception_handler(NotifyError, _notify_refused)
    app.add_exception_handler(RunError, _run_refused)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    routers = (
        health.router,
        clients.router,
        events.router,
        agents.router,
        commands.router,
        keys.router,
        metrics.router,
        otlp.router,
        query.router,
        rules.router,
        selfmetrics.router,
        alerts.router,
        incidents.router,
        users.router,
        audit.router,
        stream.router,
        notify_channels.router,
        notify_routes.router,
        notify_silences.router,
        notify_deliveries.router,
        notify_inbox.router,
        runs.router,
        approvals.router,
        guardrails.router,
        schedules.router,
    )
    for router in routers:
        app.include_router(router)
    install_docs(app)
    install_web(app)
    services.telemetry.bind_routes(
        r.path for router in routers for r in router.routes if isinstance(r, APIRoute)
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_refused=services.telemetry.body_too_large
    )
    app.add_middleware(RequestCounter, telemetry=services.telemetry)
    if settings.cors_allow_origins:  # closed by default: no CORS headers, browsers refuse other origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)
    return app
