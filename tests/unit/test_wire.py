from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import msgspec
import pytest

from infragent.agent.collectors.point import counter, gauge
from infragent.wire import (
    COLUMNS_VERSION,
    WIRE_VERSION,
    MetricBatch,
    PayloadTooLargeError,
    SeriesData,
    UnsupportedEncodingError,
    WireError,
    batch_from_points,
    decode_batch,
    decode_with_columns,
    encode_batch,
)

CAP = 1024 * 1024


def _gzip(data: bytes) -> bytes:
    """gzip with mtime 0: parameter ids made of compressed bytes must be the same on every
    xdist worker (a timestamp in the header would differ across a second boundary)."""
    return gzip.compress(data, mtime=0)


def _series(**over: Any) -> dict[str, Any]:
    return {
        "name": "system.cpu.utilization",
        "unit": "1",
        "kind": "gauge",
        "monotonic": False,
        "attributes": {"cpu.mode": "user"},
        "timestamps": [1000.0, 1010.0],
        "values": [0.25, 0.5],
        **over,
    }


def _batch(**over: Any) -> dict[str, Any]:
    return {
        "batch_id": "b-1",
        "node_id": "host-1",
        "resource": {"host.name": "host-1"},
        "series": [_series()],
        "version": WIRE_VERSION,
        **over,
    }


def _gz(obj: Any) -> bytes:
    return _gzip(msgspec.msgpack.encode(obj))


def _decode(body: bytes, encoding: str | None = "gzip", cap: int = CAP) -> MetricBatch:
    return decode_batch(body, content_encoding=encoding, max_decompressed=cap)


def test_round_trip_is_exact_and_deterministic() -> None:
    batch = msgspec.convert(_batch(), MetricBatch)
    body = encode_batch(batch)
    assert body[:2] == b"\x1f\x8b" and encode_batch(batch) == body  # gzip, mtime 0
    assert _decode(body) == msgspec.structs.replace(batch, version=COLUMNS_VERSION)  # sent as version 2
    assert _decode(encode_batch(batch, version=WIRE_VERSION)) == batch
    assert _decode(msgspec.msgpack.encode(batch), encoding=None) == batch
    assert _decode(msgspec.msgpack.encode(batch), encoding="identity") == batch
    assert batch.point_count == 2


def test_concatenated_gzip_members_are_one_body() -> None:
    raw = msgspec.msgpack.encode(_batch())
    body = _gzip(raw[:10]) + _gzip(raw[10:])
    assert _decode(body).batch_id == "b-1"


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    batch = _decode(_gz(_batch(sent_at=5.0, series=[_series(exemplars=[])])))
    assert batch.series[0].values == [0.25, 0.5]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not gzip at all", "body is not valid gzip"),
        (_gzip(b"x" * 100)[:-12], "the stream is truncated"),
        (_gzip(b"\xc1\xc1"), "body is not valid msgpack"),
        (_gzip(b"\x93\x01\x02"), "invalid metric batch: Expected `object`, got `array`"),
        (_gz({k: v for k, v in _batch().items() if k != "node_id"}), "missing required field `node_id`"),
        (_gz(_batch(batch_id="")), "`str` of length >= 1 - at `$.batch_id`"),
        (_gz(_batch(batch_id="   ")), "batch_id is blank"),
        (_gz(_batch(batch_id="x" * 129)), "length <= 128 - at `$.batch_id`"),
        (_gz(_batch(version=3)), "unsupported wire version 3; this server speaks 1 and 2"),
        (_gz(_batch(version=3, series="new shape")), "unsupported wire version 3"),
        (_gz(_batch(version=2)), "invalid metric batch: Expected `bytes`, got `array`"),
        (_gz(_batch(series=[_series(kind="histogram")])), "at `$.series[0].kind`"),
        (_gz(_batch(series=[_series(name=7)])), "Expected `str`, got `int` - at `$.series[0].name`"),
        (_gz(_batch(series=[_series(values=["a", "b"])])), "at `$.series[0].values[0]`"),
        (_gz(_batch(series=[_series(values=[1.0])])), "series[0] (system.cpu.utilization): 2 timestamps"),
        (_gz(_batch(series=[_series(values=[1.0, float("nan")])])), "a value is NaN or infinite"),
        (_gz(_batch(series=[_series(values=[float("inf"), 1.0])])), "a value is NaN or infinite"),
        (_gz(_batch(series=[_series(timestamps=[float("nan"), 1.0])])), "a timestamp is NaN or infinite"),
        (_gz(_batch(series=[_series(values=[float("inf"), float("-inf")])])), "a value is NaN or infinite"),
        (
            _gz(_batch(series=[_series(), _series(monotonic=True)])),
            "series[1] (system.cpu.utilization): only",
        ),
    ],
)
def test_bad_bodies_raise_wire_error_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(WireError) as caught:
        _decode(body)
    assert type(caught.value) is WireError
    assert message in caught.value.reason


def test_gzip_bomb_stops_at_the_cap_without_inflating_whole() -> None:
    bomb = _gzip(b"\0" * (16 * CAP))  # 16 MiB of zeros in ~16 KiB
    assert len(bomb) < CAP // 8
    with pytest.raises(PayloadTooLargeError) as caught:
        _decode(bomb)
    assert caught.value.limit == CAP and "larger than the limit of 1048576 bytes" in caught.value.reason


def test_cap_counts_across_gzip_members_and_applies_uncompressed() -> None:
    raw = msgspec.msgpack.encode(_batch())
    with pytest.raises(PayloadTooLargeError):
        _decode(_gzip(raw) + _gzip(raw), cap=len(raw) + 1)
    assert _decode(_gzip(raw), cap=len(raw)).batch_id == "b-1"
    with pytest.raises(PayloadTooLargeError):
        _decode(raw, encoding=None, cap=len(raw) - 1)


@pytest.mark.parametrize("encoding", ["br", "deflate", "snappy"])
def test_unsupported_encoding(encoding: str) -> None:
    with pytest.raises(UnsupportedEncodingError) as caught:
        _decode(zlib.compress(b"x"), encoding=encoding)
    assert caught.value.encoding == encoding


def test_encoding_header_is_case_insensitive() -> None:
    assert _decode(_gz(_batch()), encoding=" GZIP ").batch_id == "b-1"


def test_batch_from_points_groups_by_name_and_attributes() -> None:
    user, system = {"cpu.mode": "user"}, {"cpu.mode": "system"}
    points = [
        (10.0, gauge("system.cpu.utilization", 0.1, "1", user)),
        (10.0, gauge("system.cpu.utilization", 0.2, "1", system)),
        (10.0, counter("system.disk.io", 100, "By", {"disk.io.direction": "read"})),
        (20.0, gauge("system.cpu.utilization", 0.3, "1", user)),
        (20.0, gauge("system.cpu.utilization", float("nan"), "1", system)),  # dropped
        (20.0, counter("system.disk.io", 150, "By", {"disk.io.direction": "read"})),
    ]
    batch = batch_from_points("b-9", "host-1", {"host.name": "h"}, points)
    assert batch.batch_id == "b-9" and batch.node_id == "host-1" and batch.version == WIRE_VERSION
    assert batch.series == [
        SeriesData("system.cpu.utilization", "1", "gauge", False, user, [10.0, 20.0], [0.1, 0.3]),
        SeriesData("system.cpu.utilization", "1", "gauge", False, system, [10.0], [0.2]),
        SeriesData(
            "system.disk.io", "By", "sum", True, {"disk.io.direction": "read"}, [10.0, 20.0], [100, 150]
        ),
    ]
    assert _decode(encode_batch(batch)) == msgspec.structs.replace(batch, version=COLUMNS_VERSION)


def test_batch_from_points_refuses_a_series_that_changes_unit() -> None:
    points = [(1.0, gauge("m", 1, "By")), (2.0, gauge("m", 2, "s"))]
    with pytest.raises(ValueError, match="unit/kind changed"):
        batch_from_points("b", "h", {}, points)


def test_batch_from_points_with_no_points_is_an_empty_batch() -> None:
    batch = batch_from_points("b", "h", {}, [])
    assert batch.series == [] and _decode(encode_batch(batch)).point_count == 0


def test_huge_finite_values_whose_sum_overflows_are_accepted() -> None:
    """The fast finite check sums the values; an overflowing sum of finite values is still valid."""
    batch = _decode(_gz(_batch(series=[_series(values=[1.7e308, 1.7e308])])))
    assert batch.series[0].values == [1.7e308, 1.7e308]


def _v2(**series_over: Any) -> bytes:
    """A version-2 body with one series, its columns given as raw bytes (or overridden)."""
    series = {
        "name": "system.cpu.utilization",
        "unit": "1",
        "kind": "gauge",
        "monotonic": False,
        "attributes": {"cpu.mode": "user"},
        "timestamps": struct.pack("<2d", 1000.0, 1010.0),
        "values": struct.pack("<2d", 0.25, 1 / 3),
        **series_over,
    }
    return _gz({"batch_id": "b-2", "node_id": "host-1", "resource": {}, "series": [series], "version": 2})


def test_version_2_columns_decode_to_the_same_batch_and_to_arrays() -> None:
    batch, columns = decode_with_columns(_v2(), content_encoding="gzip", max_decompressed=CAP)
    assert batch.version == COLUMNS_VERSION
    assert batch.series[0].timestamps == [1000.0, 1010.0] and batch.series[0].values == [0.25, 1 / 3]
    assert columns is not None
    assert columns.lengths.tolist() == [2]
    assert columns.timestamps.tolist() == [1000.0, 1010.0] and columns.values.tolist() == [0.25, 1 / 3]
    _, none = decode_with_columns(_gz(_batch()), content_encoding="gzip", max_decompressed=CAP)
    assert none is None  # version 1 has no arrays to hand over


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"values": struct.pack("<d", 1.0)}, "2 timestamps but 1 values"),
        ({"values": b"\x00" * 12}, "whole float64s"),
        (
            {"values": struct.pack("<2d", 1.0, float("nan"))},
            "series[0] (system.cpu.utilization): a value is NaN",
        ),
        ({"timestamps": struct.pack("<2d", float("inf"), 1.0)}, "a timestamp is NaN or infinite"),
        ({"monotonic": True}, "only a sum can be monotonic"),
        ({"values": [1.0, 2.0]}, "Expected `bytes`, got `array`"),
    ],
)
def test_bad_version_2_bodies_say_what_is_wrong(over: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError) as caught:
        _decode(_v2(**over))
    assert message in caught.value.reason
