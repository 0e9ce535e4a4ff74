"""Metric store fixtures shared by the store tests, on both databases (the ``store`` fixture).

``metrics`` is a ``SqlMetricStore`` over the test's store with ``raw_days`` of retention (the
default; a module overrides the ``raw_days`` fixture to change it). ``make_metrics`` builds more
instances over the same engine: separate id caches, as separate server processes would have.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.model import DEFAULT_RAW_DAYS
from infragent.store.records import Registration
from infragent.store.sql import SqlStore


@pytest.fixture
def raw_days() -> float:
    return DEFAULT_RAW_DAYS


@pytest.fixture
def make_metrics(store: SqlStore, raw_days: float) -> Callable[[], SqlMetricStore]:
    return lambda: SqlMetricStore(store.engine, raw_days=raw_days)


@pytest.fixture
def metrics(make_metrics: Callable[[], SqlMetricStore]) -> SqlMetricStore:
    return make_metrics()


@pytest.fixture
def tenant(client_reg: Registration) -> str:
    return client_reg.client.id
