"""Undo an OTLP request's ``Content-Encoding`` under a cap, before anything parses the body."""

from __future__ import annotations

import zlib

from infragent.server.ingest.otlp.model import MAX_DECOMPRESSED_BYTES, OtlpError
from infragent.wire import PayloadTooLargeError, UnsupportedEncodingError

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(body: bytes, content_encoding: str | None, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Undo ``Content-Encoding`` (none, gzip or deflate), never producing more than ``max_bytes + 1``.

    Same bounded loop as ``wire/metrics.py``'s gunzip, plus ``deflate`` (zlib), which the OpenTelemetry
    Python exporter offers; over the cap is ``PayloadTooLargeError`` (413) before inflating whole.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", "none"):
        if len(body) > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        return body
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedEncodingError(encoding)
    out = bytearray()
    data = body
    while True:
        inflater = zlib.decompressobj(wbits=wbits)
        try:
            out += inflater.decompress(data, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise OtlpError(f"body is not valid {encoding}: {exc}") from None
        if len(out) > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        if not inflater.eof:
            raise OtlpError(f"body is not valid {encoding}: the stream is truncated")
        data = inflater.unused_data  # gzip members may be concatenated (RFC 1952)
        if not data:
            return bytes(out)
        if wbits != _GZIP_WBITS:
            raise OtlpError(f"body is not valid {encoding}: data after the end of the stream")
