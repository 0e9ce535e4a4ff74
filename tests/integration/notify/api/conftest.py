"""The notification API under test: the app on the test's database (both databases) under uvicorn,
and two tenants with a key per scope (``support.notify_api.Tenant.auth(scope)``) to call it with.

The app may reach loopback (``webhook_allowed_networks``) so a channel can point at a stand-in on
127.0.0.1; a module testing the outbound policy overrides ``settings``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.config import Settings
from infragent.store.sql import SqlStore
from support.notify_api import Tenant, make_tenant
from support.web import Site, serve_site


@pytest.fixture
def settings() -> Settings:
    return Settings(webhook_allowed_networks=("127.0.0.0/8",))


@pytest.fixture
def site(store: SqlStore, settings: Settings) -> Iterator[Site]:
    with serve_site(store, settings) as served:
        yield served


@pytest.fixture
def alpha(store: SqlStore) -> Tenant:
    return make_tenant(store, "Alpha")


@pytest.fixture
def beta(store: SqlStore) -> Tenant:
    return make_tenant(store, "Beta")
