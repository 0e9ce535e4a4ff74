"""The agent↔server metric batch: msgspec structs, their encoding, and a decoder that trusts nothing.

Why column-wise (one ``SeriesData`` per series, its timestamps and values as parallel lists): an
agent tick yields hundreds of points over a few dozen series, and a spooled batch covers many ticks.
Sending each series' name, unit and attributes once, then two float arrays, keeps the body small
(msgpack writes floats as 9 bytes, and gzip then folds the repeated timestamps) and lets the server
resolve each series id once per batch rather than once per point.

Why the decoder is defensive: the body arrives from the network. Decompression is bounded
(``zlib.decompressobj`` with ``max_length``), so a small gzip bomb cannot inflate past the cap; the
msgpack is decoded straight into typed structs (msgspec validates while it parses); then the few
rules types cannot say (equal lengths, finite floats, the version) are checked before anything is
stored. Every failure is a ``WireError`` whose message names what is wrong, so the agent's log and
the 4xx body tell the operator which field to look at.

Wire format, version 1::

    HTTP body   = gzip(msgpack(MetricBatch))      Content-Type: application/vnd.infragent.metrics+msgpack
                                                  Content-Encoding: gzip (or absent/identity: raw msgpack)
    MetricBatch = {batch_id, node_id, resource: {str: str}, series: [SeriesData], version: 1}
    SeriesData  = {name, unit, kind: "gauge"|"sum", monotonic, attributes: {str: str},
                   timestamps: [unix seconds as float], values: [float]}

Unknown keys are ignored, so a newer agent may add optional fields without a version bump; an
incompatible change bumps ``version`` and an older server refuses it by name.

Version 2 (what ``encode_batch`` writes; the server reads both): the same map, but ``timestamps``
and ``values`` are msgpack ``bin`` fields of little-endian float64s. Why: a 6,000-point batch in
version 1 makes the server build 12,000 Python floats, check each and copy them into arrays again
(~1 ms of CPU, a quarter of an ingest worker's time); version 2 goes from the body to numpy arrays
without them (``decode_with_columns``). The agent builds the bytes with the standard library's
``array``, so it still imports no numpy.
"""

from __future__ import annotations

import array
import gzip
import math
import sys
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import msgspec
from msgspec.structs import replace

from infragent.errors import InfrAgentError

WIRE_VERSION = 1  # the list layout (``MetricBatch.version`` of a batch built in memory)
COLUMNS_VERSION = 2  # float64 ``bin`` columns: what ``encode_batch`` sends
CONTENT_TYPE = "application/vnd.infragent.metrics+msgpack"
GZIP_LEVEL = 6  # measured trade-off: level 9 costs ~2x the CPU for a few percent on float data

#: Bounds shared with the storage columns (``metric_batches.batch_id``, ``metric_series.name`` …).
MAX_BATCH_ID = 128
MAX_NODE_ID = 255
MAX_NAME = 255
MAX_UNIT = 64

BatchId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BATCH_ID)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NODE_ID)]
MetricName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
Unit = Annotated[str, msgspec.Meta(max_length=MAX_UNIT)]


class WireError(InfrAgentError):
    """A metric batch body could not be accepted; ``reason`` says what is wrong (HTTP ``status``)."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadTooLargeError(WireError):
    """The body inflates past ``limit`` bytes (HTTP 413); detected before it is inflated whole."""

    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"decompressed body is larger than the limit of {limit} bytes")
        self.limit = limit


class UnsupportedEncodingError(WireError):
    """The Content-Encoding is not one we decode (HTTP 415)."""

    status = 415

    def __init__(self, encoding: str) -> None:
        super().__init__(f"unsupported Content-Encoding {encoding!r}: send 'gzip' or none")
        self.encoding = encoding


class SeriesData(msgspec.Struct, frozen=True):
    """One series and all of its points in the batch, timestamps and values as parallel lists."""

    name: MetricName
    unit: Unit
    kind: Literal["gauge", "sum"]
    monotonic: bool
    attributes: dict[str, str]
    timestamps: list[float]
    values: list[float]


class MetricBatch(msgspec.Struct, frozen=True):
    """What one ``POST /api/v1/metrics`` carries. ``batch_id`` is the idempotency key of a resend."""

    batch_id: BatchId
    node_id: NodeId
    resource: dict[str, str]
    series: list[SeriesData]
    version: int = WIRE_VERSION

    @property
    def point_count(self) -> int:
        return sum(len(s.values) for s in self.series)


class _SeriesColumns(msgspec.Struct, frozen=True):
    """A ``SeriesData`` on the wire in version 2: its points as little-endian float64 bytes."""

    name: MetricName
    unit: Unit
    kind: Literal["gauge", "sum"]
    monotonic: bool
    attributes: dict[str, str]
    timestamps: bytes
    values: bytes


class _ColumnBatch(msgspec.Struct, frozen=True):
    batch_id: BatchId
    node_id: NodeId
    resource: dict[str, str]
    series: list[_SeriesColumns]
    version: int = COLUMNS_VERSION


@dataclass(frozen=True, slots=True)
class Columns:
    """A version-2 batch's points as arrays: series ``i`` owns the next ``lengths[i]`` points (empty
    series included), so the store cuts chunks without touching a Python float."""

    lengths: Any  # numpy intp array (numpy is imported lazily: the agent imports this module)
    timestamps: Any  # numpy float64 array
    values: Any  # numpy float64 array


class _Envelope(msgspec.Struct):
    """Just the version, read only when a body fails validation, to name a version mismatch."""

    version: int = WIRE_VERSION


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(MetricBatch)
_columns_decoder = msgspec.msgpack.Decoder(_ColumnBatch)
_LITTLE = sys.byteorder == "little"
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)


def _f64(xs: Sequence[float]) -> bytes:
    arr = array.array("d", xs)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def encode_batch(
    batch: MetricBatch, *, compresslevel: int = GZIP_LEVEL, version: int = COLUMNS_VERSION
) -> bytes:
    """msgpack (version 2 unless asked), then gzip with a zero mtime: the same batch, the same bytes."""
    if version == WIRE_VERSION:
        return gzip.compress(
            _encoder.encode(replace(batch, version=WIRE_VERSION)), compresslevel=compresslevel, mtime=0
        )
    columns = _ColumnBatch(
        batch.batch_id,
        batch.node_id,
        batch.resource,
        [
            _SeriesColumns(
                s.name, s.unit, s.kind, s.monotonic, s.attributes, _f64(s.timestamps), _f64(s.values)
            )
            for s in batch.series
        ],
    )
    return gzip.compress(_encoder.encode(columns), compresslevel=compresslevel, mtime=0)


def _gunzip(body: bytes, max_decompressed: int) -> bytes:
    """Inflate at most ``max_decompressed + 1`` bytes; never more, whatever the body claims."""
    out = bytearray()
    data = body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        try:
            out += inflater.decompress(data, max_decompressed + 1 - len(out))
        except zlib.error as exc:
            raise WireError(f"body is not valid gzip: {exc}") from None
        if len(out) > max_decompressed:
            raise PayloadTooLargeError(max_decompressed)
        if not inflater.eof:
            raise WireError("body is not valid gzip: the stream is truncated")
        data = inflater.unused_data  # concatenated gzip members are one stream (RFC 1952)
        if not data:
            return bytes(out)


def _check(batch: MetricBatch) -> None:
    """The rules a type cannot express; the finite-value scan stays in C (``_all_finite``)."""
    if batch.version != WIRE_VERSION:
        raise WireError(_unsupported(batch.version))
    if not batch.batch_id.strip():
        raise WireError("batch_id is blank")
    for i, s in enumerate(batch.series):
        where = _check_series(i, s, 1)
        if not _all_finite(s.timestamps):
            raise WireError(f"{where}: a timestamp is NaN or infinite")
        if not _all_finite(s.values):
            raise WireError(f"{where}: a value is NaN or infinite")


def _check_series(i: int, s: SeriesData | _SeriesColumns, item: int) -> str:
    """The per-series rules both versions share; ``item`` is what one point takes in a column (one
    list element, or 8 bytes of float64). Returns how errors name the series."""
    where = f"series[{i}] ({s.name})"
    if item > 1 and (len(s.timestamps) % item or len(s.values) % item):
        raise WireError(f"{where}: timestamps and values must be whole float64s ({item} bytes each)")
    n_ts, n_values = len(s.timestamps) // item, len(s.values) // item
    if n_ts != n_values:
        raise WireError(f"{where}: {n_ts} timestamps but {n_values} values; they must pair up")
    if s.monotonic and s.kind != "sum":
        raise WireError(f"{where}: only a sum can be monotonic")
    return where


def _all_finite(xs: list[float]) -> bool:
    """A NaN or an infinity makes the sum NaN or infinite; ``sum`` runs ~4x faster than a per-item
    ``isfinite`` (measured: 48 vs 200 µs for 6,000 floats). A finite sum proves every item finite;
    an infinite one may be an overflow of finite values, so that case is checked item by item."""
    return math.isfinite(sum(xs)) or all(map(math.isfinite, xs))


def decode_batch(body: bytes, *, content_encoding: str | None, max_decompressed: int) -> MetricBatch:
    """Decode and validate a request body, or raise a ``WireError`` naming the problem.

    ``content_encoding`` is the raw header (``None`` when absent); ``max_decompressed`` bounds the
    msgpack bytes, compressed or not, so the cap means the same whatever the client sent.
    """
    return decode_with_columns(body, content_encoding=content_encoding, max_decompressed=max_decompressed)[0]


def decode_with_columns(
    body: bytes, *, content_encoding: str | None, max_decompressed: int
) -> tuple[MetricBatch, Columns | None]:
    """``decode_batch``, plus the points as arrays when the body is version 2 (else ``None``)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        raw = _gunzip(body, max_decompressed)
    elif encoding == "identity":
        if len(body) > max_decompressed:
            raise PayloadTooLargeError(max_decompressed)
        raw = body
    else:
        raise UnsupportedEncodingError(encoding)
    try:
        version = _envelope_decoder.decode(raw).version
    except (msgspec.DecodeError, msgspec.ValidationError):
        version = WIRE_VERSION  # the full decode below names what is wrong
    if version == COLUMNS_VERSION:
        return _decode_columns(raw)
    try:
        batch = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if version != WIRE_VERSION:
            raise WireError(_unsupported(version)) from None
        raise WireError(f"invalid metric batch: {exc}") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"body is not valid msgpack: {exc}") from None
    _check(batch)
    return batch, None


def _unsupported(version: int) -> str:
    return f"unsupported wire version {version}; this server speaks {WIRE_VERSION} and {COLUMNS_VERSION}"


def _decode_columns(raw: bytes) -> tuple[MetricBatch, Columns]:
    """Version 2: validate, then build the arrays once; the ``SeriesData`` lists come from them."""
    import numpy as np

    try:
        wire = _columns_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise WireError(f"invalid metric batch: {exc}") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"body is not valid msgpack: {exc}") from None
    if not wire.batch_id.strip():
        raise WireError("batch_id is blank")
    for i, s in enumerate(wire.series):
        _check_series(i, s, 8)
    lengths = np.fromiter((len(s.values) // 8 for s in wire.series), dtype=np.intp, count=len(wire.series))
    ts = np.frombuffer(b"".join(s.timestamps for s in wire.series), dtype="<f8").astype(np.float64)
    values = np.frombuffer(b"".join(s.values for s in wire.series), dtype="<f8").astype(np.float64)
    for what, arr in (("timestamp", ts), ("value", values)):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(bad)), side="right"))
            raise WireError(f"series[{i}] ({wire.series[i].name}): a {what} is NaN or infinite")
    edges = np.concatenate(([0], np.cumsum(lengths))).tolist()
    series = [
        SeriesData(s.name, s.unit, s.kind, s.monotonic, s.attributes, ts[a:b].tolist(), values[a:b].tolist())
        for s, a, b in zip(wire.series, edges[:-1], edges[1:], strict=True)
    ]
    batch = MetricBatch(wire.batch_id, wire.node_id, wire.resource, series, version=COLUMNS_VERSION)
    return batch, Columns(lengths, ts, values)


class Point(Protocol):
    """What ``batch_from_points`` reads of a point: the agent's ``MetricPoint`` is one.

    A protocol rather than the agent's class: the server imports this module and must not import the
    agent's collectors (nor the agent this module).
    """

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def attributes(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def unit(self) -> str: ...
    @property
    def kind(self) -> Literal["gauge", "sum"]: ...
    @property
    def monotonic(self) -> bool: ...
    @property
    def attribute_map(self) -> dict[str, str]: ...


def batch_from_points(
    batch_id: str,
    node_id: str,
    resource: Mapping[str, str],
    points: Iterable[tuple[float, Point]],
) -> MetricBatch:
    """Group ``(timestamp, point)`` pairs by series (name + attributes) into a column-wise batch.

    Series keep the order of their first point, and points their input order. A non-finite value
    is dropped here: it carries no observation, and the server refuses a whole batch that holds one,
    which would cost every good point beside it. Two points of one series that disagree on unit or
    kind are a collector bug, so that raises ``ValueError`` rather than storing either guess.
    """
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Point, list[float], list[float]]] = {}
    for ts, point in points:
        if not (math.isfinite(ts) and math.isfinite(point.value)):
            continue
        key = (point.name, point.attributes)
        group = groups.get(key)
        if group is None:
            group = groups[key] = (point, [], [])
        first = group[0]
        if (first.unit, first.kind, first.monotonic) != (point.unit, point.kind, point.monotonic):
            raise ValueError(
                f"{point.name} {point.attribute_map}: unit/kind changed within one series "
                f"({first.unit}/{first.kind} vs {point.unit}/{point.kind})"
            )
        group[1].append(ts)
        group[2].append(point.value)
    series = [
        SeriesData(
            name=first.name,
            unit=first.unit,
            kind=first.kind,
            monotonic=first.monotonic,
            attributes=first.attribute_map,
            timestamps=timestamps,
            values=values,
        )
        for first, timestamps, values in groups.values()
    ]
    return MetricBatch(batch_id=batch_id, node_id=node_id, resource=dict(resource), series=series)
