"""OTLP decode: every case is built once as protobuf messages and run through both encodings.

Why both from one definition: the two walkers must map identically; ``json_format.MessageToDict``
writes the same request as real OTLP/JSON (lowerCamelCase, int64 as strings, ``"NaN"`` for NaN),
so any drift between the protobuf and JSON paths shows up as a failing equality.
"""

from __future__ import annotations

import gzip
import math
import zlib
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from infragent.server.ingest.otlp import (
    JSON,
    PROTOBUF,
    TEMPORALITY_LABEL,
    Decoded,
    OtlpError,
    decode,
    encode_response,
    encode_status,
    format_float,
    inflate,
)
from infragent.wire import PayloadTooLargeError, SeriesData, UnsupportedEncodingError

NOW = 1_700_000_000.0
T1 = 1_699_999_990_000_000_000  # ns; exact as a float of seconds
T2 = 1_700_000_000_000_000_000
DELTA, CUMULATIVE = 1, 2
RESOURCE = {"host.name": "web-1", "service.name": "checkout", "service.version": "1.2"}


def _attrs(attrs: dict[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in attrs.items():
        kv = KeyValue(key=key)
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        elif isinstance(value, bytes):
            kv.value.bytes_value = value
        elif isinstance(value, list):
            kv.value.array_value.values.add().string_value = value[0]
            kv.value.array_value.values.add().int_value = value[1]
        else:
            kv.value.string_value = value
        out.append(kv)
    return out


def _number(t: int, value: float | int | None, flags: int = 0, **attrs: Any) -> pb.NumberDataPoint:
    dp = pb.NumberDataPoint(time_unix_nano=t, flags=flags, attributes=_attrs(attrs))
    if isinstance(value, float):
        dp.as_double = value
    elif isinstance(value, int):
        dp.as_int = value
    return dp


def _request(*metrics: pb.Metric, resource: dict[str, Any] | None = None) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(_attrs(RESOURCE if resource is None else resource))
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def _json(req: ExportMetricsServiceRequest) -> bytes:
    return orjson.dumps(json_format.MessageToDict(req, use_integers_for_enums=True))


def _both(req: ExportMetricsServiceRequest, now: float = NOW) -> Decoded:
    """Decode as protobuf and as JSON; they must agree exactly."""
    from_pb = decode(req.SerializeToString(), PROTOBUF, now=now)
    from_json = decode(_json(req), JSON, now=now)
    assert from_pb == from_json
    return from_pb


def _series(decoded: Decoded) -> dict[tuple[str, tuple[tuple[str, str], ...]], SeriesData]:
    (group,) = decoded.groups
    return {(s.name, tuple(sorted(s.attributes.items()))): s for s in group.series}


def _labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"service.name": "checkout", **extra}.items()))


def test_gauge_int_and_double_with_attribute_types() -> None:
    attrs = {"cpu": 3, "busy": True, "ratio": 0.5, "id": b"\x01\xff", "tags": ["a", 2]}
    gauge = pb.Metric(name="load", unit="1", gauge=pb.Gauge(data_points=[_number(T1, 1.5, **attrs)]))
    gauge.gauge.data_points.append(_number(T2, 7, **attrs))
    decoded = _both(_request(gauge))
    assert (decoded.accepted_points, decoded.rejected_points, decoded.error_message) == (2, 0, "")
    (group,) = decoded.groups
    assert group.node_id == "web-1" and group.resource == RESOURCE | {"service.version": "1.2"}
    labels = {"cpu": "3", "busy": "true", "ratio": "0.5", "id": "01ff", "tags": '["a",2]'}
    assert group.series == [
        SeriesData(
            "load", "1", "gauge", False, labels | {"service.name": "checkout"}, [T1 / 1e9, NOW], [1.5, 7.0]
        )
    ]
    assert group.series[0].timestamps == [1_699_999_990.0, 1_700_000_000.0]


@pytest.mark.parametrize(
    ("temporality", "is_monotonic", "monotonic", "extra"),
    [
        (CUMULATIVE, True, True, {}),  # a counter
        (CUMULATIVE, False, False, {}),  # an up-down counter
        (DELTA, True, False, {TEMPORALITY_LABEL: "delta"}),  # increments: no counter-reset logic
        (DELTA, False, False, {TEMPORALITY_LABEL: "delta"}),
    ],
)
def test_sums(temporality: int, is_monotonic: bool, monotonic: bool, extra: dict[str, str]) -> None:
    points = [_number(T1, 3, path="/"), _number(T2, 5, path="/")]
    s = pb.Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=is_monotonic)
    (series,) = _series(_both(_request(pb.Metric(name="http.requests", unit="{request}", sum=s)))).values()
    assert series == SeriesData(
        "http.requests",
        "{request}",
        "sum",
        monotonic,
        {"path": "/", "service.name": "checkout", **extra},
        [T1 / 1e9, T2 / 1e9],
        [3.0, 5.0],
    )


@pytest.mark.parametrize(("temporality", "monotonic"), [(CUMULATIVE, True), (DELTA, False)])
def test_histogram_becomes_count_sum_and_cumulative_buckets(temporality: int, monotonic: bool) -> None:
    hp = pb.HistogramDataPoint(
        time_unix_nano=T2,
        count=6,
        sum=25.5,
        bucket_counts=[2, 3, 1],
        explicit_bounds=[1.0, 10.0],
        attributes=_attrs({"route": "/pay"}),
    )
    h = pb.Histogram(data_points=[hp], aggregation_temporality=temporality)
    series = _series(_both(_request(pb.Metric(name="latency", unit="ms", histogram=h))))
    extra = {} if monotonic else {TEMPORALITY_LABEL: "delta"}
    base = _labels(route="/pay", **extra)
    got = {(name, labels): (s.unit, s.kind, s.monotonic, s.values) for (name, labels), s in series.items()}
    assert got == {
        ("latency_count", base): ("1", "sum", monotonic, [6.0]),
        ("latency_sum", base): ("ms", "sum", monotonic, [25.5]),
        ("latency_bucket", _labels(route="/pay", le="1", **extra)): ("1", "sum", monotonic, [2.0]),
        ("latency_bucket", _labels(route="/pay", le="10", **extra)): ("1", "sum", monotonic, [5.0]),
        ("latency_bucket", _labels(route="/pay", le="+Inf", **extra)): ("1", "sum", monotonic, [6.0]),
    }


def test_histogram_without_sum_or_buckets_keeps_what_it_has() -> None:
    h = pb.Histogram(
        data_points=[pb.HistogramDataPoint(time_unix_nano=T2, count=4)], aggregation_temporality=2
    )
    assert set(_series(_both(_request(pb.Metric(name="h", histogram=h))))) == {("h_count", _labels())}


def test_exponential_histogram_and_summary_keep_count_sum_and_quantiles() -> None:
    e = pb.ExponentialHistogram(
        data_points=[pb.ExponentialHistogramDataPoint(time_unix_nano=T2, count=3, sum=1.5, scale=2)],
        aggregation_temporality=CUMULATIVE,
    )
    q = pb.SummaryDataPoint.ValueAtQuantile
    quantiles = [q(quantile=0.5, value=3.0), q(quantile=0.99, value=9.0), q(quantile=1, value=math.nan)]
    sp = pb.SummaryDataPoint(time_unix_nano=T2, count=10, sum=42.0, quantile_values=quantiles)
    decoded = _both(
        _request(
            pb.Metric(name="e", exponential_histogram=e),
            pb.Metric(name="s", summary=pb.Summary(data_points=[sp])),
        )
    )
    got = {key: (s.kind, s.monotonic, s.values) for key, s in _series(decoded).items()}
    assert got == {
        ("e_count", _labels()): ("sum", True, [3.0]),
        ("e_sum", _labels()): ("sum", True, [1.5]),
        ("s_count", _labels()): ("sum", True, [10.0]),
        ("s_sum", _labels()): ("sum", True, [42.0]),
        ("s", _labels(quantile="0.5")): ("gauge", False, [3.0]),
        ("s", _labels(quantile="0.99")): ("gauge", False, [9.0]),  # the NaN quantile carries nothing
    }
    assert decoded.accepted_points == 2


def test_bad_points_are_counted_and_the_rest_stored() -> None:
    future = int((NOW + 3601) * 1e9)
    points = [
        _number(T1, 1.0),
        _number(T1, math.nan, k="nan"),
        _number(T1, math.inf, k="inf"),
        _number(future, 2.0, k="future"),
        _number(int((NOW + 3599) * 1e9), 3.0, k="soon"),  # within the hour: kept
        _number(T1, None, k="none"),
        _number(0, 4.0, k="zero-time"),
        _number(T1, 5.0, flags=1, k="no-recorded-value"),
    ]
    decoded = _both(_request(pb.Metric(name="g", gauge=pb.Gauge(data_points=points))))
    assert (decoded.accepted_points, decoded.rejected_points) == (2, 6)
    assert decoded.reasons == {
        "g: value is NaN or infinite": 2,
        "g: timestamp is more than 3600 s in the future": 1,
        "g: data point has no value (neither asDouble nor asInt)": 1,
        "g: timestamp is missing or before 1970": 1,
        "g: data point has no recorded value": 1,
    }
    assert decoded.error_message.startswith("rejected 6 data point(s): g: value is NaN or infinite (2); ")
    assert sorted(s.attributes.get("k", "") for s in decoded.groups[0].series) == ["", "soon"]


def test_whole_metrics_are_rejected_for_what_applies_to_all_their_points() -> None:
    two = [_number(T1, 1.0), _number(T2, 2.0)]
    cases = [
        pb.Metric(name="", gauge=pb.Gauge(data_points=two)),
        pb.Metric(name="x" * 256, gauge=pb.Gauge(data_points=two)),
        pb.Metric(name="u", unit="u" * 65, gauge=pb.Gauge(data_points=two)),
        pb.Metric(name="t", sum=pb.Sum(data_points=two)),  # aggregationTemporality unspecified
        pb.Metric(name="ok", gauge=pb.Gauge(data_points=two)),
        pb.Metric(name="ok", sum=pb.Sum(data_points=two, aggregation_temporality=CUMULATIVE)),
    ]
    decoded = _both(_request(*cases))
    assert (decoded.accepted_points, decoded.rejected_points) == (2, 10)
    assert list(decoded.reasons) == [
        "(unnamed): metric name is empty",
        f"{'x' * 256}: metric name longer than 255 characters",
        "u: unit longer than 64 characters",
        "t: aggregationTemporality is unspecified",
        "ok: same name as an earlier metric of another type or unit",
    ]


@pytest.mark.parametrize(
    ("resource", "node_id"),
    [
        ({"host.name": "h", "service.name": "s", "service.instance.id": "i"}, "h"),
        ({"service.name": "s", "service.instance.id": "i"}, "s/i"),
        ({"host.name": "", "service.name": "s"}, "s"),
        ({}, "unknown"),
    ],
)
def test_host_comes_from_the_resource(resource: dict[str, str], node_id: str) -> None:
    gauge = pb.Metric(name="g", gauge=pb.Gauge(data_points=[_number(T1, 1.0)]))
    assert [g.node_id for g in _both(_request(gauge, resource=resource)).groups] == [node_id]


def test_resources_of_one_host_share_a_group() -> None:
    req = _request(pb.Metric(name="a", gauge=pb.Gauge(data_points=[_number(T1, 1.0)])))
    other = _request(
        pb.Metric(name="a", gauge=pb.Gauge(data_points=[_number(T2, 2.0)])),
        resource={"host.name": "web-1", "service.name": "billing"},
    )
    req.resource_metrics.extend(other.resource_metrics)
    req.resource_metrics.extend(_request(resource={"host.name": "web-2"}).resource_metrics)  # empty
    (group,) = _both(req).groups
    assert [(s.attributes["service.name"], s.values) for s in group.series] == [
        ("checkout", [1.0]),
        ("billing", [2.0]),
    ]


def test_empty_request_is_a_success_with_nothing_to_store() -> None:
    for body, media in ((b"", PROTOBUF), (b"{}", JSON), (b'{"resourceMetrics": null}', JSON)):
        assert decode(body, media, now=NOW) == Decoded([], 0, 0, {})


def test_json_int64_as_strings_or_numbers_and_enum_names() -> None:
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "h"}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "ignored", "unknownField": 1},
                        "metrics": [
                            {
                                "name": "c",
                                "sum": {
                                    "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {"timeUnixNano": str(T1), "asInt": "9007199254740993"},
                                        {"timeUnixNano": T2, "asInt": 5, "flags": 0},
                                        {"timeUnixNano": str(T2 + 1), "asDouble": "Infinity"},
                                        {"timeUnixNano": str(T2 + 2), "asDouble": 0.25, "exemplars": []},
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ]
    }
    decoded = decode(orjson.dumps(doc), JSON, now=NOW)
    (series,) = decoded.groups[0].series
    assert series.values == [9007199254740992.0, 5.0, 0.25] and series.monotonic
    assert decoded.reasons == {"c: value is NaN or infinite": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not valid JSON"),
        (b"[]", "request: expected an object, got list"),
        (b'{"resourceMetrics": {}}', "resourceMetrics: expected an array, got dict"),
        (
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": '
            b'[{"timeUnixNano": "12x", "asDouble": 1}]}}]}]}]}',
            "resourceMetrics[0].scopeMetrics[0].metrics[0] (g): timeUnixNano: expected an integer",
        ),
        (
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": '
            b'[{"timeUnixNano": "1", "asDouble": true}]}}]}]}]}',
            "asDouble: expected a number, got True",
        ),
        (
            b'{"resourceMetrics": [{"resource": {"attributes": '
            b'[{"key": "k", "value": {"intValue": "1e3"}}]}}]}',
            "resourceMetrics[0].resource: intValue: expected an integer",
        ),
        (
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": '
            b'[{"timeUnixNano": "99999999999999999999", "asDouble": 1}]}}]}]}]}',
            "99999999999999999999 is out of the 64-bit range",
        ),
    ],
)
def test_malformed_json_is_an_error_naming_the_field(body: bytes, message: str) -> None:
    with pytest.raises(OtlpError) as info:
        decode(body, JSON, now=NOW)
    assert message in info.value.reason


@pytest.mark.parametrize("body", [b"\x0a\xff", b"garbage!", b"\x0a\x05\x0a\x03\x0a\x01\xff"])
def test_malformed_protobuf_is_an_error(body: bytes) -> None:
    with pytest.raises(OtlpError, match="body is not a protobuf ExportMetricsServiceRequest"):
        decode(body, PROTOBUF, now=NOW)


def test_inflate_is_capped_before_inflating_whole() -> None:
    raw = b"x" * 1000
    assert inflate(gzip.compress(raw), "gzip", 1000) == raw
    assert inflate(gzip.compress(raw[:500]) + gzip.compress(raw[500:]), "GZIP ", 1000) == raw  # members
    assert inflate(zlib.compress(raw), "deflate", 1000) == raw
    assert inflate(raw, None, 1000) == inflate(raw, "identity", 1000) == raw
    with pytest.raises(PayloadTooLargeError):
        inflate(gzip.compress(b"\0" * 10_000_000), "gzip", 1000)
    with pytest.raises(PayloadTooLargeError):
        inflate(raw + b"!", None, 1000)
    with pytest.raises(OtlpError, match="body is not valid gzip"):
        inflate(b"\x1f\x8bnope", "gzip", 1000)
    with pytest.raises(OtlpError, match="truncated"):
        inflate(gzip.compress(raw)[:-12], "gzip", 1000)
    with pytest.raises(UnsupportedEncodingError):
        inflate(raw, "br", 1000)


def test_responses_and_status_bodies_decode_with_the_official_messages() -> None:
    ok = Decoded([], 3, 0, {})
    assert encode_response(ok, PROTOBUF) == b"" and encode_response(ok, JSON) == b"{}"
    partial = Decoded([], 1, 2, {"g: value is NaN or infinite": 2})
    got = ExportMetricsServiceResponse.FromString(encode_response(partial, PROTOBUF)).partial_success
    assert (got.rejected_data_points, got.error_message) == (
        2,
        "rejected 2 data point(s): g: value is NaN or infinite (2)",
    )
    as_json = orjson.loads(encode_response(partial, JSON))
    assert as_json == {"partialSuccess": {"rejectedDataPoints": "2", "errorMessage": got.error_message}}
    message = "bad ✓ " * 40  # longer than 127 bytes: a two-byte length varint
    status = status_pb2.Status.FromString(encode_status(400, message, PROTOBUF))
    assert (status.code, status.message) == (3, message)
    assert orjson.loads(encode_status(503, "busy", JSON)) == {"code": 14, "message": "busy"}


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.25, "0.25"), (1e21, "1000000000000000000000"), (1e-7, "0.0000001"), (math.inf, "+Inf")],
)
def test_bounds_are_formatted_like_prometheus(value: float, text: str) -> None:
    assert format_float(value) == text
