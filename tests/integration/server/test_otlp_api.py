"""``POST /v1/metrics`` against the real server, on both databases, fed by the real OpenTelemetry SDK.

Why the official exporter: it is what users point at us, so it checks the wire contract (path,
headers, gzip, the response it parses) that hand-built requests could get wrong in the same way as
the server. Hand-built protobuf and JSON bodies then cover the edges the SDK never sends.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.ingest.otlp import MAX_DECOMPRESSED_BYTES
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from support.ingest_modes import MODES, ingest_workers
from support.servers import serve

PROTOBUF, JSON = "application/x-protobuf", "application/json"
MAX_BODY = 256 * 1024
T1 = 1_700_000_000_000_000_000  # ns
SVC = {"service.name": "checkout"}


@dataclass
class Api:
    base: str
    http: httpx.Client
    store: SqlStore
    metrics: SqlMetricStore

    def register(self, email: str = "ops@example.com") -> tuple[str, str]:
        r = self.http.post(
            "/api/v1/clients/register",
            json={"email": email, "company_name": "Acme", "webhook_url": "http://127.0.0.1:9/hook"},
        )
        assert r.status_code == 201, r.text
        return r.json()["client_id"], r.json()["api_key"]

    def post(self, body: bytes, api_key: str, content_type: str = PROTOBUF, **headers: str) -> httpx.Response:
        sent = {"content-type": content_type, "authorization": f"Bearer {api_key}", **headers}
        return self.http.post("/v1/metrics", content=body, headers=sent)

    def values(self, tenant: str, host: str, name: str, labels: dict[str, str]) -> list[float]:
        return [v for _, v in self.metrics.query_range(tenant, host, name, labels, 0, 1e12)]


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


def _request(host: str, *values: float, name: str = "temperature") -> ExportMetricsServiceRequest:
    """One gauge point per value, a second apart; the last value NaN makes a partial success."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(
        [
            KeyValue(key="host.name", value={"string_value": host}),
            KeyValue(key="service.name", value={"string_value": "checkout"}),
        ]
    )
    points = [pb.NumberDataPoint(time_unix_nano=T1 + i * 10**9, as_double=v) for i, v in enumerate(values)]
    rm.scope_metrics.add().metrics.append(
        pb.Metric(name=name, unit="Cel", gauge=pb.Gauge(data_points=points))
    )
    return req


def _json_request(host: str) -> bytes:
    """Hand-written OTLP/JSON as an exporter writes it: int64 as strings, enums as integers."""
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": host}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "metrics": [
                            {
                                "name": "requests",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "attributes": [{"key": "code", "value": {"intValue": "200"}}],
                                            "startTimeUnixNano": str(T1 - 10**9),
                                            "timeUnixNano": str(T1),
                                            "asInt": "41",
                                        },
                                        {
                                            "attributes": [{"key": "code", "value": {"intValue": 200}}],
                                            "timeUnixNano": T1 + 10**9,
                                            "asDouble": 42,
                                        },
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ]
    }
    return orjson.dumps(doc)


def test_opentelemetry_sdk_exporter_round_trip(api: Api) -> None:
    tenant, api_key = api.register()
    exporter = OTLPMetricExporter(
        endpoint=f"{api.base}/v1/metrics",
        headers={"Authorization": f"Bearer {api_key}"},
        compression=Compression.Gzip,
        timeout=5,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"host.name": "sdk-host", "service.name": "checkout"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    try:
        meter = provider.get_meter("infragent.tests")
        before = time.time()
        orders = meter.create_counter("orders", unit="{order}")
        orders.add(5, {"shop": "eu"})
        orders.add(7, {"shop": "eu"})
        queue = meter.create_up_down_counter("queue.depth")
        queue.add(10)
        queue.add(-3)
        meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "a"})
        latency = meter.create_histogram(
            "latency", unit="ms", explicit_bucket_boundaries_advisory=[1, 10, 100]
        )
        for ms in (0.5, 5, 50, 500):
            latency.record(ms)
        assert provider.force_flush(timeout_millis=10_000)
        after = time.time()

        assert api.values(tenant, "sdk-host", "orders", {"shop": "eu", **SVC}) == [12.0]
        assert api.values(tenant, "sdk-host", "queue.depth", SVC) == [7.0]
        assert api.values(tenant, "sdk-host", "temperature", {"room": "a", **SVC}) == [21.5]
        assert api.values(tenant, "sdk-host", "latency_count", SVC) == [4.0]
        assert api.values(tenant, "sdk-host", "latency_sum", SVC) == [555.5]
        buckets = {
            le: api.values(tenant, "sdk-host", "latency_bucket", {"le": le, **SVC})
            for le in ("1", "10", "100", "+Inf")
        }
        assert buckets == {"1": [1.0], "10": [2.0], "100": [3.0], "+Inf": [4.0]}
        ((ts, _),) = api.metrics.query_range(tenant, "sdk-host", "orders", {"shop": "eu", **SVC}, 0, 1e12)
        assert before <= ts <= after
        kinds = {s.name: (s.unit, s.kind, s.monotonic) for s in api.metrics.list_series(tenant)}
        assert kinds == {
            "orders": ("{order}", "sum", True),
            "queue.depth": ("", "sum", False),
            "temperature": ("Cel", "gauge", False),
            "latency_count": ("1", "sum", True),
            "latency_sum": ("ms", "sum", True),
            "latency_bucket": ("1", "sum", True),
        }
    finally:
        provider.shutdown()  # stops the reader's thread (after one last export) and the HTTP session


def test_protobuf_json_and_gzip_round_trips(api: Api) -> None:
    tenant, key = api.register()
    r = api.post(_request("pb-host", 1.5, 2.5).SerializeToString(), key)
    assert (r.status_code, r.headers["content-type"], r.content) == (200, PROTOBUF, b"")
    assert api.values(tenant, "pb-host", "temperature", SVC) == [1.5, 2.5]

    gz = gzip.compress(_request("gz-host", 3.0).SerializeToString())
    r = api.post(gz, key, **{"content-encoding": "gzip"})
    assert (r.status_code, r.content) == (200, b"")
    assert api.values(tenant, "gz-host", "temperature", SVC) == [3.0]

    r = api.post(
        gzip.compress(_json_request("json-host")),
        key,
        JSON + "; charset=utf-8",
        **{"content-encoding": "gzip"},
    )
    assert (r.status_code, r.headers["content-type"], r.json()) == (200, JSON, {})
    got = api.metrics.query_range(tenant, "json-host", "requests", {"code": "200"}, 0, 1e12)
    assert got == [(T1 / 1e9, 41.0), (T1 / 1e9 + 1, 42.0)]


def test_resent_payload_is_stored_once(api: Api) -> None:
    tenant, key = api.register()
    body = _request("h", 1.0, 2.0).SerializeToString()
    for encoded, headers in ((body, {}), (body, {}), (gzip.compress(body), {"content-encoding": "gzip"})):
        r = api.post(encoded, key, **headers)
        assert (r.status_code, r.content) == (200, b"")  # a resend is a success: the data is stored
    assert api.metrics.count_samples(tenant) == 2
    other, other_key = api.register("other@example.com")  # the same bytes from another tenant are theirs
    assert api.post(body, other_key).status_code == 200
    assert api.metrics.count_samples(other) == 2


def test_partial_success_stores_the_valid_points(api: Api) -> None:
    tenant, key = api.register()
    r = api.post(_request("h", 1.0, float("nan")).SerializeToString(), key)
    assert r.status_code == 200
    partial = ExportMetricsServiceResponse.FromString(r.content).partial_success
    message = "rejected 1 data point(s): temperature: value is NaN or infinite (1)"
    assert (partial.rejected_data_points, partial.error_message) == (1, message)
    r = api.post(_json_request("h").replace(b'"asDouble":42', b'"asDouble":"NaN"'), key, JSON)
    assert r.json() == {
        "partialSuccess": {
            "rejectedDataPoints": "1",
            "errorMessage": message.replace("temperature", "requests"),
        }
    }
    assert api.values(tenant, "h", "temperature", SVC) == [1.0]
    assert api.values(tenant, "h", "requests", {"code": "200"}) == [41.0]


def _status(r: httpx.Response) -> tuple[int, str, int, str]:
    """(HTTP status, content type, google.rpc code, message) of a failure, decoded per its type."""
    media = r.headers["content-type"]
    if media == PROTOBUF:
        status = status_pb2.Status.FromString(r.content)
        return r.status_code, media, status.code, status.message
    body = r.json()
    return r.status_code, media, body["code"], body["message"]


def test_failures_carry_a_google_rpc_status(api: Api) -> None:
    tenant, key = api.register()
    bomb = gzip.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1), compresslevel=9)
    assert len(bomb) < MAX_BODY
    cases: list[tuple[bytes, str, dict[str, str], tuple[int, str, int, str]]] = [
        (b"\x0a\xff", PROTOBUF, {}, (400, PROTOBUF, 3, "body is not a protobuf ExportMetricsServiceRequest")),
        (b'{"resourceMetrics": 1}', JSON, {}, (400, JSON, 3, "resourceMetrics: expected an array, got int")),
        (
            b"\x1f\x8bnope",
            PROTOBUF,
            {"content-encoding": "gzip"},
            (400, PROTOBUF, 3, "body is not valid gzip"),
        ),
        (
            bomb,
            PROTOBUF,
            {"content-encoding": "gzip"},
            (413, PROTOBUF, 3, "larger than the limit of 20971520"),
        ),
        (b"{}", "text/plain", {}, (415, JSON, 3, "unsupported Content-Type 'text/plain'")),
        (b"{}", JSON, {"content-encoding": "br"}, (415, JSON, 3, "unsupported Content-Encoding 'br'")),
    ]
    for body, media, headers, (status, answer_type, code, message) in cases:
        got = _status(api.post(body, key, media, **headers))
        assert got[:3] == (status, answer_type, code) and message in got[3], got
    assert api.metrics.count_samples(tenant) == 0


def test_an_api_key_is_required(api: Api) -> None:
    api.register()
    body = _request("h", 1.0).SerializeToString()
    for auth in ({}, {"authorization": "Bearer ia_nope_nope"}, {"authorization": "Basic abc"}):
        r = api.http.post("/v1/metrics", content=body, headers={"content-type": PROTOBUF, **auth})
        status, media, code, message = _status(r)
        assert (status, media, code) == (401, PROTOBUF, 16) and "API key" in message
        assert r.headers["www-authenticate"] == "Bearer"


def test_openapi_documents_both_encodings(api: Api) -> None:
    op = api.http.get("/openapi.json").json()["paths"]["/v1/metrics"]["post"]
    assert set(op["requestBody"]["content"]) == {PROTOBUF, JSON}
    assert {"200", "400", "401", "413", "415", "503"} <= set(op["responses"])
