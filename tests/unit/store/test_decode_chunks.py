"""``decode_chunks`` / ``decode_joined``: many chunks at once equal ``decode_chunk`` one by one."""

from __future__ import annotations

import numpy as np
import pytest

from infragent.store.metrics.chunk_rows import split_batch
from infragent.store.metrics.chunks import (
    ChunkFormatError,
    decode_chunk,
    decode_chunks,
    decode_joined,
    encode_chunk,
)


def _mixed() -> list[bytes]:
    """Raw and dense chunks of 1 to 20 points, and a deflated one (512 points and up)."""
    rng = np.random.default_rng(5)
    blobs = []
    for i in range(200):
        n = int(rng.integers(1, 20))
        ts = np.sort(1.7e9 + rng.random(n) * 3000).tolist()
        values = np.round(rng.random(n), 3 + i % 3).tolist()
        blobs += [r.data for r in split_batch([(1, ts, values)], dense=i % 3 == 0)]
    blobs.append(encode_chunk([1.7e9 + 10 * i for i in range(600)], [float(i % 7) for i in range(600)]))
    return blobs


def test_many_equal_one_by_one() -> None:
    blobs = _mixed()
    ts, values, counts = decode_chunks(blobs)
    one = [decode_chunk(b) for b in blobs]
    assert counts.tolist() == [len(t) for t, _ in one]
    assert np.array_equal(ts, np.concatenate([t for t, _ in one]))
    assert np.array_equal(values, np.concatenate([v for _, v in one]))
    joined = decode_joined(b"".join(blobs), [len(b) for b in blobs])
    assert all(np.array_equal(a, b) for a, b in zip(joined, (ts, values, counts), strict=True))


def test_nothing_decodes_to_empty_columns() -> None:
    ts, values, counts = decode_chunks([])
    assert len(ts) == len(values) == len(counts) == 0


@pytest.mark.parametrize(
    ("buf", "sizes"),
    [
        (b"\x02\x01\x00\x00\x00" + bytes(15), [20]),  # one point needs 16 bytes after the head
        (b"\x02\x02\x00\x00\x00" + bytes(16), [21]),  # says 2 points, holds 1
        (b"\x02\x01\x00\x00\x00" + bytes(16), [10, 11]),  # sizes cut a chunk in two
        (b"\x02\x01\x00\x00\x00" + bytes(16), [22]),  # sizes past the bytes
        (b"\x07abc", [4]),  # unknown flags
        (b"", [0]),
    ],
)
def test_malformed_input_is_refused(buf: bytes, sizes: list[int]) -> None:
    with pytest.raises(ChunkFormatError):
        decode_joined(buf, sizes)


@pytest.mark.parametrize("points", [1, 3])
def test_raw_chunks_of_one_size_equal_one_by_one(points: int) -> None:
    """An agent's ticks: every chunk raw and the same size (read as one table)."""
    blobs = [
        r.data
        for i in range(50)
        for r in split_batch(
            [(1, [1.7e9 + 10 * (i * points + j) for j in range(points)], [i + j / 8 for j in range(points)])],
            dense=False,
        )
    ]
    ts, values, counts = decode_chunks(blobs)
    assert counts.tolist() == [points] * 50
    assert np.array_equal(ts, np.concatenate([decode_chunk(b)[0] for b in blobs]))
    assert np.array_equal(values, np.concatenate([decode_chunk(b)[1] for b in blobs]))
