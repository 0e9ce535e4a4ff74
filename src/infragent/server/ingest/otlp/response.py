"""OTLP answers: the ``ExportMetricsServiceResponse`` of a success and the ``google.rpc.Status`` of a failure.

Both are encoded in the request's own content type, as the OTLP/HTTP specification asks.
"""

from __future__ import annotations

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from infragent.server.ingest.otlp.model import PROTOBUF, Decoded


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
