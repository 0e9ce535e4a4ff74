"""Optional export of accepted samples to a Prometheus-compatible store over remote write 1.0.

Why optional and one-way: InfrAgent's SQL store stays the system of record (rules, dashboard,
idempotent ingest); a remote store such as VictoriaMetrics adds long retention and PromQL across
many servers. ``create_app`` builds a ``RemoteWriteExporter`` only when ``remote_write_url`` is set
(docs/scaling.md); the ingest route hands it each newly stored batch.
"""

from infragent.remote_write.exporter import ExporterStats, RemoteWriteExporter
from infragent.remote_write.proto import (
    TimeSeries,
    decode_write_request,
    encode_write_request,
    sanitize_label_name,
    sanitize_metric_name,
    series_from_batch,
)

__all__ = [
    "ExporterStats",
    "RemoteWriteExporter",
    "TimeSeries",
    "decode_write_request",
    "encode_write_request",
    "sanitize_label_name",
    "sanitize_metric_name",
    "series_from_batch",
]
