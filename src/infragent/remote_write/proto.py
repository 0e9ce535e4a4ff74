"""Prometheus remote write 1.0: InfrAgent series as ``prometheus.WriteRequest`` protobuf bytes, and back.

Why by hand rather than generated code: the message is three tiny types (``WriteRequest``,
``TimeSeries``, ``Label``/``Sample``) whose schema has been frozen since 2017, and writing them
takes four protobuf primitives (varint, length-delimited, fixed64 double, tag byte). A generated
module would mean a ``protoc`` build step and a runtime ``protobuf`` dependency for ~60 lines of
encoder. The decoder exists so tests (and an operator debugging a capture) can read a request back;
it skips unknown fields, as protobuf readers must, and raises ``ProtoError`` on truncated input.

Schema (``prompb/remote.proto`` and ``types.proto``; field numbers are what the bytes carry)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in ms since the epoch

Both sample fields are always written, even when zero: proto3 allows omitting defaults but does
not require it, and writing them keeps ``-0.0`` and keeps every sample's length predictable.

Label mapping from a stored ``SeriesData`` (see ``series_from_batch``):

* ``__name__`` is the metric name with every character outside ``[a-zA-Z0-9_:]`` replaced by
  ``_`` (``system.cpu.utilization`` → ``system_cpu_utilization``), and ``_`` prepended when it would
  start with a digit. No unit or ``_total`` suffix is added, so a name found in InfrAgent's
  dashboard is the same name in PromQL with dots turned into underscores.
* Attribute names follow the label-name rule ``[a-zA-Z_][a-zA-Z0-9_]*`` (``cpu.mode`` →
  ``cpu_mode``); a leading digit gets ``key_``, a leading ``__`` (reserved for Prometheus' own
  labels) gets ``key``. Two attributes that sanitize to one name are joined with ``;`` in the
  order of their original names, as the OpenTelemetry → Prometheus translation does.
* ``instance`` and ``host`` carry the batch's ``node_id``; ``tenant`` carries the client id. They
  are set by the server from the authenticated request, so an attribute of the same name is kept
  as ``exported_<name>`` (Prometheus' own convention) and can never overwrite them: a tenant must
  not be able to write into another tenant's series.
* Labels with an empty value, or with an empty name, are left out: Prometheus treats an empty
  label as an absent one. Labels are sorted by name, as remote write requires.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infragent.errors import InfrAgentError
from infragent.wire import MetricBatch

#: Labels InfrAgent sets itself; an attribute with one of these names becomes ``exported_<name>``.
RESERVED_LABELS = frozenset({"__name__", "instance", "host", "tenant"})

_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

# Tag bytes: (field number << 3) | wire type. Wire types: 0 varint, 1 fixed64, 2 length-delimited.
_TAG_TIMESERIES = 0x0A  # WriteRequest.timeseries = 1, length-delimited
_TAG_LABEL = 0x0A  # TimeSeries.labels = 1, length-delimited
_TAG_SAMPLE = 0x12  # TimeSeries.samples = 2, length-delimited
_TAG_NAME = 0x0A  # Label.name = 1, length-delimited
_TAG_VALUE = 0x12  # Label.value = 2, length-delimited
_TAG_DOUBLE = 0x09  # Sample.value = 1, fixed64
_TAG_TIMESTAMP = 0x10  # Sample.timestamp = 2, varint

#: A sample's fixed head: outer tag, sample length, value tag, the double, timestamp tag.
_SAMPLE_HEAD = struct.Struct("<BBBdB")
_DOUBLE = struct.Struct("<d")
_UINT64 = 1 << 64
_INT64_SIGN = 1 << 63
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class ProtoError(InfrAgentError):
    """Bytes that are not a valid ``WriteRequest`` (only the test/debug decoder raises it)."""


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """One series of a WriteRequest: sorted ``(name, value)`` labels and parallel sample columns."""

    labels: tuple[tuple[str, str], ...]
    timestamps_ms: Sequence[int]
    values: Sequence[float]

    def __len__(self) -> int:
        return len(self.values)


# -- names ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def sanitize_metric_name(name: str) -> str:
    """A valid Prometheus metric name: ``[a-zA-Z_:][a-zA-Z0-9_:]*``; cached, names repeat every batch."""
    out = _INVALID_METRIC_CHARS.sub("_", name)
    if out[:1].isdigit():
        out = "_" + out
    return out


@functools.lru_cache(maxsize=8192)
def sanitize_label_name(name: str) -> str:
    """A valid, non-reserved label name (``[a-zA-Z_][a-zA-Z0-9_]*``, not ``__``-prefixed); "" stays ""."""
    out = _INVALID_LABEL_CHARS.sub("_", name)
    if out[:1].isdigit():
        out = "key_" + out
    elif out.startswith("__"):
        out = "key" + out
    return out


def series_labels(
    metric_name: str, attributes: dict[str, str], *, node_id: str, tenant: str
) -> tuple[tuple[str, str], ...]:
    """The sorted label set of one series (the mapping is described in the module docstring)."""
    merged: dict[str, list[str]] = {}
    for key in sorted(attributes):
        value = attributes[key]
        name = sanitize_label_name(key)
        if not name or not value:
            continue
        if name in RESERVED_LABELS:
            name = "exported_" + name
        merged.setdefault(name, []).append(value)
    labels = {name: ";".join(values) for name, values in merged.items()}
    labels["__name__"] = sanitize_metric_name(metric_name)
    labels["instance"] = node_id
    labels["host"] = node_id
    labels["tenant"] = tenant
    return tuple(sorted((k, v) for k, v in labels.items() if v))


Labels = tuple[tuple[str, str], ...]


class LabelCache:
    """Labels of recently seen series, sorted and pre-encoded, so a series is mapped once, not per batch.

    Why: an agent re-sends the same few hundred series every tick, usually one point each, so
    mapping names and encoding labels (~40 µs a series) would dominate the export's CPU; a hit is
    one tuple and one dict lookup (<1 µs). Bounded like ``SqlMetricStore``'s id cache: past
    ``max_entries`` it is cleared and refills from the next batches. Safe to share between threads:
    each operation is one dict call under the GIL, and a lost race only computes an entry twice.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], tuple[Labels, bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, metric_name: str, attributes: dict[str, str], node_id: str, tenant: str
    ) -> tuple[Labels, bytes]:
        """``(labels, encode_labels(labels))`` of one series."""
        key = (tenant, node_id, metric_name, tuple(attributes.items()))
        entry = self._entries.get(key)
        if entry is None:
            labels = series_labels(metric_name, attributes, node_id=node_id, tenant=tenant)
            entry = (labels, encode_labels(labels))
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = entry
        return entry


def to_millis(timestamps: Sequence[float], values: Sequence[float]) -> tuple[list[int], Sequence[float]]:
    """Timestamps in integer ms, and their values, leaving out any beyond int64 milliseconds.

    Finite but absurd timestamps (past the year 292 million) would make a whole request
    unparseable, so they are dropped here rather than wrapped around.
    """
    millis = [round(ts * 1000.0) for ts in timestamps]
    if millis and (min(millis) < _INT64_MIN or max(millis) > _INT64_MAX):
        kept = [(t, v) for t, v in zip(millis, values, strict=True) if _INT64_MIN <= t <= _INT64_MAX]
        return [t for t, _ in kept], [v for _, v in kept]
    return millis, values


def series_from_batch(tenant: str, batch: MetricBatch) -> list[TimeSeries]:
    """Every non-empty series of a stored batch, labelled, timestamps in integer milliseconds."""
    out: list[TimeSeries] = []
    for s in batch.series:
        millis, values = to_millis(s.timestamps, s.values)
        if millis:
            labels = series_labels(s.name, s.attributes, node_id=batch.node_id, tenant=tenant)
            out.append(TimeSeries(labels, millis, list(values)))
    return out


# -- encoding -------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    """Base-128 varint; a negative int64 is written as its 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += _UINT64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string_field(tag: int, text: str) -> bytes:
    raw = text.encode("utf-8", "replace")  # a lone surrogate must not abort a whole request
    return bytes((tag,)) + _varint(len(raw)) + raw


def encode_labels(labels: Iterable[tuple[str, str]]) -> bytes:
    """The ``labels`` fields of a ``TimeSeries`` message, in the given order."""
    parts: list[bytes] = []
    for name, text in labels:
        label = _string_field(_TAG_NAME, name) + _string_field(_TAG_VALUE, text)
        parts.append(bytes((_TAG_LABEL,)) + _varint(len(label)) + label)
    return b"".join(parts)


def encode_series(
    encoded_labels: bytes,
    chunks: Iterable[tuple[Sequence[int], Sequence[float]]],
    varints: dict[int, bytes],
) -> bytes:
    """One ``WriteRequest.timeseries`` entry (tag, length, message) from labels and sample chunks.

    Chunks are ``(timestamps_ms, values)`` column pairs sent one after another, so one series'
    samples from several queued batches go out as one entry. ``varints`` caches encoded timestamps
    across the request: one agent tick's timestamp recurs in every series of that tick.
    """
    parts = [encoded_labels]
    pack = _SAMPLE_HEAD.pack
    for timestamps, values in chunks:
        for ts, value in zip(timestamps, values, strict=True):
            encoded = varints.get(ts)
            if encoded is None:
                encoded = varints[ts] = _varint(ts)
            # Sample body: 1 + 8 (double) + 1 + len(varint) bytes, at most 20: its length is one byte.
            parts.append(pack(_TAG_SAMPLE, 10 + len(encoded), _TAG_DOUBLE, value, _TAG_TIMESTAMP))
            parts.append(encoded)
    body = b"".join(parts)
    return bytes((_TAG_TIMESERIES,)) + _varint(len(body)) + body


def encode_write_request(series: Iterable[TimeSeries]) -> bytes:
    """Serialize a ``WriteRequest`` holding ``series`` in order (uncompressed protobuf)."""
    varints: dict[int, bytes] = {}
    return b"".join(
        encode_series(encode_labels(s.labels), [(s.timestamps_ms, s.values)], varints) for s in series
    )


# -- decoding (tests, debugging) ------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & (_UINT64 - 1), pos
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterable[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field; varints as ints, the rest as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 0x07
        value: int | bytes
        if wire_type == 0:
            value, pos = _read_varint(buf, pos)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire_type == 2:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtoError(f"unsupported wire type {wire_type} for field {number}")
        if pos > len(buf):
            raise ProtoError(f"field {number} runs past the end of the message")
        yield number, wire_type, value


def _decode_string(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtoError("expected a length-delimited string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtoError(f"label is not valid UTF-8: {exc}") from None


def _decode_label(buf: bytes) -> tuple[str, str]:
    name = value = ""
    for number, _, item in _fields(buf):
        if number == 1:
            name = _decode_string(item)
        elif number == 2:
            value = _decode_string(item)
    return name, value


def _decode_sample(buf: bytes) -> tuple[int, float]:
    ts, value = 0, 0.0
    for number, wire_type, item in _fields(buf):
        if number == 1 and wire_type == 1 and isinstance(item, bytes):
            (value,) = _DOUBLE.unpack(item)
        elif number == 2 and wire_type == 0 and isinstance(item, int):
            ts = item - _UINT64 if item >= _INT64_SIGN else item
        elif number in (1, 2):
            raise ProtoError(f"Sample field {number} has wire type {wire_type}")
    return ts, value


def decode_write_request(data: bytes) -> list[TimeSeries]:
    """Parse uncompressed ``WriteRequest`` bytes; labels are kept in the order they were sent."""
    out: list[TimeSeries] = []
    for number, _, message in _fields(data):
        if number != 1:
            continue  # metadata (3) and anything newer
        if not isinstance(message, bytes):
            raise ProtoError("WriteRequest.timeseries must be length-delimited")
        labels: list[tuple[str, str]] = []
        timestamps: list[int] = []
        values: list[float] = []
        for inner, _, item in _fields(message):
            if not isinstance(item, bytes):
                if inner in (1, 2):
                    raise ProtoError(f"TimeSeries field {inner} must be length-delimited")
                continue
            if inner == 1:
                labels.append(_decode_label(item))
            elif inner == 2:
                ts, value = _decode_sample(item)
                timestamps.append(ts)
                values.append(value)
        out.append(TimeSeries(tuple(labels), timestamps, values))
    return out
