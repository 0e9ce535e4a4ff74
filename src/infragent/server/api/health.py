"""The server's own health: liveness (the process answers) and readiness (the database answers)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from infragent import __version__
from infragent.server.api.deps import AppServices, services

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


def _database_ok(svc: AppServices) -> tuple[bool, str | None]:
    try:
        svc.store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as such
        logger.warning("readiness: database check failed: %s", exc)
        return False, type(exc).__name__
    return True, None


@router.get("/health")
def health(svc: Annotated[AppServices, Depends(services)]) -> JSONResponse:
    ok, error = _database_ok(svc)
    body: dict[str, Any] = {
        "status": "healthy" if ok else "degraded",
        "version": __version__,
        "checks": {"database": {"ok": ok, "dialect": svc.store.engine.dialect.name, "error": error}},
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/health/live")
def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/health/ready")
def ready(svc: Annotated[AppServices, Depends(services)]) -> JSONResponse:
    ok, error = _database_ok(svc)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "error": error}, status_code=200 if ok else 503
    )
