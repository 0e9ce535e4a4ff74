"""What routes need from the app: the store, the clock and the responder's wake-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from infragent.store.sql import SqlStore


@dataclass
class AppServices:
    store: SqlStore
    clock: Callable[[], float]
    on_event: Callable[[], None]
    command_ttl_s: float = 300.0


def services(request: Request) -> AppServices:
    svc: AppServices = request.app.state.services
    return svc
