"""Metric storage: series, chunked samples, rollups, the fleet view's rows, compaction and retention.

``SqlMetricStore(engine)`` is the one adapter, for SQLite and PostgreSQL alike; callers outside
``store/`` import it and its value types from here.
"""

from __future__ import annotations

from infragent.store.metrics.sql import (
    LatestSample,
    MetricStore,
    RetentionResult,
    Rollup,
    SeriesInfo,
    SeriesKey,
    SeriesLimitError,
    SeriesParts,
    SqlMetricStore,
    WriteResult,
    labels_key,
)

__all__ = [
    "LatestSample",
    "MetricStore",
    "RetentionResult",
    "Rollup",
    "SeriesInfo",
    "SeriesKey",
    "SeriesLimitError",
    "SeriesParts",
    "SqlMetricStore",
    "WriteResult",
    "labels_key",
]
