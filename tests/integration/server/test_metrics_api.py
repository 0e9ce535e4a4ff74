from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.ingest_modes import MODES, ingest_workers
from support.servers import serve

MAX_BODY = 64 * 1024
MAX_DECOMPRESSED_BYTES = Settings().max_decompressed_bytes  # the default: 32 MiB
CPU = {"cpu.mode": "user"}


def _batch(batch_id: str = "b-1", **series_over: Any) -> MetricBatch:
    fields: dict[str, Any] = {
        "name": "system.cpu.utilization",
        "unit": "1",
        "kind": "gauge",
        "monotonic": False,
        "attributes": CPU,
        "timestamps": [1000.0, 1010.0, 1020.0],
        "values": [0.1, 0.2, 1 / 3],
        **series_over,
    }
    return MetricBatch(batch_id, "host-1", {"host.name": "host-1"}, [SeriesData(**fields)])


@dataclass
class Api:
    base: str
    http: httpx.Client
    store: SqlStore
    metrics: SqlMetricStore

    def register(self, email: str = "ops@example.com") -> tuple[str, dict[str, str]]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}

    def post(self, body: bytes, auth: dict[str, str], **headers: str) -> httpx.Response:
        sent = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth, **headers}
        return self.http.post("/api/v1/metrics", content=body, headers=sent)

    def batch_rows(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM metric_batches").scalar_one())


@pytest.fixture(params=MODES)
def api(request: pytest.FixtureRequest, store: SqlStore) -> Iterator[Api]:
    """Each test runs with ingest in the server process and, on PostgreSQL, in 2 worker processes."""
    workers = ingest_workers(request, store)
    app = create_app(
        Settings(
            webhook_allowed_networks=("127.0.0.0/8",), max_body_bytes=MAX_BODY, ingest_processes=workers
        ),
        store=store,
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(base, http, store, SqlMetricStore(store.engine))


def test_round_trip_stores_exactly_what_was_sent(api: Api) -> None:
    tenant, auth = api.register()
    r = api.post(encode_batch(_batch()), auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"batch_id": "b-1", "accepted_points": 3, "duplicate": False}
    got = api.metrics.query_range(tenant, "host-1", "system.cpu.utilization", CPU, 0, 1e10)
    assert got == [(1000.0, 0.1), (1010.0, 0.2), (1020.0, 1 / 3)]  # bit-exact doubles
    raw = msgspec.msgpack.encode(_batch("b-2"))  # uncompressed is accepted too
    r = api.post(raw, auth, **{"content-encoding": "identity", "content-type": CONTENT_TYPE + "; v=1"})
    assert r.status_code == 200 and r.json()["accepted_points"] == 3


def test_resent_batch_is_a_duplicate_and_stores_nothing(api: Api) -> None:
    tenant, auth = api.register()
    body = encode_batch(_batch())
    assert api.post(body, auth).json()["duplicate"] is False
    r = api.post(body, auth)
    assert r.status_code == 200
    assert r.json() == {"batch_id": "b-1", "accepted_points": 0, "duplicate": True}
    assert api.metrics.count_samples(tenant) == 3


def test_concurrent_resends_are_stored_once(api: Api) -> None:
    tenant, auth = api.register()
    body = encode_batch(_batch())
    barrier = threading.Barrier(8)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with httpx.Client(base_url=api.base, timeout=10) as http:
                barrier.wait()
                sent = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
                r = http.post("/api/v1/metrics", content=body, headers=sent)
                assert r.status_code == 200, r.text
                answers.append(r.json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 7
    assert sum(a["accepted_points"] for a in answers) == 3
    assert api.metrics.count_samples(tenant) == 3 and api.batch_rows() == 1


def _gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1024), compresslevel=9)


def _bad_requests() -> dict[str, tuple[bytes, dict[str, str], int, str]]:
    """id -> (body, extra headers, status, what the detail must say)."""
    good = encode_batch(_batch())
    return {
        "bad-gzip": (b"\x1f\x8bnot really gzip", {}, 400, "body is not valid gzip"),
        "bad-msgpack": (gzip.compress(b"\xc1"), {}, 400, "body is not valid msgpack"),
        "missing-field": (gzip.compress(b"\x80"), {}, 400, "Object missing required field `batch_id`"),
        "length-mismatch": (encode_batch(_batch(values=[1.0])), {}, 400, "3 timestamps but 1 values"),
        "nan": (encode_batch(_batch(values=[1.0, float("nan"), 2.0])), {}, 400, "a value is NaN or infinite"),
        "empty-batch-id": (encode_batch(_batch(batch_id="")), {}, 400, "at `$.batch_id`"),
        "gzip-bomb": (_gzip_bomb(), {}, 413, f"larger than the limit of {MAX_DECOMPRESSED_BYTES} bytes"),
        "raw-too-large": (b"\0" * (MAX_BODY + 1), {}, 413, f"larger than the limit of {MAX_BODY} bytes"),
        "json": (good, {"content-type": "application/json"}, 415, "unsupported Content-Type"),
        "no-content-type": (good, {"content-type": ""}, 415, "unsupported Content-Type '(none)'"),
        "brotli": (good, {"content-encoding": "br"}, 415, "unsupported Content-Encoding 'br'"),
    }


def test_bad_requests_say_what_is_wrong_and_store_nothing(api: Api) -> None:
    """One server for all cases: starting one per case would dominate the run time."""
    tenant, auth = api.register()
    for case, (body, headers, status, detail) in _bad_requests().items():
        r = api.post(body, auth, **headers)
        assert (case, r.status_code) == (case, status), r.text
        assert detail in r.json()["detail"], case
    assert api.metrics.count_samples(tenant) == 0 and api.batch_rows() == 0


def test_ingest_needs_an_api_key(api: Api) -> None:
    api.register()
    for auth in ({}, {"Authorization": "Bearer ia_nope_nope"}, {"Authorization": "Basic abc"}):
        r = api.post(encode_batch(_batch()), auth, **{"content-type": "application/json"})
        assert r.status_code == 401 and "API key" in r.json()["detail"], auth  # auth is checked first
    assert api.batch_rows() == 0


def test_tenants_do_not_see_or_dedupe_each_other(api: Api) -> None:
    a, auth_a = api.register("a@example.com")
    b, auth_b = api.register("b@example.com")
    assert api.post(encode_batch(_batch()), auth_a).json()["duplicate"] is False
    r = api.post(encode_batch(_batch(values=[7.0, 8.0, 9.0])), auth_b)  # same batch id, other tenant
    assert r.json() == {"batch_id": "b-1", "accepted_points": 3, "duplicate": False}
    q = ("host-1", "system.cpu.utilization", CPU, 0.0, 1e10)
    assert [v for _, v in api.metrics.query_range(a, *q)] == [0.1, 0.2, 1 / 3]
    assert [v for _, v in api.metrics.query_range(b, *q)] == [7.0, 8.0, 9.0]
    assert len(api.metrics.list_series(a)) == len(api.metrics.list_series(b)) == 1


def test_openapi_documents_the_binary_body(api: Api) -> None:
    op = api.http.get("/openapi.json").json()["paths"]["/api/v1/metrics"]["post"]
    assert CONTENT_TYPE in op["requestBody"]["content"]
    assert {"400", "413", "415"} <= set(op["responses"])


@pytest.mark.parametrize("mode", MODES)
def test_the_decompressed_cap_is_the_max_decompressed_bytes_setting(mode: str, store: SqlStore) -> None:
    """The cap reaches the route and, across the spawn, the worker processes."""
    if mode == "workers" and store.engine.dialect.name != "postgresql":
        pytest.skip("ingest workers are used on PostgreSQL only")
    limit = MAX_BODY  # the lowest the setting may be: max_body_bytes
    settings = Settings(
        webhook_allowed_networks=("127.0.0.0/8",),
        max_body_bytes=MAX_BODY,
        max_decompressed_bytes=limit,
        ingest_processes=2 * (mode == "workers"),
    )
    app = create_app(settings, store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        api = Api(base, http, store, SqlMetricStore(store.engine))
        _, auth = api.register()
        bomb = gzip.compress(b"\0" * (limit + 1), compresslevel=9)
        r = api.post(bomb, auth)
        assert r.status_code == 413 and f"larger than the limit of {limit} bytes" in r.json()["detail"]
        assert api.post(encode_batch(_batch()), auth).status_code == 200  # a normal batch still fits
