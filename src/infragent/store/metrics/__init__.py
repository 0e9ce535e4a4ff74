"""Metric storage: series, chunked samples, rollups, the fleet view's rows, compaction and retention.

``SqlMetricStore(engine)`` is the one adapter, for SQLite and PostgreSQL alike; it implements the
ports of ``base.py`` (``MetricWriter``, ``MetricReader``, ``MetricRetention``). Callers outside
``store/`` import it, the ports and the value types from here. Layout, and why chunks, rollups and
partitions: docs/architecture.md ("Metric storage").

    model.py        values, limits, ``labels_key``          base.py     the three ports
    sql.py          ``SqlMetricStore``                     reads.py    the read path's SQL
    series.py       series ids, batch claims               hosts.py    the fleet view's rows
    pg.py           PostgreSQL writes and retention        sqlite.py   SQLite writes and retention
    chunk_rows.py   a batch cut into chunks and summaries   chunks.py   the chunk codec (bytes)
    compaction.py   closed hours rewritten densely         pg_arrays.py  binary arrays for psycopg
"""

from __future__ import annotations

from infragent.query.errors import TooManySeriesError
from infragent.store.metrics.base import MetricReader, MetricRetention, MetricWriter
from infragent.store.metrics.compaction import CompactionResult, compact
from infragent.store.metrics.model import (
    LatestSample,
    RetentionResult,
    Rollup,
    SeriesInfo,
    SeriesKey,
    SeriesParts,
    WriteResult,
    labels_key,
)
from infragent.store.metrics.sql import SqlMetricStore

__all__ = [
    "CompactionResult",
    "LatestSample",
    "MetricReader",
    "MetricRetention",
    "MetricWriter",
    "RetentionResult",
    "Rollup",
    "SeriesInfo",
    "SeriesKey",
    "SeriesParts",
    "SqlMetricStore",
    "TooManySeriesError",
    "WriteResult",
    "compact",
    "labels_key",
]
