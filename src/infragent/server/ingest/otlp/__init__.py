"""OTLP metrics: an ``ExportMetricsServiceRequest`` body (protobuf or OTLP/JSON) → per-host batches.

Pure: bytes and a clock reading in, values out. ``store.py`` admits and stores what ``decode``
returns; the route in ``server/api/otlp.py`` only does the HTTP. The mapping rules are documented
for users in ``docs/otlp.md``. The modules, each small enough to read alone:

* ``inflate``  — undo ``Content-Encoding`` under a cap (413 past it);
* ``protobuf`` / ``otlpjson`` — the two walkers, one per encoding, feeding one ``sink.Sink``;
* ``sink``     — every mapping rule (validation, naming, labels, grouping), once for both;
* ``model``    — the shared values (``Decoded``, ``HostGroup``, ``OtlpError``, media types);
* ``response`` — the success and ``google.rpc.Status`` answers in the request's encoding.

Why rejection is per OTLP data point: ``partial_success.rejected_data_points`` counts data points,
and an exporter cannot act on one bad point anyway; the spec wants the rest stored. A body that
cannot be decoded at all (or has the wrong JSON types) is a permanent error, a 400, and stores nothing.

Why samples are grouped by host: a request may carry many resources; each host's series become one
``MetricBatch`` so that ``SqlMetricStore.write_batch`` stores each host in one transaction under one
idempotency key.
"""

from __future__ import annotations

from infragent.server.ingest.otlp.inflate import inflate
from infragent.server.ingest.otlp.model import (
    JSON,
    MAX_DECOMPRESSED_BYTES,
    MAX_FUTURE_S,
    MAX_REASONS,
    MEDIA_TYPES,
    PROTOBUF,
    RESOURCE_LABELS,
    TEMPORALITY_LABEL,
    Decoded,
    HostGroup,
    OtlpError,
    format_float,
    label_value,
)
from infragent.server.ingest.otlp.otlpjson import decode_json
from infragent.server.ingest.otlp.protobuf import decode_protobuf
from infragent.server.ingest.otlp.response import RPC_CODES, encode_response, encode_status
from infragent.server.ingest.otlp.sink import Sink

__all__ = [
    "JSON",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_FUTURE_S",
    "MAX_REASONS",
    "MEDIA_TYPES",
    "PROTOBUF",
    "RESOURCE_LABELS",
    "RPC_CODES",
    "TEMPORALITY_LABEL",
    "Decoded",
    "HostGroup",
    "OtlpError",
    "decode",
    "encode_response",
    "encode_status",
    "format_float",
    "inflate",
    "label_value",
]


def decode(raw: bytes, media_type: str, *, now: float) -> Decoded:
    """Map an (inflated) request body to per-host groups, counting the data points it rejects.

    ``media_type`` is ``PROTOBUF`` or ``JSON``; ``now`` (unix seconds) bounds future timestamps.
    Raises ``OtlpError`` when the body cannot be decoded at all.
    """
    sink = Sink(now)
    if media_type == PROTOBUF:
        decode_protobuf(raw, sink)
    elif media_type == JSON:
        decode_json(raw, sink)
    else:
        raise ValueError(f"not an OTLP media type: {media_type!r}")
    return sink.result()
