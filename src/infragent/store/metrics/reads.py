"""The read path's SQL, as functions over a ``Connection``: a series' samples and its rollups.

What both databases share is here; where they differ (PostgreSQL's binary protocol and
``string_agg``, SQLite's rowid) is decided by ``conn.dialect``. Partial aggregates come back in the
query kernel's representation (``query.aggregate.Partials``) and are merged with its ``fold``.

Why samples are stored as chunks with summaries: see ``chunks.py`` and docs/architecture.md
("Metric storage").
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import sqlalchemy as sa

from infragent.query.aggregate import F64, Partials, bucket, merge
from infragent.store.metrics.chunks import HOUR, decode_chunks, decode_joined
from infragent.store.metrics.model import labels_key
from infragent.store.schema import metric_chunks, metric_series

if TYPE_CHECKING:
    import psycopg

# Reads of one series' chunks: ``start_ts >= hour_lo`` is implied by ``end_ts >= lo`` (a chunk never
# crosses an hour) and lets PostgreSQL prune partitions and bound the index scan from below.
_CHUNKS = (
    "FROM metric_chunks WHERE series_id = :sid AND start_ts >= :hour_lo AND start_ts <= :hi AND end_ts >= :lo"
)
_SUMMARY = "start_ts, n, vmin, vmax, vsum, end_ts, vlast"
_RAW_SQL = f"SELECT data {_CHUNKS} ORDER BY start_ts"
_HOUR_SQL = f"SELECT {_SUMMARY} {_CHUNKS}"
#: All the chunks in one row of three byte strings (their data, lengths and starts): no Python object
#: per chunk. Unordered (an ordered aggregate sorts: +5 ms for a day of tick chunks), so each chunk's
#: start comes along to order ties as ``ORDER BY start_ts`` would.
_JOINED_SQL = (
    "SELECT string_agg(data, ''::bytea), string_agg(int4send(length(data)), ''::bytea), "
    f"string_agg(float8send(start_ts), ''::bytea) {_CHUNKS}"
)
_KEPT_SQL = (
    "SELECT bucket, n, vmin, vmax, vsum, last_ts, vlast FROM metric_rollups_1h "
    "WHERE series_id = :sid AND bucket >= :lo AND bucket <= :hi"
)


def _hour_floor(ts: float) -> float:
    return math.floor(ts / HOUR) * HOUR


@functools.cache
def _pg_sql(sql: str) -> str:
    """``:name`` placeholders as psycopg's ``%(name)s``."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def series_id(
    conn: sa.Connection, client_id: str, host: str, name: str, labels: Mapping[str, str]
) -> int | None:
    """The id of the one series with exactly these labels, if it exists."""
    q = sa.select(metric_series.c.id).where(
        metric_series.c.client_id == client_id,
        metric_series.c.host == host,
        metric_series.c.name == name,
        metric_series.c.labels_key == labels_key(labels),
    )
    sid = conn.execute(q).scalar_one_or_none()
    return None if sid is None else int(sid)


def rows(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a read as tuples, fetched the cheap way for each database.

    Why PostgreSQL's binary protocol on the raw psycopg connection: a day of tick-sized chunks is
    8,640 rows of seven floats, and parsing them from text costs ~25 ms; binary ~8 ms.
    ``sql`` uses ``:name`` placeholders (SQLite's); ``_pg_sql`` rewrites them for psycopg.
    """
    if is_postgres(conn):
        raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with raw.cursor(binary=True) as cur:
            cur.execute(_pg_sql(sql), params)
            return cur.fetchall()
    return [tuple(r) for r in conn.exec_driver_sql(sql, params).fetchall()]


def chunk_samples(conn: sa.Connection, sid: int, lo: float, hi: float) -> tuple[F64, F64]:
    """Samples of ``sid`` in ``[lo, hi]`` by time (on equal times: in stored order).

    Why the chunks' data and not their summaries, even for 1-minute buckets: decoding is
    vectorized (``decode_joined``), and what costs is rows. On PostgreSQL the chunks come as
    ONE row (``string_agg`` of the blobs and their lengths): a day of tick-sized chunks, 8,640
    rows, fetched as eight columns took ~20 ms, as one column ~12 ms, as one row ~7 ms.
    """
    params = {"sid": sid, "hour_lo": _hour_floor(lo), "lo": float(lo), "hi": float(hi)}
    if is_postgres(conn):
        [(joined, sizes, starts)] = rows(conn, _JOINED_SQL, params)
        sizes = np.frombuffer(bytes(sizes or b""), dtype=">i4")
        ts, values, counts = decode_joined(bytes(joined or b""), sizes)
        chunk_start = np.repeat(np.frombuffer(bytes(starts or b""), dtype=">f8"), counts)
    else:  # in start order already
        ts, values, counts = decode_chunks([bytes(r[0]) for r in rows(conn, _RAW_SQL, params)])
        chunk_start = np.repeat(np.arange(len(counts), dtype=np.float64), counts)
    keep = (ts >= lo) & (ts <= hi)
    ts, values, chunk_start = ts[keep], values[keep], chunk_start[keep]
    if len(ts) > 1 and not bool((np.diff(ts) > 0).all()):  # interleaved chunks, or equal times
        order = np.lexsort((chunk_start, ts))  # stable: by time, then chunk start, then stored order
        ts, values = ts[order], values[order]
    return ts, values


def minute_parts(conn: sa.Connection, sid: int, lo: float, to_ts: float) -> Partials:
    """1-minute buckets starting in ``[lo, to_ts]`` (``lo`` on a minute), from the samples.

    Storing them would cost about a byte per sample for data kept no longer than the raw
    (docs/architecture.md); computing them from a day of samples costs ~1 ms of numpy.
    """
    hi = math.floor(to_ts / 60) * 60.0 + 60 - 1e-9
    ts, values = chunk_samples(conn, sid, lo, hi)
    parts = bucket(Partials.of_samples(ts, values), 60.0)
    return parts.select(parts.start <= to_ts)


def hour_parts(conn: sa.Connection, sid: int, lo: float, to_ts: float) -> Partials:
    """1-hour buckets starting in ``[lo, to_ts]``: the chunk summaries (a chunk never crosses an
    hour) plus the rollups retention kept of dropped chunks."""
    params = {"sid": sid, "hour_lo": _hour_floor(lo), "lo": float(lo), "hi": float(to_ts) + HOUR}
    live = rows(conn, _HOUR_SQL, params)
    kept = rows(conn, _KEPT_SQL, {"sid": sid, "lo": float(lo), "hi": float(to_ts)})
    if not live and not kept:
        return Partials.empty()
    arr = np.array(live + kept, dtype=np.float64).reshape(-1, 7)
    start = arr[:, 0].copy()
    start[: len(live)] = np.floor(start[: len(live)] / HOUR) * HOUR
    parts = merge(Partials(start, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 6]), arr[:, 5])
    return parts.select((parts.start >= lo) & (parts.start <= to_ts))


def rollup_parts(
    conn: sa.Connection, sid: int, from_ts: float, to_ts: float, step: Literal[60, 3600]
) -> Partials:
    """Buckets of ``step`` seconds that start in ``[from_ts, to_ts]``, each over all its samples."""
    lo = float(np.ceil(from_ts / step) * step)
    if lo > to_ts:
        return Partials.empty()
    if step == 60:
        return minute_parts(conn, sid, lo, to_ts)
    return hour_parts(conn, sid, lo, to_ts)


def newest_chunk(
    conn: sa.Connection, since: float, until: float
) -> tuple[sa.FromClause, sa.ColumnElement[bool]]:
    """What to join to ``metric_series`` for each series' newest chunk starting in ``[since, until]``.

    PostgreSQL: a ``LATERAL`` probe per series. SQLite has no ``LATERAL``; a correlated subquery
    picks the newest chunk's rowid, which is the same index probe.
    """
    s = metric_series.c
    if is_postgres(conn):
        c = metric_chunks.c
        lateral = (
            sa.select(c.end_ts, c.vlast)
            .where(c.series_id == s.id, c.start_ts >= since, c.start_ts <= until)
            .order_by(c.start_ts.desc())
            .limit(1)
            .lateral("newest")
        )
        return lateral, sa.true()
    newest = metric_chunks.alias("newest")
    pick = metric_chunks.alias("pick")
    rowid = (
        sa.select(sa.literal_column("pick.rowid"))
        .select_from(pick)
        .where(pick.c.series_id == s.id, pick.c.start_ts >= since, pick.c.start_ts <= until)
        .order_by(pick.c.start_ts.desc())
        .limit(1)
        .scalar_subquery()
    )
    return newest, sa.literal_column("newest.rowid") == rowid
