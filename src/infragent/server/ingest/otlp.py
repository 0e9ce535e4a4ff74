"""OTLP metrics: an ``ExportMetricsServiceRequest`` body (protobuf or OTLP/JSON) → per-host batches.

Pure: bytes and a clock reading in, values out. The route in ``server/api/otlp.py`` does the HTTP
and the store; the mapping rules live here and are documented for users in ``docs/otlp.md``.

Why two walkers feeding one ``_Sink``: protobuf is decoded by upb into messages, JSON by orjson
into dicts; each walker reads its own shape into plain values (attributes as ``dict[str, str]``,
nanosecond ints, floats) and the sink applies every rule (validation, naming, labels, grouping) once,
so the two encodings cannot drift apart. JSON is walked by hand rather than through
``json_format.Parse``, which builds every message by descriptor reflection: for 2,000 gauge points
``Parse`` alone took ~100 ms here, this whole decode ~16 ms (the protobuf path about the same: the
upb parse is <1 ms, the walk and the grouping are the cost).

Why rejection is per OTLP data point: ``partial_success.rejected_data_points`` counts data points,
and an exporter cannot act on one bad point anyway; the spec wants the rest stored. A body that
cannot be decoded at all (or has the wrong JSON types) is a permanent error, a 400, and stores nothing.

Why samples are grouped by host: a request may carry many resources; each host's series become one
``MetricBatch`` so that ``SqlMetricStore.write_batch`` stores each host in one transaction under one
idempotency key.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from infragent.wire import (
    MAX_NAME,
    MAX_NODE_ID,
    MAX_UNIT,
    MetricBatch,
    PayloadTooLargeError,
    SeriesData,
    UnsupportedEncodingError,
    WireError,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
#: The limit the OTLP specification recommends for a request body after decompression.
MAX_DECOMPRESSED_BYTES = 20 * 1024 * 1024
#: A point stamped further ahead than this is a broken clock, not a measurement.
MAX_FUTURE_S = 3600.0
#: Label put on delta sums and histograms: their values are increments, not running totals.
TEMPORALITY_LABEL = "otlp.temporality"
#: Resource attributes copied onto every series as labels (``host.name`` becomes the host instead).
RESOURCE_LABELS = ("service.name", "service.namespace")
MAX_REASONS = 10

_DELTA, _CUMULATIVE = 1, 2  # AggregationTemporality
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_isfinite = math.isfinite
_NO_VALUE = "data point has no value (neither asDouble nor asInt)"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
_TEMPORALITY_NAMES = {
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0,
    "AGGREGATION_TEMPORALITY_DELTA": _DELTA,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": _CUMULATIVE,
}
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # int64 and uint64 fields share one parser

Shape = Literal["gauge", "sum", "histogram", "exponential_histogram", "summary"]
Kind = Literal["gauge", "sum"]
#: Length of the longest suffix each shape adds to the name ("_bucket", "_count").
_SUFFIX = {"gauge": 0, "sum": 0, "histogram": 7, "exponential_histogram": 6, "summary": 6}


class OtlpError(WireError):
    """The body is not a well-formed ``ExportMetricsServiceRequest``: permanent, HTTP 400."""


# -- body --------------------------------------------------------------------------------------------


def inflate(body: bytes, content_encoding: str | None, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Undo ``Content-Encoding`` (none, gzip or deflate), never producing more than ``max_bytes + 1``.

    Same bounded loop as ``wire.py``'s gunzip, plus ``deflate`` (zlib), which the OpenTelemetry
    Python exporter offers; over the cap is ``PayloadTooLargeError`` (413) before inflating whole.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", "none"):
        if len(body) > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        return body
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedEncodingError(encoding)
    out = bytearray()
    data = body
    while True:
        inflater = zlib.decompressobj(wbits=wbits)
        try:
            out += inflater.decompress(data, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise OtlpError(f"body is not valid {encoding}: {exc}") from None
        if len(out) > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        if not inflater.eof:
            raise OtlpError(f"body is not valid {encoding}: the stream is truncated")
        data = inflater.unused_data  # gzip members may be concatenated (RFC 1952)
        if not data:
            return bytes(out)
        if wbits != _GZIP_WBITS:
            raise OtlpError(f"body is not valid {encoding}: data after the end of the stream")


# -- result ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostGroup:
    """Every series one request holds for one host; stored as one ``MetricBatch``."""

    node_id: str
    resource: dict[str, str]
    series: list[SeriesData]

    def batch(self, batch_id: str) -> MetricBatch:
        return MetricBatch(batch_id, self.node_id, self.resource, self.series)


@dataclass(frozen=True, slots=True)
class Decoded:
    """``accepted_points``/``rejected_points`` count OTLP data points (a histogram point is one)."""

    groups: list[HostGroup]
    accepted_points: int
    rejected_points: int
    reasons: dict[str, int]  # "<metric>: <why>" -> data points rejected for it, in first-seen order

    @property
    def error_message(self) -> str:
        """The ``partialSuccess.errorMessage``: each reason once with its count, the first few only."""
        if not self.rejected_points:
            return ""
        items = list(self.reasons.items())
        text = "; ".join(f"{reason} ({n})" for reason, n in items[:MAX_REASONS])
        more = f"; and {len(items) - MAX_REASONS} more reasons" if len(items) > MAX_REASONS else ""
        return f"rejected {self.rejected_points} data point(s): {text}{more}"


# -- the sink: every mapping rule, whatever the encoding ---------------------------------------------


@lru_cache(maxsize=4096)
def format_float(x: float) -> str:
    """A bound or quantile as a label value the way Prometheus writes it: ``10``, ``0.25``, ``+Inf``."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    text = repr(x)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


@dataclass(slots=True)
class _Series:
    name: str
    unit: str
    kind: Kind
    monotonic: bool
    labels: dict[str, str]
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    node_id: str
    resource: dict[str, str]
    series: dict[tuple[Any, ...], _Series] = field(default_factory=dict)
    types: dict[str, tuple[str, Kind, bool]] = field(default_factory=dict)  # series name -> its type


@dataclass(frozen=True, slots=True)
class _Resource:
    """One ``ResourceMetrics``: its host's group and the labels it adds; ``error`` rejects its points."""

    group: _Group | None
    labels: dict[str, str]
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Metric:
    """A metric whose points may be stored, in ``group``; ``labels`` go on all its series."""

    name: str
    group: _Group
    labels: dict[str, str]  # the resource's, and the temporality of a delta


def _series_types(shape: Shape, name: str, unit: str, monotonic: bool) -> dict[str, tuple[str, Kind, bool]]:
    if shape == "gauge":
        return {name: (unit, "gauge", False)}
    if shape == "sum":
        return {name: (unit, "sum", monotonic)}
    types: dict[str, tuple[str, Kind, bool]] = {
        f"{name}_count": ("1", "sum", monotonic),
        f"{name}_sum": (unit, "sum", monotonic),
    }
    if shape == "histogram":
        types[f"{name}_bucket"] = ("1", "sum", monotonic)
    elif shape == "summary":
        types[name] = (unit, "gauge", False)
    return types


class _Sink:
    def __init__(self, now: float) -> None:
        self.max_ns = int((now + MAX_FUTURE_S) * 1e9)
        self.groups: dict[str, _Group] = {}
        self.accepted = 0
        self.rejected = 0
        self.reasons: dict[str, int] = {}

    def reject(self, metric: str, why: str, n: int = 1) -> None:
        key = f"{metric or '(unnamed)'}: {why}"
        self.reasons[key] = self.reasons.get(key, 0) + n
        self.rejected += n

    def resource(self, attrs: dict[str, str]) -> _Resource:
        """``host.name`` names the host; else ``service.name[/service.instance.id]``; else ``unknown``."""
        node = attrs.get("host.name", "")
        if not node and (service := attrs.get("service.name")):
            instance = attrs.get("service.instance.id")
            node = f"{service}/{instance}" if instance else service
        node = node or "unknown"
        labels = {k: attrs[k] for k in RESOURCE_LABELS if attrs.get(k)}
        if len(node) > MAX_NODE_ID:
            return _Resource(None, labels, f"host name longer than {MAX_NODE_ID} characters")
        group = self.groups.get(node)
        if group is None:
            group = self.groups[node] = _Group(node, attrs)
        return _Resource(group, labels)

    def metric(
        self,
        res: _Resource,
        name: str,
        unit: str,
        shape: Shape,
        points: int,
        temporality: int,
        monotonic: bool,
    ) -> _Metric | None:
        """Check what applies to all of a metric's points; ``None`` when they are all rejected.

        ``monotonic`` (``isMonotonic``) matters only for a sum. What is stored as monotonic is what
        counter-reset logic may run on: cumulative monotonic sums, histogram and summary counts and
        sums (OTLP sums of observations are non-negative). A delta is a run of increments, so never.
        """
        if not points:
            return None
        cumulative = shape in ("gauge", "summary") or temporality == _CUMULATIVE
        group = res.group
        why = ""
        if group is None:
            why = res.error
        elif not name:
            why = "metric name is empty"
        elif len(name) + _SUFFIX[shape] > MAX_NAME:
            why = f"metric name longer than {MAX_NAME - _SUFFIX[shape]} characters"
        elif len(unit) > MAX_UNIT:
            why = f"unit longer than {MAX_UNIT} characters"
        elif not cumulative and temporality != _DELTA:
            why = "aggregationTemporality is unspecified"
        else:
            stored_monotonic = shape != "gauge" and cumulative and (monotonic or shape != "sum")
            types = _series_types(shape, name, unit, stored_monotonic)
            if any(group.types.get(n, t) != t for n, t in types.items()):
                why = "same name as an earlier metric of another type or unit"
            else:
                group.types.update(types)
                labels = res.labels if cumulative else {**res.labels, TEMPORALITY_LABEL: "delta"}
                return _Metric(name, group, labels)
        self.reject(name, why, points)
        return None

    def _when(self, m: _Metric, t_ns: int, flags: int) -> float | None:
        """Seconds since the epoch, or ``None`` with the point counted as rejected."""
        if flags & _NO_RECORDED_VALUE:
            self.reject(m.name, "data point has no recorded value")
        elif t_ns <= 0:
            self.reject(m.name, "timestamp is missing or before 1970")
        elif t_ns > self.max_ns:
            self.reject(m.name, f"timestamp is more than {MAX_FUTURE_S:g} s in the future")
        else:
            return t_ns / 1e9
        return None

    @staticmethod
    def _labels(m: _Metric, attrs: dict[str, str]) -> dict[str, str]:
        if m.labels:
            attrs.update(m.labels)  # the resource identifies the producer: it wins over a point attribute
        return attrs

    def _add(
        self,
        group: _Group,
        key: tuple[Any, ...],
        name: str,
        labels: dict[str, str],
        ts: float,
        value: float,
        extra: tuple[str, str] | None = None,
    ) -> None:
        """Append one sample; ``extra`` (``le``, ``quantile``) is merged only when the series is new."""
        s = group.series.get(key)
        if s is None:
            unit, kind, monotonic = group.types[name]
            series_labels = {**labels, extra[0]: extra[1]} if extra else labels
            s = group.series[key] = _Series(name, unit, kind, monotonic, series_labels)
        s.timestamps.append(ts)
        s.values.append(value)

    def number(self, m: _Metric, attrs: dict[str, str], t_ns: int, value: float | None, flags: int) -> None:
        """The hot path (most points are numbers): one test for a good point, ``_add`` inlined."""
        if not (
            0 < t_ns <= self.max_ns
            and value is not None
            and _isfinite(value)
            and not flags & _NO_RECORDED_VALUE
        ):
            if self._when(m, t_ns, flags) is not None:
                why = "value is NaN or infinite" if value is not None else _NO_VALUE
                self.reject(m.name, why)
            return
        if m.labels:
            attrs.update(m.labels)
        key = (m.name, *sorted(attrs.items()))
        s = m.group.series.get(key)
        if s is None:
            unit, kind, monotonic = m.group.types[m.name]
            s = m.group.series[key] = _Series(m.name, unit, kind, monotonic, attrs)
        s.timestamps.append(t_ns / 1e9)
        s.values.append(value)
        self.accepted += 1

    def histogram(
        self,
        m: _Metric,
        attrs: dict[str, str],
        t_ns: int,
        flags: int,
        count: int,
        total: float | None,
        buckets: Sequence[int] = (),
        bounds: Sequence[float] = (),
    ) -> None:
        """Explicit (``buckets`` set) or exponential (``buckets`` empty: count and sum only)."""
        ts = self._when(m, t_ns, flags)
        if ts is None:
            return
        why = ""
        if count < 0 or (buckets and min(buckets) < 0):
            why = "count is negative"
        elif total is not None and not math.isfinite(total):
            why = "sum is NaN or infinite"
        elif buckets and len(buckets) != len(bounds) + 1:
            why = f"{len(buckets)} bucketCounts for {len(bounds)} explicitBounds; need one more count"
        elif buckets and not (
            all(map(math.isfinite, bounds)) and all(a < b for a, b in itertools.pairwise(bounds))
        ):
            why = "explicitBounds are not finite and strictly increasing"
        if why:
            self.reject(m.name, why)
            return
        labels = self._labels(m, attrs)
        group = m.group
        items = tuple(sorted(labels.items()))
        name = f"{m.name}_count"
        self._add(group, (name, *items), name, labels, ts, float(count))
        if total is not None:
            name = f"{m.name}_sum"
            self._add(group, (name, *items), name, labels, ts, total)
        if buckets:
            name = f"{m.name}_bucket"
            running = 0
            for bound, n in zip((*bounds, math.inf), buckets, strict=True):
                running += n
                le = format_float(bound)
                self._add(group, (name, le, *items), name, labels, ts, float(running), ("le", le))
        self.accepted += 1

    def summary(
        self,
        m: _Metric,
        attrs: dict[str, str],
        t_ns: int,
        flags: int,
        count: int,
        total: float,
        quantiles: Iterable[tuple[float, float]],
    ) -> None:
        """Count, sum and one gauge per quantile; a NaN quantile (no observations yet) is skipped."""
        ts = self._when(m, t_ns, flags)
        if ts is None:
            return
        if count < 0 or not math.isfinite(total):
            self.reject(m.name, "count is negative or sum is NaN or infinite")
            return
        labels = self._labels(m, attrs)
        group = m.group
        items = tuple(sorted(labels.items()))
        for name, value in ((f"{m.name}_count", float(count)), (f"{m.name}_sum", total)):
            self._add(group, (name, *items), name, labels, ts, value)
        for q, value in quantiles:
            if math.isfinite(value):
                qs = format_float(q)
                self._add(group, (m.name, qs, *items), m.name, labels, ts, value, ("quantile", qs))
        self.accepted += 1

    def result(self) -> Decoded:
        groups = [
            HostGroup(
                g.node_id,
                g.resource,
                [
                    SeriesData(s.name, s.unit, s.kind, s.monotonic, s.labels, s.timestamps, s.values)
                    for s in g.series.values()
                ],
            )
            for g in self.groups.values()
            if g.series
        ]
        return Decoded(groups, self.accepted, self.rejected, self.reasons)


# -- protobuf ----------------------------------------------------------------------------------------


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


def _pb_metric(res: _Resource, metric: Metric, sink: _Sink) -> None:
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


def _decode_protobuf(raw: bytes, sink: _Sink) -> None:
    try:
        request = ExportMetricsServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise OtlpError(f"body is not a protobuf ExportMetricsServiceRequest: {exc}") from None
    for rm in request.resource_metrics:
        res = sink.resource(_pb_attrs(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                _pb_metric(res, metric, sink)


# -- OTLP/JSON ---------------------------------------------------------------------------------------


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    v = obj.get(key)
    if v is None:  # absent, or null: proto3 JSON's default value
        return []
    if type(v) is not list:
        raise OtlpError(f"{key}: expected an array, got {type(v).__name__}")
    return v


def _obj(v: Any, what: str) -> dict[str, Any]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise OtlpError(f"{what}: expected an object, got {type(v).__name__}")
    return v


def _str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if type(v) is not str:
        raise OtlpError(f"{key}: expected a string, got {type(v).__name__}")
    return v


def _int(v: Any, key: str) -> int:
    """An int64/uint64: a number or a decimal string (proto3 JSON writes 64-bit integers as strings)."""
    if v is None:
        return 0
    if type(v) is int:
        n = v
    elif (type(v) is str and v.isascii() and v.removeprefix("-").isdigit()) or (
        type(v) is float and v.is_integer()
    ):
        n = int(v)
    else:
        raise OtlpError(f"{key}: expected an integer or a decimal string, got {v!r:.40}")
    if not _INT_MIN <= n <= _INT_MAX:
        raise OtlpError(f"{key}: {n} is out of the 64-bit range")
    return n


def _float(v: Any, key: str) -> float:
    """A double: a number, or a string (``"NaN"``, ``"Infinity"``, ``"-Infinity"`` or decimal)."""
    if type(v) is float or type(v) is int:
        return float(v)
    if type(v) is str:
        try:
            return float(v)
        except ValueError:
            pass
    raise OtlpError(f"{key}: expected a number, got {v!r:.40}")


def _json_native(v: Any) -> Any:
    v = _obj(v, "value")
    if "stringValue" in v:
        s = v["stringValue"]
        if type(s) is not str:
            raise OtlpError(f"stringValue: expected a string, got {type(s).__name__}")
        return s
    if "boolValue" in v:
        if type(v["boolValue"]) is not bool:
            raise OtlpError("boolValue: expected true or false")
        return v["boolValue"]
    if "intValue" in v:
        return _int(v["intValue"], "intValue")
    if "doubleValue" in v:
        return _float(v["doubleValue"], "doubleValue")
    if "bytesValue" in v:  # standard proto3 JSON: base64 (only trace and span ids are hex in OTLP)
        try:
            return base64.b64decode(_str(v, "bytesValue"), validate=True).hex()
        except binascii.Error:
            raise OtlpError("bytesValue: not valid base64") from None
    if "arrayValue" in v:
        return [_json_native(x) for x in _list(_obj(v["arrayValue"], "arrayValue"), "values")]
    if "kvlistValue" in v:
        kvs = _list(_obj(v["kvlistValue"], "kvlistValue"), "values")
        return {_str(kv, "key"): _json_native(kv.get("value")) for kv in map(_kv, kvs)}
    return None


def _kv(kv: Any) -> dict[str, Any]:
    return _obj(kv, "attribute")


def _json_attrs(kvs: list[Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kv in kvs:
        kv = _kv(kv)
        out[_str(kv, "key")] = label_value(_json_native(kv.get("value")))
    return out


def _json_temporality(v: Any) -> int:
    if type(v) is str and v in _TEMPORALITY_NAMES:  # OTLP says integers; names cost nothing to accept
        return _TEMPORALITY_NAMES[v]
    return _int(v, "aggregationTemporality")


def _json_bool(v: Any, key: str) -> bool:
    if v is None:
        return False
    if type(v) is not bool:
        raise OtlpError(f"{key}: expected true or false")
    return v


def _json_metric(res: _Resource, metric: dict[str, Any], sink: _Sink) -> None:
    name, unit = _str(metric, "name"), _str(metric, "unit")
    found = next(((key, shape) for key, shape in _JSON_SHAPES if metric.get(key) is not None), None)
    if found is None:
        return
    key, shape = found
    data = _obj(metric[key], key)
    points = _list(data, "dataPoints")
    temporality = _json_temporality(data.get("aggregationTemporality"))
    monotonic = _json_bool(data.get("isMonotonic"), "isMonotonic")
    m = sink.metric(res, name, unit, shape, len(points), temporality, monotonic)
    if m is None:
        return
    for dp in points:
        dp = _obj(dp, "dataPoint")
        attrs = _json_attrs(_list(dp, "attributes"))
        t_ns, flags = _int(dp.get("timeUnixNano"), "timeUnixNano"), _int(dp.get("flags"), "flags")
        if shape == "gauge" or shape == "sum":
            if (raw := dp.get("asDouble")) is not None:
                value: float | None = _float(raw, "asDouble")
            elif (raw := dp.get("asInt")) is not None:
                value = float(_int(raw, "asInt"))
            else:
                value = None
            sink.number(m, attrs, t_ns, value, flags)
            continue
        count = _int(dp.get("count"), "count")
        raw_sum = dp.get("sum")
        if shape == "summary":
            quantiles = [
                (_float(q.get("quantile", 0), "quantile"), _float(q.get("value", 0), "value"))
                for q in map(_kv, _list(dp, "quantileValues"))
            ]
            total = 0.0 if raw_sum is None else _float(raw_sum, "sum")
            sink.summary(m, attrs, t_ns, flags, count, total, quantiles)
            continue
        total_h = None if raw_sum is None else _float(raw_sum, "sum")
        if shape == "histogram":
            buckets = [_int(c, "bucketCounts") for c in _list(dp, "bucketCounts")]
            bounds = [_float(b, "explicitBounds") for b in _list(dp, "explicitBounds")]
            sink.histogram(m, attrs, t_ns, flags, count, total_h, buckets, bounds)
        else:
            sink.histogram(m, attrs, t_ns, flags, count, total_h)


_JSON_SHAPES: tuple[tuple[str, Shape], ...] = (
    ("gauge", "gauge"),
    ("sum", "sum"),
    ("histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary", "summary"),
)


def _decode_json(raw: bytes, sink: _Sink) -> None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(f"body is not valid JSON: {exc}") from None
    for ri, rm in enumerate(_list(_obj(doc, "request"), "resourceMetrics")):
        where = f"resourceMetrics[{ri}]"
        try:
            rm = _obj(rm, "resourceMetrics")
            res = sink.resource(_json_attrs(_list(_obj(rm.get("resource"), "resource"), "attributes")))
        except OtlpError as exc:
            raise OtlpError(f"{where}.resource: {exc.reason}") from None
        for si, sm in enumerate(_list(rm, "scopeMetrics")):
            for mi, metric in enumerate(_list(_obj(sm, "scopeMetrics"), "metrics")):
                try:
                    _json_metric(res, _obj(metric, "metric"), sink)
                except OtlpError as exc:
                    name = metric.get("name") if type(metric) is dict else None
                    raise OtlpError(
                        f"{where}.scopeMetrics[{si}].metrics[{mi}] ({name}): {exc.reason}"
                    ) from None


# -- entry points ------------------------------------------------------------------------------------


def label_value(v: Any) -> str:
    """An attribute value as a label: strings as they are, scalars as text, arrays and maps as JSON."""
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        return format_float(v)
    if v is None:
        return ""
    if type(v) is int:
        return str(v)
    return orjson.dumps(v).decode()


def decode(raw: bytes, media_type: str, *, now: float) -> Decoded:
    """Map an (inflated) request body to per-host groups, counting the data points it rejects.

    ``media_type`` is ``PROTOBUF`` or ``JSON``; ``now`` (unix seconds) bounds future timestamps.
    Raises ``OtlpError`` when the body cannot be decoded at all.
    """
    sink = _Sink(now)
    if media_type == PROTOBUF:
        _decode_protobuf(raw, sink)
    elif media_type == JSON:
        _decode_json(raw, sink)
    else:
        raise ValueError(f"not an OTLP media type: {media_type!r}")
    return sink.result()


def encode_response(decoded: Decoded, media_type: str) -> bytes:
    """An ``ExportMetricsServiceResponse``: empty on full success, ``partialSuccess`` otherwise."""
    rejected, message = decoded.rejected_points, decoded.error_message
    if media_type == PROTOBUF:
        response = ExportMetricsServiceResponse()
        if rejected:
            response.partial_success.rejected_data_points = rejected
            response.partial_success.error_message = message
        return response.SerializeToString()
    if not rejected:
        return b"{}"
    # proto3 JSON writes int64 as a decimal string
    return orjson.dumps({"partialSuccess": {"rejectedDataPoints": str(rejected), "errorMessage": message}})


#: HTTP status -> ``google.rpc.Code``; OTLP clients go by the HTTP status, the code is for logs.
RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 3, 415: 3, 429: 8, 500: 13, 503: 14}


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_status(http_status: int, message: str, media_type: str) -> bytes:
    """A ``google.rpc.Status {code, message}``, the body OTLP wants on every 4xx and 5xx.

    Encoded by hand (two fields) so the server does not need ``googleapis-common-protos``.
    """
    code = RPC_CODES.get(http_status, 2)  # 2 = UNKNOWN
    if media_type == PROTOBUF:
        text = message.encode()
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return orjson.dumps({"code": code, "message": message})
