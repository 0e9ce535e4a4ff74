"""OTLP/JSON: walk an orjson-parsed request into the ``Sink``, checking every JSON type on the way.

Why by hand rather than ``json_format.Parse``: ``Parse`` builds every message by descriptor
reflection; for 2,000 gauge points it alone took ~100 ms here, this whole decode ~16 ms. A wrong
type anywhere is an ``OtlpError`` naming its path (``resourceMetrics[0].scopeMetrics[1]…``): a 400.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from infragent.server.ingest.otlp.model import CUMULATIVE, DELTA, OtlpError, Shape, label_value
from infragent.server.ingest.otlp.sink import Resource, Sink

_TEMPORALITY_NAMES = {
    "AGGREGATION_TEMPORALITY_UNSPECIFIED": 0,
    "AGGREGATION_TEMPORALITY_DELTA": DELTA,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": CUMULATIVE,
}
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # int64 and uint64 fields share one parser


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


def _json_metric(res: Resource, metric: dict[str, Any], sink: Sink) -> None:
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


def decode_json(raw: bytes, sink: Sink) -> None:
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
