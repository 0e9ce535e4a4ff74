"""The ``site`` every page test talks to: the app on the test's database under uvicorn, with an
httpx client on it (``support.web.serve_site``), and the tenants the tests sign in to.

A module changes the app by overriding a fixture of the same name: ``settings`` (its ``Settings``)
or ``clock`` (a fixed time, so that "10 s ago" means the same to the seed and to the page).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from infragent.config import Settings
from infragent.store.sql import SqlStore
from support.databases import create_client
from support.web import Site, serve_site


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def clock() -> Callable[[], float]:
    return time.time


@pytest.fixture
def site(store: SqlStore, settings: Settings, clock: Callable[[], float]) -> Iterator[Site]:
    with serve_site(store, settings, clock) as served:
        yield served


@pytest.fixture
def acme(store: SqlStore, clock: Callable[[], float]) -> str:
    """The tenant the tests sign in to."""
    return create_client(store, "ops@acme.example", "Acme", "http://127.0.0.1:9/hook", now=clock()).client.id


@pytest.fixture
def other(store: SqlStore, clock: Callable[[], float]) -> str:
    """Another tenant, whose data must never show."""
    return create_client(
        store, "ops@other.example", "Other", "http://127.0.0.1:9/hook", now=clock()
    ).client.id
