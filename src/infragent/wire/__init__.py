"""What crosses the network between agents, SDKs and the server: metric batches and commands.

Why a package of plain structs: the agent, the SDK, the server's ingest and the responder all speak
these shapes, and each side must import them without pulling in the others (the agent imports no
server code, the server no agent code). ``metrics`` is the native metric batch; ``commands`` the
signed command and its result.
"""

from infragent.wire.metrics import (
    COLUMNS_VERSION,
    CONTENT_TYPE,
    GZIP_LEVEL,
    MAX_BATCH_ID,
    MAX_NAME,
    MAX_NODE_ID,
    MAX_UNIT,
    WIRE_VERSION,
    Columns,
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

__all__ = [
    "COLUMNS_VERSION",
    "CONTENT_TYPE",
    "GZIP_LEVEL",
    "MAX_BATCH_ID",
    "MAX_NAME",
    "MAX_NODE_ID",
    "MAX_UNIT",
    "WIRE_VERSION",
    "Columns",
    "MetricBatch",
    "PayloadTooLargeError",
    "SeriesData",
    "UnsupportedEncodingError",
    "WireError",
    "batch_from_points",
    "decode_batch",
    "decode_with_columns",
    "encode_batch",
]
