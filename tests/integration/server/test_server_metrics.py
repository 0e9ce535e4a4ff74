"""``GET /metrics`` against the real server on both databases: it parses, and the counters move.

Why one scenario per test rather than one per counter: a server start and a registration dominate
the run time, and the counters are only meaningful relative to the requests sent before the scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.servers import serve

T1 = 1_700_000_000_000_000_000  # ns
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Api:
    http: httpx.Client

    def register(self, email: str = "ops@example.com") -> tuple[str, dict[str, str]]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return r.json()["client_id"], {"Authorization": f"Bearer {r.json()['api_key']}"}

    def native(self, body: bytes, auth: dict[str, str]) -> httpx.Response:
        headers = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
        return self.http.post("/api/v1/metrics", content=body, headers=headers)

    def otlp(self, req: ExportMetricsServiceRequest, auth: dict[str, str]) -> httpx.Response:
        headers = {"content-type": "application/x-protobuf", **auth}
        return self.http.post("/v1/metrics", content=req.SerializeToString(), headers=headers)

    def scrape(self) -> Samples:
        r = self.http.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _batch(batch_id: str, values: list[float]) -> bytes:
    series = SeriesData(
        "system.cpu.utilization",
        "1",
        "gauge",
        False,
        {"cpu": "0"},
        [1000.0 + i for i in range(len(values))],
        values,
    )
    return encode_batch(MetricBatch(batch_id, "host-1", {}, [series]))


def _otlp(*values: float) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="host.name", value=AnyValue(string_value="otel-host")))
    points = [pb.NumberDataPoint(time_unix_nano=T1 + i * 10**9, as_double=v) for i, v in enumerate(values)]
    rm.scope_metrics.add().metrics.append(pb.Metric(name="temperature", gauge=pb.Gauge(data_points=points)))
    return req


@pytest.fixture
def api(store: SqlStore) -> Iterator[Api]:
    app = create_app(Settings(webhook_allowed_networks=("127.0.0.0/8",)), store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        yield Api(http)


def test_scrape_parses_and_starts_at_zero(api: Api) -> None:
    got = api.scrape()
    for path in ("native", "otlp"):
        assert ("infragent_ingest_points_total", frozenset({("path", path)})) in got
        assert value(got, "infragent_ingest_batches_total", path=path, outcome="stored") == 0
        assert value(got, "infragent_ingest_write_seconds_count", path=path) == 0
    assert value(got, "infragent_responder_pending_events") == 0
    assert value(got, "infragent_events_received_total") == 0
    assert not [k for k in got if k[0] == "infragent_series"]  # no tenant has series yet


def test_counters_move_with_ingest_rejections_and_events(api: Api) -> None:
    tenant, auth = api.register()
    assert api.native(_batch("b-1", [0.1, 0.2, 0.3]), auth).status_code == 200
    assert api.native(_batch("b-1", [0.1, 0.2, 0.3]), auth).json()["duplicate"] is True
    assert api.native(b"\x1f\x8bnot gzip", auth).status_code == 400
    r = api.otlp(_otlp(1.0, 2.0, float("nan")), auth)  # a partial success: one point rejected
    assert r.status_code == 200, r.text
    r = api.http.post(
        "/api/v1/events", json={"type": "app_down", "service": "web", "severity": "critical"}, headers=auth
    )
    assert r.status_code == 202, r.text

    got = api.scrape()
    assert value(got, "infragent_ingest_points_total", path="native") == 3
    assert value(got, "infragent_ingest_points_total", path="otlp") == 2
    assert value(got, "infragent_ingest_batches_total", path="native", outcome="stored") == 1
    assert value(got, "infragent_ingest_batches_total", path="native", outcome="duplicate") == 1
    assert value(got, "infragent_ingest_batches_total", path="otlp", outcome="stored") == 1
    assert value(got, "infragent_ingest_rejected_requests_total", path="native", reason="bad_request") == 1
    assert value(got, "infragent_ingest_rejected_points_total", path="otlp", reason="invalid_point") == 1
    assert value(got, "infragent_ingest_write_seconds_count", path="native") == 2
    assert value(got, "infragent_ingest_write_seconds_count", path="otlp") == 1
    assert value(got, "infragent_events_received_total") == 1
    assert value(got, "infragent_responder_pending_events") == 1  # no responder runs in this app
    assert value(got, "infragent_series", tenant=tenant) == 2  # one native series, one OTLP
    assert value(got, "infragent_http_requests_total", route="/api/v1/metrics", status="200") == 2
    assert value(got, "infragent_http_requests_total", route="/api/v1/metrics", status="400") == 1


def test_metrics_are_per_app_not_global(store: SqlStore) -> None:
    """Two apps in one process (as in every test run) each count only their own requests."""
    first, second = create_app(Settings(), store=store), create_app(Settings(), store=store)
    assert first.state.services.telemetry.registry is not second.state.services.telemetry.registry
    first.state.services.telemetry.stored("native", 5, duplicate=False)
    registry = second.state.services.telemetry.registry
    assert registry.get_sample_value("infragent_ingest_points_total", {"path": "native"}) == 0


def test_a_body_refused_before_routing_is_counted_too_large_on_its_path(store: SqlStore) -> None:
    """``BodyLimitMiddleware`` answers 413 before any route runs (a declared ``Content-Length``) or
    while the body streams; both are refusals of that ingest path, and the HTTP counter names the
    route, not ``other``."""
    limit = 4096
    app = create_app(Settings(max_body_bytes=limit, webhook_allowed_networks=("127.0.0.0/8",)), store=store)

    def streamed() -> Iterator[bytes]:  # no Content-Length: cut off once past the cap
        for _ in range(limit // 1024 + 2):
            yield b"\0" * 1024

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        api = Api(http)
        _, auth = api.register()
        native = {"content-type": CONTENT_TYPE, "content-encoding": "gzip", **auth}
        otlp = {"content-type": "application/x-protobuf", **auth}
        for route, headers in (("/api/v1/metrics", native), ("/v1/metrics", otlp)):
            for body in (b"\0" * (limit + 1), streamed()):
                with httpx.Client(base_url=base, timeout=10) as once:  # a refused upload ends its connection
                    assert once.post(route, content=body, headers=headers).status_code == 413, route
        got = api.scrape()
        assert value(got, "infragent_ingest_rejected_requests_total", path="native", reason="too_large") == 2
        assert value(got, "infragent_ingest_rejected_requests_total", path="otlp", reason="too_large") == 2
        for _ in range(100):  # the HTTP counter moves when the request ends, just after its answer
            got = api.scrape()
            if value(got, "infragent_http_requests_total", route="/v1/metrics", status="413") == 2:
                break
        assert value(got, "infragent_http_requests_total", route="/api/v1/metrics", status="413") == 2
        assert value(got, "infragent_http_requests_total", route="/v1/metrics", status="413") == 2
        assert value(got, "infragent_http_requests_total", route="other", status="413") == 0
