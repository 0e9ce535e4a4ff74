"""The runs API under test: the app on the test's database (both databases) under uvicorn, with a
clock the test moves (approval expiry), and two tenants with a key per scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.store.sql import SqlStore
from support.notify_api import Tenant, make_tenant
from support.run_rows import Clock
from support.web import Site, serve_site


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(store: SqlStore, clock: Clock) -> Iterator[Site]:
    with serve_site(store, clock=clock) as served:
        yield served


@pytest.fixture
def alpha(store: SqlStore) -> Tenant:
    return make_tenant(store, "Alpha")


@pytest.fixture
def beta(store: SqlStore) -> Tenant:
    return make_tenant(store, "Beta")
