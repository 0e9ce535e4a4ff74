"""Ingest when storage cannot take a body: a retryable 503 with ``Retry-After``, on every path.

Both ingest routes (native ``/api/v1/metrics``, OTLP ``/v1/metrics``) run in the server process or
in worker processes, and every path answers through the one map in ``server/errors.py``: storage
down (``OperationalError``) and a full connection pool (SQLAlchemy's pool ``TimeoutError``) are 503
with the same ``Retry-After``. Native ingest once answered 500 with no ``Retry-After`` here, while
the worker path answered 503; these tests hold every path to one answer. Storage is really broken:
a database that refuses connections, or a real engine whose only connection is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import orjson
import pytest
import sqlalchemy as sa

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.errors import retry_after_header
from infragent.server.ingest.admission import SeriesCap
from infragent.server.ingest.outcome import IngestOutcome
from infragent.server.ingest.pool import IngestWorker
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.ingest_modes import MODES, exhausted_pool, ingest_workers, refusing_postgres
from support.servers import serve

PROTOCOLS = ["native", "otlp"]
STORAGE_DOWN = "storage is busy or unavailable; retry later"
T1 = 1_700_000_000_000_000_000  # ns


def _native_body() -> bytes:
    series = SeriesData("cpu.util", "1", "gauge", False, {"cpu": "0"}, [1000.0, 1010.0], [0.5, 0.25])
    return encode_batch(MetricBatch("b-1", "host-1", {}, [series]))


def _otlp_body() -> bytes:
    point = {"timeUnixNano": str(T1), "asDouble": 21.5}
    metric = {"name": "temperature", "unit": "Cel", "gauge": {"dataPoints": [point]}}
    resource = {"attributes": [{"key": "host.name", "value": {"stringValue": "h"}}]}
    return orjson.dumps(
        {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}]}
    )


def _post(http: httpx.Client, protocol: str, api_key: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {api_key}"}
    if protocol == "native":
        headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
        return http.post("/api/v1/metrics", content=_native_body(), headers=headers)
    return http.post(
        "/v1/metrics", content=_otlp_body(), headers={"content-type": "application/json", **auth}
    )


def _register(http: httpx.Client) -> str:
    r = http.post(
        "/api/v1/clients/register",
        json={"email": "ops@example.com", "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def _assert_retryable_503(r: httpx.Response, protocol: str) -> None:
    assert (r.status_code, r.headers.get("retry-after")) == (503, "1"), r.text
    if protocol == "native":
        assert r.json() == {"detail": STORAGE_DOWN}
    else:  # a google.rpc.Status, code 14 (UNAVAILABLE), in the request's encoding
        assert r.json() == {"code": 14, "message": STORAGE_DOWN}


def _ingest_through(store: SqlStore, metrics: SqlMetricStore, workers: int, protocol: str) -> httpx.Response:
    """One body through a real server whose metric store is ``metrics`` (its workers open the same)."""
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",), ingest_processes=workers),
        store=store,
        metric_store=metrics,
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        response = _post(http, protocol, _register(http))
        text = http.get("/metrics").text
    counter = "infragent_ingest_rejected_requests_total"
    refused = [line for line in text.splitlines() if line.startswith(counter)]
    assert refused and all(line.endswith(" 0.0") for line in refused)  # a 503 is a retry, not a refusal
    return response


@pytest.fixture(params=MODES)
def workers(request: pytest.FixtureRequest, store: SqlStore) -> int:
    """0: ingest in the server process; 2: in worker processes (PostgreSQL only)."""
    return ingest_workers(request, store)


@pytest.fixture
def pg_store(store: SqlStore) -> Iterator[SqlStore]:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a real connection pool to exhaust: PostgreSQL")
    yield store


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_storage_down_answers_503_with_retry_after(store: SqlStore, workers: int, protocol: str) -> None:
    """A PostgreSQL that refuses connections: in-process and in the workers, native and OTLP."""
    with refusing_postgres() as metrics:
        r = _ingest_through(store, metrics, workers, protocol)
    _assert_retryable_503(r, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_exhausted_connection_pool_answers_503_with_retry_after(pg_store: SqlStore, protocol: str) -> None:
    """In the server process: the metric store's engine has one connection, held by the test."""
    with exhausted_pool(pg_store) as metrics:
        r = _ingest_through(pg_store, metrics, 0, protocol)
    _assert_retryable_503(r, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_exhausted_connection_pool_in_a_worker_answers_503_with_retry_after(
    pg_store: SqlStore, protocol: str
) -> None:
    """The worker's own code (``IngestWorker``), driven here so that the test can hold its pool's one
    connection (a spawned worker's pool is out of reach); its outcome crosses msgpack as it would
    cross the worker's socket, and the route would answer it as above."""
    body, media_type = (_native_body(), "") if protocol == "native" else (_otlp_body(), "application/json")
    encoding = "gzip" if protocol == "native" else None
    with exhausted_pool(pg_store) as metrics:
        cap = SeriesCap(metrics.engine, 1000)
        worker = IngestWorker(metrics, cap, Settings().max_decompressed_bytes)
        outcome = worker.handle(protocol, "tenant-1", body, media_type, encoding, now=1_700_000_000.0)
    got = msgspec.msgpack.decode(msgspec.msgpack.encode(outcome), type=IngestOutcome)
    assert (got.status, got.reason, got.label) == (503, STORAGE_DOWN, "")
    assert retry_after_header(got.retry_after_s) == {"Retry-After": "1"}


def test_storage_down_is_a_retryable_503(store: SqlStore, tmp_path: Path) -> None:
    """OTLP on either database: a SQLite file in a directory that does not exist cannot be opened."""
    broken = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'metrics.db'}")
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",)), store=store, metric_store=SqlMetricStore(broken)
    )
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
            key = _register(http)
            r = _post(http, "otlp", key)
    finally:
        broken.dispose()
    _assert_retryable_503(r, "otlp")
