"""OTLP/protobuf: walk an ``ExportMetricsServiceRequest`` decoded by upb into the ``Sink``.

Why field by field: upb builds a Python wrapper for every message touched, so the walk reads only
what the mapping needs; for 2,000 gauge points the upb parse is under 1 ms, the walk the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from infragent.server.ingest.otlp.model import OtlpError, label_value
from infragent.server.ingest.otlp.sink import Resource, Sink


def _pb_native(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return [_pb_native(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_native(kv.value) for kv in v.kvlist_value.values}
    return None


def _pb_attrs(kvs: Iterable[KeyValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in kvs:
        v = kv.value
        text = v.string_value  # most attributes are strings: one read, no WhichOneof
        out[kv.key] = text if text or v.WhichOneof("value") == "string_value" else label_value(_pb_native(v))
    return out


def _pb_metric(res: Resource, metric: Metric, sink: Sink) -> None:
    """One metric's points, read field by field: upb builds a wrapper per message touched, so touch few."""
    name, unit = metric.name, metric.unit
    shape = metric.WhichOneof("data")
    if shape == "gauge" or shape == "sum":
        if shape == "gauge":
            points, temporality, monotonic = metric.gauge.data_points, 0, False
        else:
            s = metric.sum
            points, temporality, monotonic = s.data_points, s.aggregation_temporality, s.is_monotonic
        m = sink.metric(res, name, unit, shape, len(points), temporality, monotonic)
        if m is None:
            return
        for dp in points:
            which = dp.WhichOneof("value")
            value = dp.as_double if which == "as_double" else float(dp.as_int) if which else None
            sink.number(m, _pb_attrs(dp.attributes), dp.time_unix_nano, value, dp.flags)
    elif shape == "histogram":
        h = metric.histogram
        m = sink.metric(res, name, unit, shape, len(h.data_points), h.aggregation_temporality, True)
        if m is None:
            return
        for hp in h.data_points:
            attrs = _pb_attrs(hp.attributes)
            total = hp.sum if hp.HasField("sum") else None
            buckets, bounds = list(hp.bucket_counts), list(hp.explicit_bounds)
            sink.histogram(m, attrs, hp.time_unix_nano, hp.flags, hp.count, total, buckets, bounds)
    elif shape == "exponential_histogram":
        e = metric.exponential_histogram
        m = sink.metric(res, name, unit, shape, len(e.data_points), e.aggregation_temporality, True)
        if m is None:
            return
        for ep in e.data_points:
            total = ep.sum if ep.HasField("sum") else None
            sink.histogram(m, _pb_attrs(ep.attributes), ep.time_unix_nano, ep.flags, ep.count, total)
    elif shape == "summary":
        points_s = metric.summary.data_points
        m = sink.metric(res, name, unit, shape, len(points_s), 0, True)
        if m is None:
            return
        for sp in points_s:
            quantiles = [(q.quantile, q.value) for q in sp.quantile_values]
            attrs = _pb_attrs(sp.attributes)
            sink.summary(m, attrs, sp.time_unix_nano, sp.flags, sp.count, sp.sum, quantiles)


def decode_protobuf(raw: bytes, sink: Sink) -> None:
    try:
        request = ExportMetricsServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise OtlpError(f"body is not a protobuf ExportMetricsServiceRequest: {exc}") from None
    for rm in request.resource_metrics:
        res = sink.resource(_pb_attrs(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                _pb_metric(res, metric, sink)
