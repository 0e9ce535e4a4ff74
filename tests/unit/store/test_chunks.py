"""The chunk codec: bit-exact round trips over the shapes metrics take, and what it refuses."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest

from infragent.store.metrics.chunk_rows import split_batch
from infragent.store.metrics.chunks import (
    COMPRESS_MIN_POINTS,
    ChunkFormatError,
    decode_chunk,
    encode_chunk,
)

T0 = 1_764_000_000.0  # a recent, hour-aligned unix time


def _bits(xs: list[float]) -> list[int]:
    return [struct.unpack("<q", struct.pack("<d", x))[0] for x in xs]


def _regular(n: int, step: float = 10.0) -> list[float]:
    return [T0 + i * step for i in range(n)]


_rnd = random.Random(7)
CASES: dict[str, tuple[list[float], list[float]]] = {
    "one point": ([T0], [0.5]),
    "two points": ([T0, T0 + 10], [1.0, 2.0]),
    "regular gauge, 6 decimals": (_regular(60), [round(_rnd.random(), 6) for _ in range(60)]),
    "counter": (_regular(60), [1e12 + 4096.0 * i for i in range(60)]),
    "integers, negative and zero": (_regular(5), [0.0, -1.0, 5.0, -300000.0, 2.0**40]),
    "negative zero": (_regular(3), [-0.0, 0.0, -0.0]),
    "not decimal (1/3)": (_regular(4), [1 / 3, 2 / 3, math.pi, 0.1]),
    "mixed decimal and not": (_regular(3), [0.25, 1 / 3, 7.0]),
    "huge and tiny": (_regular(4), [1e300, -1e-300, 5e-324, 1.7976931348623157e308]),
    "non-monotonic timestamps": ([T0 + 30, T0, T0 + 20, T0 + 10, T0], [1.0, 2.0, 3.0, 4.0, 5.0]),
    "jittered milliseconds": ([T0 + i * 10 + _rnd.randint(-50, 50) / 1000 for i in range(50)], [1.0] * 50),
    "sub-millisecond timestamps": ([T0 + 0.0001, T0 + 0.0002, T0 + 1 / 3], [1.0, 2.0, 3.0]),
    "timestamps before 1970": ([-86400.5, -1.0, 0.0], [1.0, 2.0, 3.0]),
    "large step": (_regular(3, step=1e9), [1.0, 2.0, 3.0]),
    "compressed (many points)": (
        _regular(COMPRESS_MIN_POINTS + 1),
        [round(_rnd.uniform(0, 100), 2) for _ in range(COMPRESS_MIN_POINTS + 1)],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_bit_exact_and_keeps_order(case: str) -> None:
    ts, values = CASES[case]
    data = encode_chunk(ts, values)
    got_ts, got_values = decode_chunk(data)
    assert _bits(got_ts.tolist()) == _bits(ts)
    assert _bits(got_values.tolist()) == _bits(values)


@pytest.mark.parametrize("compress", [True, False])
def test_forced_compression_either_way_round_trips(compress: bool) -> None:
    ts, values = CASES["regular gauge, 6 decimals"]
    data = encode_chunk(ts, values, compress=compress)
    assert data[0] == int(compress)
    assert _bits(decode_chunk(data)[1].tolist()) == _bits(values)


def test_regular_series_cost_a_few_bytes_per_point() -> None:
    """The point of the codec: timestamps vanish, 6-decimal values take 3 bytes, counters 2."""
    ts, values = CASES["regular gauge, 6 decimals"]
    assert len(encode_chunk(ts, values)) <= 40 + 3 * len(ts)
    ts, counter = CASES["counter"]
    assert len(encode_chunk(ts, counter)) <= 40 + 2 * len(ts)


def test_empty_or_unequal_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one or more"):
        encode_chunk([], [])
    with pytest.raises(ValueError, match="equal length"):
        encode_chunk([T0], [1.0, 2.0])


@pytest.mark.parametrize(
    "data",
    [b"", b"\x07", b"\x00\x05\x00\x00\x00", encode_chunk([T0, T0 + 1], [1.0, 2.0]) + b"x", b"\x01not zlib"],
    ids=["empty", "unknown flags", "truncated", "trailing bytes", "bad zlib"],
)
def test_malformed_chunks_raise_a_format_error(data: bytes) -> None:
    with pytest.raises(ChunkFormatError):
        decode_chunk(data)


def test_nan_is_not_a_value_the_codec_promises_to_keep() -> None:
    """NaN never reaches the store (``wire.decode_batch`` refuses it); raw float64 still carries it."""
    _, values = decode_chunk(encode_chunk([T0, T0 + 1], [float("nan"), 1.0]))
    assert math.isnan(values[0]) and values[1] == 1.0


def test_split_batch_cuts_at_hours_sorts_by_time_and_summarizes() -> None:
    ts = [T0 + 3590.0, T0 + 10.0, T0 + 3610.0, T0 + 10.0]  # unsorted, crosses an hour, a tied time
    values = [4.0, 1.0, 9.0, 2.0]
    rows = split_batch([(7, ts, values), (8, [], []), (9, [T0], [0.5])])
    assert [(r.series_id, r.start_ts, r.end_ts, r.n) for r in rows] == [
        (7, T0 + 10.0, T0 + 3590.0, 3),
        (7, T0 + 3610.0, T0 + 3610.0, 1),
        (9, T0, T0, 1),
    ]
    first = rows[0]
    assert (first.vmin, first.vmax, first.vsum, first.vlast) == (1.0, 4.0, 7.0, 4.0)
    got_ts, got_values = decode_chunk(first.data)
    assert got_ts.tolist() == [T0 + 10.0, T0 + 10.0, T0 + 3590.0]
    assert got_values.tolist() == [1.0, 2.0, 4.0]  # equal times keep their input order
    assert split_batch([]) == [] and split_batch([(1, [], [])]) == []


def test_split_batch_matches_per_chunk_encoding() -> None:
    """The vectorized batch path and the one-chunk path agree on every chunk's bytes."""
    rnd = random.Random(3)
    series = [(i, _regular(90), [round(rnd.uniform(-1e6, 1e6), i % 7) for _ in range(90)]) for i in range(20)]
    for row in split_batch(series):
        ts, values = decode_chunk(row.data)
        assert row.data == encode_chunk(ts.tolist(), values.tolist())
        assert row.n == len(ts) and row.vlast == values[-1]
        assert row.vmin == values.min() and row.vmax == values.max()
        assert row.vsum == pytest.approx(float(np.sum(values)))


@pytest.mark.parametrize("case", list(CASES))
def test_raw_split_decodes_to_the_same_points_as_dense(case: str) -> None:
    """Ingest's raw layout and the compactor's dense one hold the same samples and summaries."""
    ts, values = CASES[case]
    raw = split_batch([(1, ts, values)], dense=False)
    dense = split_batch([(1, ts, values)])
    assert [r.data[0] for r in raw] == [2] * len(raw)
    for r, d in zip(raw, dense, strict=True):
        got_ts, got_values = decode_chunk(r.data)
        want_ts, want_values = decode_chunk(d.data)
        assert _bits(got_ts.tolist()) == _bits(want_ts.tolist())
        assert _bits(got_values.tolist()) == _bits(want_values.tolist())
        assert len(r.data) == 5 + 16 * r.n
        assert (r.start_ts, r.end_ts, r.n, r.vlast) == (d.start_ts, d.end_ts, d.n, d.vlast)


@pytest.mark.parametrize(
    "data", [b"\x02", b"\x02\x02\x00\x00\x00" + bytes(31), b"\x02\x01\x00\x00\x00" + bytes(17)]
)
def test_raw_chunks_of_the_wrong_size_are_refused(data: bytes) -> None:
    with pytest.raises(ChunkFormatError):
        decode_chunk(data)
