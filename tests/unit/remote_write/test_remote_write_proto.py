"""The hand-written WriteRequest encoder against hand-worked bytes, its decoder, and the naming rules."""

from __future__ import annotations

import math
import random
import struct

import pytest

from infragent.remote_write.proto import (
    LabelCache,
    ProtoError,
    TimeSeries,
    decode_write_request,
    encode_labels,
    encode_write_request,
    sanitize_label_name,
    sanitize_metric_name,
    series_from_batch,
    series_labels,
)
from infragent.wire import MetricBatch, SeriesData

# WriteRequest{timeseries: [{labels: [__name__="up", job="a"], samples: [{value: 1.0, timestamp: 1000}]}]}
# Worked out field by field (tag byte = field number << 3 | wire type):
UP_LABEL = bytes([0x0A, 0x08]) + b"__name__" + bytes([0x12, 0x02]) + b"up"  # Label, 14 bytes
JOB_LABEL = bytes([0x0A, 0x03]) + b"job" + bytes([0x12, 0x01]) + b"a"  # Label, 8 bytes
SAMPLE = (
    bytes([0x09])  # value: field 1, fixed64
    + bytes([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x3F])  # 1.0, IEEE 754 little-endian
    + bytes([0x10, 0xE8, 0x07])  # timestamp: field 2, varint 1000 = 0b111_1101000 -> e8 07
)  # Sample, 12 bytes
SERIES = (
    bytes([0x0A, 14])
    + UP_LABEL  # TimeSeries.labels (field 1)
    + bytes([0x0A, 8])
    + JOB_LABEL
    + bytes([0x12, 12])
    + SAMPLE  # TimeSeries.samples (field 2)
)  # TimeSeries, 40 bytes
EXPECTED = bytes([0x0A, 40]) + SERIES  # WriteRequest.timeseries (field 1)


def test_encoding_matches_hand_computed_bytes() -> None:
    series = TimeSeries((("__name__", "up"), ("job", "a")), [1000], [1.0])
    assert encode_write_request([series]) == EXPECTED
    assert EXPECTED.hex() == "".join(
        [
            "0a28",  # WriteRequest.timeseries: 40 bytes follow
            "0a0e",  # TimeSeries.labels: 14 bytes
            "0a085f5f6e616d655f5f",  # Label.name "__name__"
            "12027570",  # Label.value "up"
            "0a08",  # TimeSeries.labels: 8 bytes
            "0a036a6f62",  # Label.name "job"
            "120161",  # Label.value "a"
            "120c",  # TimeSeries.samples: 12 bytes
            "09000000000000f03f",  # Sample.value 1.0
            "10e807",  # Sample.timestamp 1000
        ]
    )


def test_negative_timestamp_is_ten_byte_twos_complement_and_zero_fields_are_written() -> None:
    body = encode_write_request([TimeSeries((("__name__", "x"),), [-1, 0], [-0.0, 0.0])])
    minus_one = bytes([0xFF] * 9 + [0x01])
    assert bytes([0x12, 20, 0x09]) + struct.pack("<d", -0.0) + bytes([0x10]) + minus_one in body
    assert bytes([0x12, 11, 0x09]) + struct.pack("<d", 0.0) + bytes([0x10, 0x00]) in body
    [decoded] = decode_write_request(body)
    assert list(decoded.timestamps_ms) == [-1, 0]
    assert math.copysign(1.0, decoded.values[0]) == -1.0


def test_empty_request_is_empty_bytes() -> None:
    assert encode_write_request([]) == b""
    assert decode_write_request(b"") == []


def test_round_trip_of_random_series() -> None:
    rng = random.Random(11)
    series = [
        TimeSeries(
            tuple(
                sorted(
                    {f"l{j}": "v" * rng.randrange(1, 300) + "é" for j in range(rng.randrange(1, 6))}.items()
                )
            ),
            [rng.randrange(-(2**63), 2**63) for _ in range(n)],
            [rng.choice([rng.uniform(-1e300, 1e300), rng.random(), math.inf, -math.inf]) for _ in range(n)],
        )
        for n in (0, 1, 2, 130, 1000)
    ]
    decoded = decode_write_request(encode_write_request(series))
    assert [(s.labels, list(s.timestamps_ms), list(s.values)) for s in decoded] == [
        (s.labels, list(s.timestamps_ms), list(s.values)) for s in series
    ]


def test_nan_survives_bit_for_bit() -> None:
    [decoded] = decode_write_request(
        encode_write_request([TimeSeries((("__name__", "x"),), [1], [math.nan])])
    )
    assert math.isnan(decoded.values[0])


def test_decoder_skips_unknown_fields() -> None:
    unknown = bytes([0x1A, 0x03]) + b"abc"  # field 3 (metadata), length-delimited
    assert decode_write_request(unknown + EXPECTED + unknown)[0].labels == (("__name__", "up"), ("job", "a"))


@pytest.mark.parametrize("cut", [1, 2, 10, 30, len(EXPECTED) - 1])
def test_decoder_refuses_truncated_input(cut: int) -> None:
    with pytest.raises(ProtoError):
        decode_write_request(EXPECTED[:cut])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("system.cpu.utilization", "system_cpu_utilization"),
        ("system.cpu.load_average.1m", "system_cpu_load_average_1m"),
        ("http_requests:rate5m", "http_requests:rate5m"),
        ("1m.load", "_1m_load"),
        ("naïve-name", "na_ve_name"),
        ("already_fine", "already_fine"),
    ],
)
def test_metric_names_follow_prometheus_rules(name: str, expected: str) -> None:
    assert sanitize_metric_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu.mode", "cpu_mode"),
        ("network.interface.name", "network_interface_name"),
        ("a:b", "a_b"),  # colons are for metric names only
        ("1st", "key_1st"),
        ("__name__", "key__name__"),  # "__" is Prometheus' own
        ("_private", "_private"),
        ("", ""),
    ],
)
def test_label_names_follow_prometheus_rules(name: str, expected: str) -> None:
    assert sanitize_label_name(name) == expected


def test_series_labels_are_sorted_and_carry_host_instance_tenant() -> None:
    labels = series_labels(
        "system.cpu.utilization", {"cpu.mode": "user", "cpu": "0"}, node_id="web-1", tenant="acme"
    )
    assert labels == (
        ("__name__", "system_cpu_utilization"),
        ("cpu", "0"),
        ("cpu_mode", "user"),
        ("host", "web-1"),
        ("instance", "web-1"),
        ("tenant", "acme"),
    )


def test_attributes_cannot_overwrite_the_servers_labels() -> None:
    labels = dict(
        series_labels(
            "m",
            {"tenant": "other", "host": "h9", "instance": "i9", "__name__": "evil"},
            node_id="web-1",
            tenant="acme",
        )
    )
    assert labels["tenant"] == "acme"
    assert labels["host"] == labels["instance"] == "web-1"
    assert labels["__name__"] == "m"
    assert labels["exported_tenant"] == "other"
    assert labels["exported_host"] == "h9"
    assert labels["exported_instance"] == "i9"
    assert labels["key__name__"] == "evil"


def test_colliding_attributes_are_joined_and_empty_ones_dropped() -> None:
    labels = dict(
        series_labels(
            "m", {"cpu.mode": "user", "cpu_mode": "x", "empty": "", "": "v"}, node_id="h", tenant="t"
        )
    )
    assert labels["cpu_mode"] == "user;x"  # in the order of the original names: "cpu.mode" < "cpu_mode"
    assert "empty" not in labels
    assert "" not in labels


def _batch(*series: SeriesData, node_id: str = "web-1") -> MetricBatch:
    return MetricBatch(batch_id="b-1", node_id=node_id, resource={"host.name": "web-1"}, series=list(series))


def _series(name: str, timestamps: list[float], values: list[float], **attributes: str) -> SeriesData:
    return SeriesData(
        name=name,
        unit="1",
        kind="gauge",
        monotonic=False,
        attributes=attributes,
        timestamps=timestamps,
        values=values,
    )


def test_series_from_batch_rounds_to_milliseconds_and_skips_empty_series() -> None:
    batch = _batch(
        _series("a.b", [1_700_000_000.0, 1_700_000_000.0015, 1_700_000_010.123], [1.0, 2.0, 3.5]),
        _series("empty", [], []),
    )
    [series] = series_from_batch("acme", batch)
    assert dict(series.labels)["__name__"] == "a_b"
    assert list(series.timestamps_ms) == [1_700_000_000_000, 1_700_000_000_002, 1_700_000_010_123]
    assert list(series.values) == [1.0, 2.0, 3.5]


def test_series_from_batch_leaves_out_timestamps_beyond_int64_milliseconds() -> None:
    batch = _batch(
        _series("a", [1.0, 1e300, 2.0], [1.0, 2.0, 3.0]),
        _series("b", [-1e300], [1.0]),
    )
    [series] = series_from_batch("acme", batch)
    assert list(series.timestamps_ms) == [1000, 2000]
    assert list(series.values) == [1.0, 3.0]


def test_label_cache_returns_the_mapping_and_its_encoding_and_stays_bounded() -> None:
    cache = LabelCache(max_entries=2)
    labels, encoded = cache.get("system.cpu.utilization", {"cpu.mode": "user"}, "web-1", "acme")
    assert labels == series_labels(
        "system.cpu.utilization", {"cpu.mode": "user"}, node_id="web-1", tenant="acme"
    )
    assert encoded == encode_labels(labels)
    assert cache.get("system.cpu.utilization", {"cpu.mode": "user"}, "web-1", "acme")[1] is encoded  # a hit
    assert cache.get("m", {}, "web-1", "other")[0] != labels  # the tenant is part of the key
    assert len(cache) == 2
    cache.get("m", {}, "web-2", "acme")
    assert len(cache) == 1  # cleared when full, then refilled
