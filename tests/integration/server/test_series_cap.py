"""The per-tenant series cap against the real server, on both databases, native and OTLP.

What must hold: a tenant at its cap gets 429 naming the cap for *new* series only, keeps storing the
series it has, and never slows another tenant; the count survives a restart (it comes from the store).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

CAP = 3
T1 = 1_700_000_000_000_000_000  # ns


@contextmanager
def _server(store: SqlStore) -> Iterator[httpx.Client]:
    app = create_app(
        Settings(webhook_allowed_networks=("127.0.0.0/8",), max_series_per_tenant=CAP), store=store
    )
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield http


def _register(http: httpx.Client, email: str) -> tuple[str, dict[str, str]]:
    r = http.post(
        "/api/v1/clients/register",
        json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
    )
    assert r.status_code == 201, r.text
    return r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}


def _post(http: httpx.Client, auth: dict[str, str], batch_id: str, *cpus: str) -> httpx.Response:
    """One series per cpu (a distinct label value is a distinct series)."""
    series = [SeriesData("cpu.util", "1", "gauge", False, {"cpu": c}, [1000.0], [0.5]) for c in cpus]
    body = encode_batch(MetricBatch(batch_id, "host-1", {}, series))
    headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
    return http.post("/api/v1/metrics", content=body, headers=headers)


def _otlp(http: httpx.Client, auth: dict[str, str], name: str, v: float) -> httpx.Response:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="host.name", value=AnyValue(string_value="otel-host")))
    point = pb.NumberDataPoint(time_unix_nano=T1, as_double=v)
    rm.scope_metrics.add().metrics.append(pb.Metric(name=name, gauge=pb.Gauge(data_points=[point])))
    headers = {"content-type": "application/x-protobuf", **auth}
    return http.post("/v1/metrics", content=req.SerializeToString(), headers=headers)


def _refused(r: httpx.Response, current: int) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {
        "detail": f"series cap reached: tenant has {current} of max {CAP} series (max_series_per_tenant)"
    }
    assert r.headers["retry-after"] == "60"


def test_cap_refuses_new_series_only_and_spares_other_tenants(store: SqlStore) -> None:
    metrics = SqlMetricStore(store.engine)
    with _server(store) as http:
        a, auth_a = _register(http, "a@example.com")
        b, auth_b = _register(http, "b@example.com")
        assert _post(http, auth_a, "a-1", "0", "1").status_code == 200
        _refused(_post(http, auth_a, "a-2", "2", "3"), current=2)  # 2 + 2 new > 3: nothing stored
        assert len(metrics.list_series(a)) == 2
        assert _post(http, auth_a, "a-3", "0", "2").status_code == 200  # 1 new: exactly at the cap
        _refused(_post(http, auth_a, "a-4", "0", "9"), current=3)  # one new series refuses the batch
        r = _post(http, auth_a, "a-5", "0", "1", "2")  # existing series only: still accepted
        assert r.status_code == 200 and r.json()["accepted_points"] == 3
        for i, cpus in enumerate((("0", "1"), ("2",), ("0", "1", "2"))):  # tenant B is untouched
            assert _post(http, auth_b, f"b-{i}", *cpus).status_code == 200
        assert len(metrics.list_series(a)) == len(metrics.list_series(b)) == CAP
        scraped = http.get("/metrics").text
        assert 'infragent_ingest_rejected_requests_total{path="native",reason="series_cap"} 2.0' in scraped


def test_restarted_server_counts_existing_series_from_the_store(store: SqlStore) -> None:
    with _server(store) as http:
        _, auth = _register(http, "a@example.com")
        assert _post(http, auth, "a-1", "0", "1", "2").status_code == 200
    with _server(store) as http:  # empty caches: count and known series come from the database
        assert _post(http, auth, "a-2", "2", "1", "0").status_code == 200
        _refused(_post(http, auth, "a-3", "3"), current=3)


def test_otlp_answers_429_with_a_google_rpc_status(store: SqlStore) -> None:
    with _server(store) as http:
        _, auth = _register(http, "a@example.com")
        assert _otlp(http, auth, "temperature", 1.0).status_code == 200
        assert _post(http, auth, "a-1", "0", "1").status_code == 200  # 3 series: at the cap
        assert _otlp(http, auth, "temperature", 2.0).status_code == 200  # an existing series
        r = _otlp(http, auth, "humidity", 0.4)
        assert r.status_code == 429 and r.headers["retry-after"] == "60"
        assert r.headers["content-type"] == "application/x-protobuf"
        status = status_pb2.Status.FromString(r.content)
        assert status.code == 8  # RESOURCE_EXHAUSTED
        assert (
            status.message == f"series cap reached: tenant has 3 of max {CAP} series (max_series_per_tenant)"
        )
        _, auth_b = _register(http, "b@example.com")
        assert _otlp(http, auth_b, "humidity", 0.4).status_code == 200
