"""Native ingest in worker processes (``ingest_processes``, PostgreSQL): what only the pool can get wrong.

The request contract itself (round trip, duplicates, bad bodies, tenants) runs in worker mode too:
``test_metrics_api.py`` parametrizes its server over both modes. Here: the series cap enforced from
a worker, a worker that dies, and the HTTP process's ``/metrics`` counting what workers stored.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psutil
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(store: SqlStore) -> SqlStore:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ingest workers are used on PostgreSQL only")
    return store


@contextmanager
def _server(store: SqlStore, **settings: int) -> Iterator[httpx.Client]:
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",), ingest_processes=2, **settings), store=store
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http


def _register(http: httpx.Client) -> tuple[str, dict[str, str]]:
    r = http.post(
        "/api/v1/clients/register",
        json={"email": "ops@example.com", "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/h"},
    )
    assert r.status_code == 201, r.text
    return r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}


def _post(http: httpx.Client, auth: dict[str, str], batch_id: str, *cpus: str) -> httpx.Response:
    series = [
        SeriesData("cpu.util", "1", "gauge", False, {"cpu": c}, [1000.0, 1010.0], [0.5, 0.25]) for c in cpus
    ]
    body = encode_batch(MetricBatch(batch_id, "host-1", {}, series))
    return http.post(
        "/api/v1/metrics",
        content=body,
        headers={"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth},
    )


def _workers() -> list[psutil.Process]:
    """This test process's spawned pool workers (the server runs in-process, in a thread)."""
    kids = psutil.Process().children(recursive=True)
    return [
        k
        for k in kids
        if "multiprocessing" in " ".join(k.cmdline()) and "spawn_main" in " ".join(k.cmdline())
    ]


def test_workers_start_with_the_app_and_store_what_they_are_sent(pg_store: SqlStore) -> None:
    with _server(pg_store) as http:
        assert len(_workers()) >= 2  # spawned at start-up, not on the first batch
        tenant, auth = _register(http)
        for i in range(20):  # enough to land on both workers
            r = _post(http, auth, f"b-{i}", "0", "1")
            assert r.status_code == 200, r.text
            assert r.json() == {"batch_id": f"b-{i}", "accepted_points": 4, "duplicate": False}
        assert SqlMetricStore(pg_store.engine).count_samples(tenant) == 80
        text = http.get("/metrics").text
        assert 'infragent_ingest_points_total{path="native"} 80.0' in text
        assert 'infragent_ingest_batches_total{outcome="stored",path="native"} 20.0' in text


def test_series_cap_is_enforced_by_the_workers(pg_store: SqlStore) -> None:
    with _server(pg_store, max_series_per_tenant=3) as http:
        tenant, auth = _register(http)
        assert _post(http, auth, "a", "0", "1", "2").status_code == 200
        r = _post(http, auth, "b", "3")
        assert r.status_code == 429
        assert "max 3 series" in r.json()["detail"] and r.headers["retry-after"]
        assert _post(http, auth, "c", "0", "2").status_code == 200  # known series still go in
        assert SqlMetricStore(pg_store.engine).count_samples(tenant) == 10
        assert (
            'infragent_ingest_rejected_points_total{path="native",reason="series_cap"} 2.0'
            in http.get("/metrics").text
        )


def _dead(process: psutil.Process) -> bool:
    """Killed and exited: gone, or a zombie its parent (the pool) has not reaped yet."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_dead_worker_costs_a_retryable_503_then_ingest_goes_on(pg_store: SqlStore) -> None:
    app = create_app(Settings(webhook_allowed_networks=("127.0.0.0/8",), ingest_processes=2), store=pg_store)
    pool = app.state.services.ingest_pool
    assert pool is not None
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        tenant, auth = _register(http)
        assert _post(http, auth, "before", "0").status_code == 200
        killed = _workers()
        assert {k.pid for k in killed} == set(pool.pids())
        for worker in killed:
            os.kill(worker.pid, signal.SIGKILL)
        _until(lambda: all(_dead(k) for k in killed))  # observable: both processes have exited
        r = _post(http, auth, "during", "0")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and "retry" in r.json()["detail"]
        # A request that finds a worker dead has it replaced before it is answered: at most one
        # more 503 (the other killed worker), then the pool holds only new, ready workers.
        for _ in range(len(killed)):
            if (r := _post(http, auth, "after", "0")).status_code != 503:
                break
        assert r.status_code == 200, r.text
        r = _post(http, auth, "during", "0")  # the agent's retry of the refused batch
        assert r.status_code == 200, r.text
        assert SqlMetricStore(pg_store.engine).count_samples(tenant) == 6  # each batch once
        assert len(pool.pids()) == 2 and not {k.pid for k in killed} & set(pool.pids())
