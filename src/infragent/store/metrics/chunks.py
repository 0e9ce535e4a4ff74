"""Chunk codec: a series' samples of one batch (and one clock hour) as one compact ``bytes`` value.

Pure: no I/O, no clock. ``chunk_rows.py`` cuts a batch into chunks and encodes them here; ``pg.py``
and ``sqlite.py`` store the rows, and the read path (``reads.py``) decodes them.

Why chunks and not a row per sample: a row costs ~40 bytes of PostgreSQL overhead (tuple header,
index entry) before its 16 bytes of payload, and measured COPY rates are per row (0.15M rows/s
indexed on this machine). One row per (series, batch, hour) pays that once per ~60 samples.

Why this encoding (measured on 6,000-point batches, see docs/architecture.md "Metric storage"):

* Timestamps that are whole milliseconds (every agent's are) become int64 ms and are stored as
  first value, first delta and delta-of-deltas; a regular series' delta-of-deltas are all zero and
  take **no bytes at all** (width 0).
* Values that are exact decimals (``0.125``, ``42``, ``0.731204``) become ``round(v * 10**e)`` for
  the smallest ``e`` that round-trips **bit-exactly**, then the plain integers or their deltas
  (counters), whichever needs fewer bytes, packed at the smallest width that holds them
  (VictoriaMetrics does the same decimal trick). Anything else is stored as raw float64.
* zlib is *not* applied to small chunks: ``zlib.compress`` of a 100-byte input costs ~67 µs here
  (its allocation dominates). Chunks of at least ``COMPRESS_MIN_POINTS`` points (a compacted hour
  of 10 s data has 360) are deflated, and kept deflated only where that is smaller: measured on
  ``bench/datagen.py``'s hour chunks, counters go from 1.09 to 0.11 bytes a point, 2-decimal
  percentages 2.10 to 2.06, 6-decimal random values 3.10 to 3.03.

The work is vectorized over the whole batch with numpy (exponent search, packing), so the Python
loop runs once per chunk, not once per sample.

Why a second, *raw* layout (flags 2): ingest writes each batch's chunks raw (the float64 arrays as
they came, sliced, no search for exponents or widths) because the compactor (``store/
compaction.py``) re-encodes every closed series-hour densely anyway; the dense encoding costs
~3 ms of CPU per 6,000-point batch, the raw one a few hundred µs.

Layout (little-endian)::

    chunk   = flags:u8  body            flags 0 or 1 (bit 0: body is zlib-deflated)
            | 2:u8  n:u32  ts:f64[n]  values:f64[n]         (raw, as ingested)
    body    = n:u32  ts_block  value_block
    ts_block    = 0:u8  first_ms:i64  delta_ms:i64  width:u8  dod[n-2] (width bytes each, signed)
                | 1:u8  raw float64[n]
    value_block = 0:u8  exponent:u8  delta:u8  width:u8  first:i64  ints[n or n-1] (width bytes)
                | 1:u8  raw float64[n]
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from infragent.errors import StoreError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

COMPRESS_MIN_POINTS = 128
HOUR = 3600.0
MAX_EXPONENT = 9  # 1e-9 resolution; beyond that values are rarely decimals and raw float64 is smaller
_EXACT_INT = 2.0**53
_SCALES = np.array([10.0**e for e in range(MAX_EXPONENT + 1)])  # exact powers, as ``decode_chunk`` uses
_WIDTH_LIMITS = np.array([0, 2**7, 2**15, 2**23, 2**31, 2**39, 2**47, 2**55], dtype=np.float64)

_BODY_HEAD = struct.Struct("<I")
_TS_INT = struct.Struct("<BqqB")
_VAL_INT = struct.Struct("<BBBBq")
_TS_RAW = 1
_RAW = 2
_RAW_FLAG = b"\x02"
_VAL_RAW = 1
_COLUMNS = np.arange(8)
#: flags, then body head, ts block and value block of the common case, exactly as the structs pack them
_HEADER = np.dtype(
    [
        ("flags", "u1"),
        ("n", "<u4"),
        ("ts_kind", "u1"),
        ("first_ms", "<i8"),
        ("d0", "<i8"),
        ("ts_width", "u1"),
        ("value_kind", "u1"),
        ("exponent", "u1"),
        ("is_delta", "u1"),
        ("width", "u1"),
        ("first", "<i8"),
    ]
)
_VALUE_HEADER_AT = 1 + _BODY_HEAD.size + _TS_INT.size  # where the value block starts in _HEADER


class ChunkFormatError(StoreError, ValueError):
    """Stored bytes that are not a chunk this codec wrote (corruption or a newer format)."""


def _width(max_abs: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Bytes of a signed integer holding ``±max_abs`` (0 when everything is zero)."""
    width: npt.NDArray[np.intp] = np.searchsorted(_WIDTH_LIMITS, max_abs, side="right")
    width[max_abs == 0] = 0
    return np.minimum(width, 8)


def _packed(ints: I64) -> npt.NDArray[np.uint8]:
    """Each int64 as its 8 little-endian bytes, one row per value; a prefix of a row is its narrow form."""
    return ints.astype("<i8", copy=False).view(np.uint8).reshape(-1, 8)


def _unpack(buf: bytes, offset: int, count: int, width: int) -> tuple[I64, int]:
    """Read ``count`` signed little-endian integers of ``width`` bytes, sign-extended to int64."""
    if width == 0:
        return np.zeros(count, dtype=np.int64), offset
    end = offset + count * width
    if end > len(buf):
        raise ChunkFormatError("chunk is truncated")
    wide = np.zeros((count, 8), dtype=np.uint8)
    wide[:, :width] = np.frombuffer(buf, dtype=np.uint8, count=count * width, offset=offset).reshape(
        -1, width
    )
    shift = 64 - 8 * width
    out: I64 = (wide.view("<i8").reshape(-1) << shift) >> shift
    return out, end


def _segment_max(x: F64, starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]) -> F64:
    """Per-segment maximum of ``x``; 0 for empty segments (``reduceat`` would repeat a neighbour)."""
    if len(x) == 0:
        return np.zeros(len(starts))
    out: F64 = np.maximum.reduceat(x, np.minimum(starts, len(x) - 1))
    out[lengths == 0] = 0.0
    return out


def encode_segments(ts: F64, values: F64, bounds: npt.NDArray[np.intp]) -> list[bytes]:
    """Encode ``ts[bounds[i]:bounds[i+1]]`` / ``values[…]`` as chunk ``i``; every segment non-empty."""
    with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow the scaling: raw float64
        return _encode_segments(ts, values, bounds)


def _encode_segments(ts: F64, values: F64, bounds: npt.NDArray[np.intp]) -> list[bytes]:
    starts = bounds[:-1]
    lengths = np.diff(bounds)
    first = np.zeros(len(ts), dtype=bool)
    first[starts] = True
    second = np.zeros(len(ts), dtype=bool)
    second[starts[lengths > 1] + 1] = True

    # timestamps: whole milliseconds -> first, delta, delta-of-deltas
    ms_f = np.rint(ts * 1000.0) + 0.0
    ts_ok = (np.abs(ms_f) < _EXACT_INT) & ((ms_f / 1000.0).view(np.int64) == ts.view(np.int64))
    ts_int_seg = np.logical_and.reduceat(ts_ok, starts) if len(ts) else np.zeros(0, dtype=bool)
    ms = np.where(ts_ok, ms_f, 0.0).astype(np.int64)
    delta = np.diff(ms, prepend=ms[:1])
    dod = np.diff(delta, prepend=delta[:1])
    dod_abs = np.where(first | second, 0.0, np.abs(dod.astype(np.float64)))
    ts_width = _width(_segment_max(dod_abs, starts, lengths))
    ts_rows = _packed(dod)

    # values: the smallest decimal exponent that round-trips every value of the segment bit-exactly
    exp_seg = np.full(len(starts), -1, dtype=np.int64)
    for e in range(MAX_EXPONENT + 1):
        pending = exp_seg < 0
        if not pending.any():
            break
        scale = _SCALES[e]
        k = np.rint(values * scale) + 0.0  # -0.0 becomes 0.0, fails the check: stored raw
        ok = (np.abs(k) < _EXACT_INT) & ((k / scale).view(np.int64) == values.view(np.int64))
        seg_ok = np.logical_and.reduceat(ok, starts)
        exp_seg[pending & seg_ok] = e
    exp_elem = np.repeat(exp_seg, lengths)
    ints_f = np.where(exp_elem >= 0, np.rint(values * _SCALES[np.maximum(exp_elem, 0)]), 0.0)
    ints = ints_f.astype(np.int64)
    diffs = np.diff(ints, prepend=ints[:1])
    plain_w = _width(_segment_max(np.abs(ints_f), starts, lengths))
    delta_w = _width(_segment_max(np.where(first, 0.0, np.abs(diffs.astype(np.float64))), starts, lengths))
    use_delta = delta_w < plain_w
    int_rows = _packed(ints)
    diff_rows = _packed(diffs)

    # The common case (millisecond timestamps, decimal values) is assembled for all chunks at once:
    # fixed headers as one structured array, payloads as the leading ``width`` bytes of each row.
    fast = ts_int_seg & (exp_seg >= 0)
    pos = np.arange(len(ts)) - np.repeat(starts, lengths)
    fast_elem = np.repeat(fast, lengths)
    delta_elem = np.repeat(use_delta, lengths)
    value_w = np.where(use_delta, delta_w, plain_w)
    hdr = np.zeros(len(starts), dtype=_HEADER)
    hdr["n"] = lengths
    hdr["first_ms"] = ms[starts]
    hdr["d0"] = np.where(lengths > 1, delta[np.minimum(starts + 1, len(ts) - 1)], 0)
    hdr["ts_width"] = ts_width
    hdr["exponent"] = np.maximum(exp_seg, 0)
    hdr["is_delta"] = use_delta
    hdr["width"] = value_w
    hdr["first"] = np.where(use_delta, ints[starts], 0)
    head = hdr.tobytes()
    size, mid = _HEADER.itemsize, _VALUE_HEADER_AT
    ts_w = np.where(fast_elem & (pos >= 2), np.repeat(ts_width, lengths), 0)
    ts_bytes, ts_off = _payload(ts_rows, ts_w, starts)
    val_w = np.where(fast_elem & (~delta_elem | (pos >= 1)), np.repeat(value_w, lengths), 0)
    val_bytes, val_off = _payload(_packed(np.where(delta_elem, diffs, ints)), val_w, starts)

    out: list[bytes] = []
    for i, is_fast in enumerate(fast.tolist()):
        if is_fast:
            at = i * size
            out.append(
                head[at : at + mid]
                + ts_bytes[ts_off[i] : ts_off[i + 1]]
                + head[at + mid : at + size]
                + val_bytes[val_off[i] : val_off[i + 1]]
            )
            continue
        a, n = int(starts[i]), int(lengths[i])
        b = a + n
        parts = [b"\x00", _BODY_HEAD.pack(n)]
        if ts_int_seg[i]:
            w = int(ts_width[i])
            d0 = int(delta[a + 1]) if n > 1 else 0
            parts.append(_TS_INT.pack(0, int(ms[a]), d0, w))
            if w and n > 2:
                parts.append(ts_rows[a + 2 : b, :w].tobytes())
        else:
            parts.append(bytes([_TS_RAW]) + ts[a:b].astype("<f8").tobytes())
        e = int(exp_seg[i])
        if e >= 0:
            w = int(value_w[i])
            rows = diff_rows[a + 1 : b] if use_delta[i] else int_rows[a:b]
            parts.append(_VAL_INT.pack(0, e, int(use_delta[i]), w, int(ints[a]) if use_delta[i] else 0))
            if w:
                parts.append(rows[:, :w].tobytes())
        else:
            parts.append(bytes([_VAL_RAW]) + values[a:b].astype("<f8").tobytes())
        out.append(b"".join(parts))
    for i in np.flatnonzero(lengths >= COMPRESS_MIN_POINTS).tolist():
        packed = b"\x01" + zlib.compress(out[i][1:], 6)
        if len(packed) < len(out[i]):
            out[i] = packed
    return out


def _payload(
    rows: npt.NDArray[np.uint8], widths: npt.NDArray[np.int64], starts: npt.NDArray[np.intp]
) -> tuple[bytes, list[int]]:
    """The first ``widths[j]`` bytes of every row ``j``, concatenated; and each segment's offsets.

    One boolean mask over the (rows x 8) byte matrix: measured faster here than gathering one
    width at a time or slicing segment by segment.
    """
    data = rows[widths[:, None] > _COLUMNS].tobytes()
    per_segment = np.add.reduceat(widths, starts) if len(widths) else np.zeros(0, dtype=np.int64)
    return data, np.concatenate(([0], np.cumsum(per_segment))).tolist()


def encode_chunk(ts: Sequence[float], values: Sequence[float], *, compress: bool | None = None) -> bytes:
    """One chunk from parallel sequences, in their given order (which need not be sorted)."""
    if len(ts) != len(values) or not ts:
        raise ValueError("a chunk needs one or more (timestamp, value) pairs of equal length")
    t = np.asarray(ts, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    data = encode_segments(t, v, np.array([0, len(t)], dtype=np.intp))[0]
    if compress is None or compress == (data[0] == 1):
        return data
    body = zlib.decompress(data[1:]) if data[0] == 1 else data[1:]
    return b"\x01" + zlib.compress(body, 6) if compress else b"\x00" + body


def encode_raw_segments(ts: F64, values: F64, bounds: npt.NDArray[np.intp]) -> list[bytes]:
    """Chunk ``i`` as ``2, n, ts[a:b], values[a:b]``: byte slices of two buffers, no per-point work."""
    tb = ts.astype("<f8", copy=False).tobytes()
    vb = values.astype("<f8", copy=False).tobytes()
    pack = _BODY_HEAD.pack
    edges = (bounds * 8).tolist()
    return [b"".join((_RAW_FLAG, pack((b - a) >> 3), tb[a:b], vb[a:b])) for a, b in pairwise(edges)]


def decode_chunk(data: bytes) -> tuple[F64, F64]:
    """The chunk's timestamps and values, bit-exact and in stored order."""
    if not data:
        raise ChunkFormatError("empty chunk")
    if data[0] == _RAW:
        return _decode_raw(data)
    if data[0] == 1:
        try:
            buf = zlib.decompress(data[1:])
        except zlib.error as exc:
            raise ChunkFormatError(f"chunk does not inflate: {exc}") from None
    elif data[0] == 0:
        buf = data[1:]
    else:
        raise ChunkFormatError(f"unknown chunk flags {data[0]}")
    try:
        (n,) = _BODY_HEAD.unpack_from(buf, 0)
        off = _BODY_HEAD.size
        if buf[off] == _TS_RAW:
            ts = np.frombuffer(buf, dtype="<f8", count=n, offset=off + 1).astype(np.float64)
            off += 1 + 8 * n
        else:
            _, first_ms, d0, w = _TS_INT.unpack_from(buf, off)
            dod, off = _unpack(buf, off + _TS_INT.size, max(n - 2, 0), w)
            deltas = np.concatenate(([d0], d0 + np.cumsum(dod))) if n > 1 else np.zeros(0, dtype=np.int64)
            ms = np.concatenate(([first_ms], first_ms + np.cumsum(deltas[: n - 1])))
            ts = ms.astype(np.float64) / 1000.0
        if buf[off] == _VAL_RAW:
            values = np.frombuffer(buf, dtype="<f8", count=n, offset=off + 1).astype(np.float64)
            off += 1 + 8 * n
        else:
            _, e, is_delta, w, first = _VAL_INT.unpack_from(buf, off)
            off += _VAL_INT.size
            if is_delta:
                diffs, off = _unpack(buf, off, n - 1, w)
                ints = np.concatenate(([first], first + np.cumsum(diffs)))
            else:
                ints, off = _unpack(buf, off, n, w)
            values = ints.astype(np.float64) / 10.0**e
    except (struct.error, IndexError, ValueError) as exc:
        raise ChunkFormatError(f"chunk is malformed: {exc}") from None
    if off != len(buf):
        raise ChunkFormatError("chunk has trailing bytes")
    return ts, values


def _decode_raw(data: bytes) -> tuple[F64, F64]:
    if len(data) < 5:
        raise ChunkFormatError("chunk is truncated")
    (n,) = _BODY_HEAD.unpack_from(data, 1)
    if len(data) != 5 + 16 * n:
        raise ChunkFormatError(f"raw chunk of {n} points has {len(data)} bytes, not {5 + 16 * n}")
    ts = np.frombuffer(data, dtype="<f8", count=n, offset=5).astype(np.float64)
    values = np.frombuffer(data, dtype="<f8", count=n, offset=5 + 8 * n).astype(np.float64)
    return ts, values


def decode_chunks(blobs: Sequence[bytes]) -> tuple[F64, F64, npt.NDArray[np.intp]]:
    """Many chunks at once: their timestamps and values concatenated in the given order, and each
    chunk's point count (so ``np.repeat(np.arange(len(blobs)), counts)`` maps points to chunks).

    Why: a read of a day of tick-sized raw chunks decodes thousands of them, and ``decode_chunk``
    costs ~5 µs of Python each. Raw chunks (flags 2) are gathered with numpy fancy indexing over
    their concatenation; dense ones (few: one per series-hour once compacted) go one by one.
    """
    return decode_joined(b"".join(blobs), np.fromiter(map(len, blobs), dtype=np.intp, count=len(blobs)))


def decode_joined(buf: bytes, sizes: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[np.intp]]:
    """``decode_chunks`` of chunks stored back to back in ``buf``, chunk ``i`` being ``sizes[i]`` bytes
    (what PostgreSQL's ``string_agg(data, '')`` and ``array_agg(length(data))`` return)."""
    sizes = np.asarray(sizes, dtype=np.intp)
    count = len(sizes)
    if bool((sizes <= 0).any()):
        raise ChunkFormatError("empty chunk")
    at = np.concatenate(([0], np.cumsum(sizes)))
    if int(at[-1]) != len(buf):
        raise ChunkFormatError("chunk sizes do not add up to the bytes given")
    data = np.frombuffer(buf, dtype=np.uint8)
    raw = data[at[:-1]] == _RAW
    counts = np.zeros(count, dtype=np.intp)
    counts[raw] = (sizes[raw] - 5) // 16
    dense: dict[int, tuple[F64, F64]] = {}
    for i in np.flatnonzero(~raw).tolist():
        dense[i] = decode_chunk(buf[int(at[i]) : int(at[i + 1])])
        counts[i] = len(dense[i][0])
    out_at = np.concatenate(([0], np.cumsum(counts)))
    ts = np.empty(int(out_at[-1]), dtype=np.float64)
    values = np.empty(int(out_at[-1]), dtype=np.float64)
    if raw.any():
        start, n = at[:-1][raw], counts[raw]
        if bool(((sizes[raw] - 5) % 16 != 0).any()):
            raise ChunkFormatError("raw chunk has a length that no point count gives")
        head = data[(start + 1)[:, None] + np.arange(4)].view("<u4").reshape(-1)
        if bool((head != n).any()):
            raise ChunkFormatError("raw chunk's point count does not match its length")
        if not dense and bool((sizes == sizes[0]).all()):  # all raw, all alike (tick data): a table
            table = data.reshape(count, int(sizes[0]))
            k = 8 * int(n[0])
            ts[:] = table[:, 5 : 5 + k].copy().view("<f8").reshape(-1)
            values[:] = table[:, 5 + k :].copy().view("<f8").reshape(-1)
        else:
            first = np.concatenate(([0], np.cumsum(n)))[:-1]
            pos = np.arange(int(n.sum())) - np.repeat(first, n)
            ts_at = np.repeat(start + 5, n) + 8 * pos
            dest = np.repeat(out_at[:-1][raw], n) + pos
            byte = np.arange(8)
            ts[dest] = data[ts_at[:, None] + byte].view("<f8").reshape(-1)
            values[dest] = data[(ts_at + np.repeat(8 * n, n))[:, None] + byte].view("<f8").reshape(-1)
    for i, (t, v) in dense.items():
        ts[out_at[i] : out_at[i + 1]] = t
        values[out_at[i] : out_at[i + 1]] = v
    return ts, values, counts
