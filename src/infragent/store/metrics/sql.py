"""Metric storage: the ``MetricStore`` port, its value types, and ``SqlMetricStore`` for both databases.

``SqlMetricStore(engine)`` returns the adapter for the engine's database: ``metrics_pg.PgMetrics``
(daily partitions, binary COPY) or ``metrics_sqlite.SqliteMetrics`` (one writer at a time, group
commit). What the two share lives here: series ids, reads, rollup queries.

Why a batch table: agents deliver at least once (spool, retries), so the server must make a resend a
no-op. The batch id is inserted first, in the same transaction as the chunks, with
``ON CONFLICT DO NOTHING``; the unique key decides which of two racing requests stores the points.
On PostgreSQL the loser's insert waits for the winner's commit and then returns no row; on SQLite
``BEGIN IMMEDIATE`` serializes the writers and the loser sees rowcount 0. Either way the loser writes
nothing and reports ``duplicate=True``. If the winner rolls back, its batch row goes with it.

Why series ids are cached per store instance: a host re-sends the same series every tick, so after
the first batch the ids come from memory. Ids are cached only after the transaction that created
them commits, so a rolled-back insert never leaves a dangling id behind. Retention never deletes
series rows, so a cached id never goes stale.

Why samples are stored as chunks with summaries: see ``store/chunks.py`` and docs/architecture.md
("Metric storage"). ``count_samples`` sums the chunks' point counts, so it stays exact.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.errors import StoreError
from infragent.store.metrics.chunks import HOUR, decode_chunks, decode_joined
from infragent.store.metrics.hosts import FLEET, read_hosts
from infragent.store.schema import (
    metric_batches,
    metric_chunks,
    metric_retention,
    metric_series,
)
from infragent.wire import Columns, MetricBatch, SeriesData

if TYPE_CHECKING:
    import psycopg

#: A bound on the id cache: a tenant with more live series than this pays a SELECT per new batch.
MAX_CACHED_SERIES = 200_000
DEFAULT_RAW_DAYS = 30.0
DEFAULT_ROLLUP_DAYS = 400.0
DAY = 86_400.0

SeriesKey = tuple[str, str, str, str]  # (client_id, host, name, labels_key)
F64 = npt.NDArray[np.float64]
#: Partial aggregates as columns, ascending by bucket: (start, n, min, max, sum, last).
Parts = tuple[F64, F64, F64, F64, F64, F64]

# Reads of one series' chunks (``SqlMetricStore._rows``): ``start_ts >= hour_lo`` is implied by
# ``end_ts >= lo`` (a chunk never crosses an hour) and lets PostgreSQL prune partitions and bound
# the index scan from below.
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


@dataclass(frozen=True, slots=True)
class WriteResult:
    """``accepted_points`` is what this call stored: 0 when ``duplicate`` (an earlier call stored it)."""

    accepted_points: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    host: str
    name: str
    unit: str
    kind: Literal["gauge", "sum"]
    monotonic: bool
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rollup:
    """Aggregate of one series over ``[start, start + step)``; ``last`` is the value at the latest time."""

    start: float
    count: int
    min: float
    max: float
    sum: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count


@dataclass(frozen=True, slots=True)
class LatestSample:
    """The newest sample of one series: the last point of its newest chunk."""

    host: str
    name: str
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class RetentionResult:
    dropped_partitions: int
    deleted_chunks: int


@dataclass(frozen=True, slots=True)
class SeriesParts:
    """One series' points as columns, ascending by ``start``: raw samples (each its own partial:
    ``n`` 1, min = max = sum = last = the value) or 1-minute / 1-hour buckets."""

    host: str
    name: str
    labels: dict[str, str]
    start: F64
    n: F64
    min: F64
    max: F64
    sum: F64
    last: F64


class SeriesLimitError(StoreError):
    """More series match a query than it may return."""

    def __init__(self, matched: int, limit: int) -> None:
        super().__init__(f"{matched} series match, over the limit of {limit}")
        self.matched = matched
        self.limit = limit


class MetricStore(Protocol):
    """The port ingest and rules use; all reads are scoped by tenant (``client_id``)."""

    def write_batch(
        self, client_id: str, batch: MetricBatch, now: float, columns: Columns | None = None
    ) -> WriteResult: ...

    def query_range(
        self, client_id: str, host: str, name: str, labels: Mapping[str, str], from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]: ...

    def query_rollups(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        step: Literal[60, 3600],
    ) -> list[Rollup]: ...

    def count_samples(self, client_id: str) -> int: ...

    def list_series(
        self, client_id: str, *, host: str | None = None, name: str | None = None
    ) -> list[SeriesInfo]: ...

    def latest_by_host(
        self,
        client_id: str,
        since: float,
        until: float,
        wanted: Sequence[tuple[str, Mapping[str, str]]],
    ) -> tuple[dict[str, float | None], list[LatestSample]]: ...

    def set_retention(self, client_id: str, raw_days: float | None) -> None: ...

    def apply_retention(self, now: float) -> RetentionResult: ...


def labels_key(labels: Mapping[str, str]) -> str:
    """SHA-256 of the labels as sorted, compact JSON: a fixed-width column the unique index can hold."""
    return hashlib.sha256(orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS)).hexdigest()


def merge_rollups(parts: Iterable[tuple[float, int, float, float, float, float, float]]) -> list[Rollup]:
    """Merge partial aggregates ``(bucket, n, min, max, sum, last_ts, last)`` into one per bucket."""
    acc: dict[float, list[float]] = {}
    for bucket, n, lo, hi, total, last_ts, last in parts:
        cur = acc.get(bucket)
        if cur is None:
            acc[bucket] = [n, lo, hi, total, last_ts, last]
            continue
        cur[0] += n
        cur[1] = min(cur[1], lo)
        cur[2] = max(cur[2], hi)
        cur[3] += total
        if last_ts >= cur[4]:
            cur[4], cur[5] = last_ts, last
    return [Rollup(b, int(c[0]), c[1], c[2], c[3], c[5]) for b, c in sorted(acc.items())]


def merge_parts(bucket: F64, n: F64, vmin: F64, vmax: F64, vsum: F64, last_ts: F64, last: F64) -> Parts:
    """``merge_rollups`` on columns: one partial per bucket, ``last`` the value at the latest
    ``last_ts`` (on a tie, the later input, as ``merge_rollups`` keeps)."""
    if len(bucket) == 0:
        return _empty_parts()
    order = np.lexsort((last_ts, bucket))  # stable: by bucket, then time, then input order
    b = bucket[order]
    first = np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))
    ends = np.concatenate((first[1:], [len(b)])) - 1
    return (
        b[first],
        np.add.reduceat(n[order], first),
        np.minimum.reduceat(vmin[order], first),
        np.maximum.reduceat(vmax[order], first),
        np.add.reduceat(vsum[order], first),
        last[order][ends],
    )


def _empty_parts() -> Parts:
    e = np.zeros(0, dtype=np.float64)
    return e, e, e, e, e, e


def _select(parts: Parts, keep: npt.NDArray[np.bool_]) -> Parts:
    a, b, c, d, e, f = (p[keep] for p in parts)
    return a, b, c, d, e, f


def _hour_floor(ts: float) -> float:
    return math.floor(ts / HOUR) * HOUR


@functools.cache
def _pg_sql(sql: str) -> str:
    """``:name`` placeholders as psycopg's ``%(name)s``."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


class SqlMetricStore:
    """``MetricStore`` over an engine shared with ``SqlStore``, which owns (and disposes) it.

    ``SqlMetricStore(engine)`` returns the adapter for the engine's database (like ``pathlib.Path``
    returns a ``PosixPath``); this class holds what both share: series ids, reads and rollups.
    """

    def __new__(cls, engine: sa.Engine, **_options: float) -> SqlMetricStore:
        if cls is SqlMetricStore:
            # Imported here: both adapters import this module for the shared base.
            if engine.dialect.name == "postgresql":
                from infragent.store.metrics.pg import PgMetrics

                cls = PgMetrics
            else:
                from infragent.store.metrics.sqlite import SqliteMetrics

                cls = SqliteMetrics
        return super().__new__(cls)

    def __init__(
        self,
        engine: sa.Engine,
        *,
        raw_days: float = DEFAULT_RAW_DAYS,
        rollup_days: float = DEFAULT_ROLLUP_DAYS,
    ) -> None:
        self.engine = engine
        self.raw_days = raw_days
        self.rollup_days = rollup_days
        self.is_postgres = engine.dialect.name == "postgresql"
        self._ids: dict[SeriesKey, int] = {}
        #: the same ids keyed by the labels as sent (no SHA-256 per series per batch)
        self._quick: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            yield conn

    def _insert_ignoring(self, table: sa.Table, *unique: str) -> postgresql.Insert | sqlite.Insert:
        """``INSERT … ON CONFLICT (unique) DO NOTHING``: only that key is ignored, unlike ``OR IGNORE``."""
        if self.is_postgres:
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(unique))
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(unique))

    # -- writes -------------------------------------------------------------------------------------

    def write_batch(
        self, client_id: str, batch: MetricBatch, now: float, columns: Columns | None = None
    ) -> WriteResult:
        """Store the batch once: a batch id seen before for this tenant stores nothing."""
        raise NotImplementedError

    def apply_retention(self, now: float) -> RetentionResult:
        """Drop raw chunks past each tenant's retention (keeping their 1-hour rollups), old batch ids
        and rollups past ``rollup_days``."""
        raise NotImplementedError

    def _claim_batch(
        self, conn: sa.Connection, client_id: str, batch: MetricBatch, points: int, now: float
    ) -> bool:
        """Insert the batch id; False when it was already there (or a racing request got it first)."""
        stmt = self._insert_ignoring(metric_batches, "client_id", "batch_id").values(
            client_id=client_id, batch_id=batch.batch_id, host=batch.node_id, received_at=now, points=points
        )
        if self.is_postgres:
            return conn.execute(stmt.returning(metric_batches.c.batch_id)).first() is not None
        return bool(conn.execute(stmt).rowcount == 1)

    def _cached_ids(self, client_id: str, host: str, series: Sequence[SeriesData]) -> list[int] | None:
        """Every series' id from memory, or None if one must be looked up or created (in SQL)."""
        with self._lock:
            quick = self._quick
            hits = [quick.get((client_id, host, s.name, tuple(s.attributes.items()))) for s in series]
        return None if None in hits else cast(list[int], hits)

    def _series_ids(
        self, conn: sa.Connection, client_id: str, host: str, series: Sequence[SeriesData]
    ) -> tuple[list[int], dict[SeriesKey, int]]:
        """Ids for ``series`` in order, creating the missing ones; also the ids not yet cached.

        New series are inserted in sorted key order so two batches creating the same series on
        PostgreSQL take the unique-index locks in the same order and cannot deadlock.
        """
        quick = [(client_id, host, s.name, tuple(s.attributes.items())) for s in series]
        with self._lock:
            hits = [self._quick.get(k) for k in quick]
        if None not in hits:  # the steady state: no hashing, no SQL
            return cast(list[int], hits), {}
        keys: list[SeriesKey] = [(client_id, host, s.name, labels_key(s.attributes)) for s in series]
        with self._lock:
            known = {k: self._ids[k] for k in keys if k in self._ids}
            self._quick.update((q, known[k]) for q, k in zip(quick, keys, strict=True) if k in known)
        missing = {k: s for k, s in zip(keys, series, strict=True) if k not in known}
        found: dict[SeriesKey, int] = {}
        if missing:
            conn.execute(
                self._insert_ignoring(metric_series, "client_id", "host", "name", "labels_key"),
                [
                    {
                        "client_id": client_id,
                        "host": host,
                        "name": s.name,
                        "unit": s.unit,
                        "kind": s.kind,
                        "monotonic": s.monotonic,
                        "labels": dict(s.attributes),
                        "labels_key": key[3],
                    }
                    for key, s in sorted(missing.items(), key=lambda item: item[0])
                ],
            )
            names = sorted({k[2] for k in missing})
            rows = conn.execute(
                sa.select(metric_series.c.id, metric_series.c.name, metric_series.c.labels_key).where(
                    metric_series.c.client_id == client_id,
                    metric_series.c.host == host,
                    metric_series.c.name.in_(names),
                )
            )
            for row in rows:
                key = (client_id, host, row.name, row.labels_key)
                if key in missing:
                    found[key] = int(row.id)
            if len(found) != len(missing):
                raise StoreError(f"metric series vanished while writing batch for host {host!r}")
        return [known[k] if k in known else found[k] for k in keys], found

    def _remember(self, created: dict[SeriesKey, int]) -> None:
        if not created:
            return
        with self._lock:
            if len(self._ids) + len(created) > MAX_CACHED_SERIES:
                self._ids.clear()
                self._quick.clear()
            self._ids.update(created)

    def set_retention(self, client_id: str, raw_days: float | None) -> None:
        """Keep this tenant's raw samples ``raw_days`` (``None``: the store's default)."""
        with self.engine.begin() as conn:
            conn.execute(metric_retention.delete().where(metric_retention.c.client_id == client_id))
            if raw_days is not None:
                conn.execute(metric_retention.insert().values(client_id=client_id, raw_days=raw_days))

    def _retention_days(self, conn: sa.Connection) -> tuple[float, float]:
        """(shortest, longest) raw retention in effect for any tenant, the default included."""
        row = conn.execute(
            sa.select(sa.func.min(metric_retention.c.raw_days), sa.func.max(metric_retention.c.raw_days))
        ).one()
        lows = [self.raw_days] + ([float(row[0])] if row[0] is not None else [])
        highs = [self.raw_days] + ([float(row[1])] if row[1] is not None else [])
        return min(lows), max(highs)

    # -- reads --------------------------------------------------------------------------------------

    def _series_id(
        self, conn: sa.Connection, client_id: str, host: str, name: str, labels: Mapping[str, str]
    ) -> int | None:
        q = sa.select(metric_series.c.id).where(
            metric_series.c.client_id == client_id,
            metric_series.c.host == host,
            metric_series.c.name == name,
            metric_series.c.labels_key == labels_key(labels),
        )
        sid = conn.execute(q).scalar_one_or_none()
        return None if sid is None else int(sid)

    def _rows(self, conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a read as tuples, fetched the cheap way for each database.

        Why PostgreSQL's binary protocol on the raw psycopg connection: a day of tick-sized chunks is
        8,640 rows of seven floats, and parsing them from text costs ~25 ms; binary ~8 ms.
        ``sql`` uses ``:name`` placeholders (SQLite's); ``_pg_sql`` rewrites them for psycopg.
        """
        if self.is_postgres:
            raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
            with raw.cursor(binary=True) as cur:
                cur.execute(_pg_sql(sql), params)
                return cur.fetchall()
        return [tuple(r) for r in conn.exec_driver_sql(sql, params).fetchall()]

    def _chunk_samples(self, conn: sa.Connection, sid: int, lo: float, hi: float) -> tuple[F64, F64]:
        """Samples of ``sid`` in ``[lo, hi]`` by time (on equal times: in stored order).

        Why the chunks' data and not their summaries, even for 1-minute buckets: decoding is
        vectorized (``decode_joined``), and what costs is rows. On PostgreSQL the chunks come as
        ONE row (``string_agg`` of the blobs and their lengths): a day of tick-sized chunks, 8,640
        rows, fetched as eight columns took ~20 ms, as one column ~12 ms, as one row ~7 ms.
        """
        params = {"sid": sid, "hour_lo": _hour_floor(lo), "lo": float(lo), "hi": float(hi)}
        if self.is_postgres:
            [(joined, sizes, starts)] = self._rows(conn, _JOINED_SQL, params)
            sizes = np.frombuffer(bytes(sizes or b""), dtype=">i4")
            ts, values, counts = decode_joined(bytes(joined or b""), sizes)
            chunk_start = np.repeat(np.frombuffer(bytes(starts or b""), dtype=">f8"), counts)
        else:  # in start order already
            ts, values, counts = decode_chunks([bytes(r[0]) for r in self._rows(conn, _RAW_SQL, params)])
            chunk_start = np.repeat(np.arange(len(counts), dtype=np.float64), counts)
        keep = (ts >= lo) & (ts <= hi)
        ts, values, chunk_start = ts[keep], values[keep], chunk_start[keep]
        if len(ts) > 1 and not bool((np.diff(ts) > 0).all()):  # interleaved chunks, or equal times
            order = np.lexsort((chunk_start, ts))  # stable: by time, then chunk start, then stored order
            ts, values = ts[order], values[order]
        return ts, values

    def _minute_parts(self, conn: sa.Connection, sid: int, lo: float, to_ts: float) -> Parts:
        """1-minute buckets starting in ``[lo, to_ts]`` (``lo`` on a minute), from the samples.

        Storing them would cost about a byte per sample for data kept no longer than the raw
        (docs/architecture.md); computing them from a day of samples costs ~1 ms of numpy.
        """
        hi = math.floor(to_ts / 60) * 60.0 + 60 - 1e-9
        ts, values = self._chunk_samples(conn, sid, lo, hi)
        if len(ts) == 0:
            return _empty_parts()
        bucket = np.floor(ts / 60) * 60
        first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
        ends = np.concatenate((first[1:], [len(ts)])) - 1
        parts = (
            bucket[first],
            np.diff(np.concatenate((first, [len(ts)]))).astype(np.float64),
            np.minimum.reduceat(values, first),
            np.maximum.reduceat(values, first),
            np.add.reduceat(values, first),
            values[ends],
        )
        return _select(parts, parts[0] <= to_ts)

    def _hour_parts(self, conn: sa.Connection, sid: int, lo: float, to_ts: float) -> Parts:
        """1-hour buckets starting in ``[lo, to_ts]``: the chunk summaries (a chunk never crosses an
        hour) plus the rollups retention kept of dropped chunks."""
        params = {"sid": sid, "hour_lo": _hour_floor(lo), "lo": float(lo), "hi": float(to_ts) + HOUR}
        live = self._rows(conn, _HOUR_SQL, params)
        kept = self._rows(conn, _KEPT_SQL, {"sid": sid, "lo": float(lo), "hi": float(to_ts)})
        if not live and not kept:
            return _empty_parts()
        arr = np.array(live + kept, dtype=np.float64).reshape(-1, 7)
        bucket = arr[:, 0].copy()
        bucket[: len(live)] = np.floor(bucket[: len(live)] / HOUR) * HOUR
        parts = merge_parts(bucket, *(arr[:, j] for j in range(1, 7)))
        return _select(parts, (parts[0] >= lo) & (parts[0] <= to_ts))

    def query_range(
        self, client_id: str, host: str, name: str, labels: Mapping[str, str], from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]:
        """Samples of the one series with exactly these labels, ``from_ts <= ts <= to_ts``, by time."""
        with self._read() as conn:
            sid = self._series_id(conn, client_id, host, name, labels)
            if sid is None:
                return []
            ts, values = self._chunk_samples(conn, sid, from_ts, to_ts)
            return list(zip(ts.tolist(), values.tolist(), strict=True))

    def query_rollups(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        step: Literal[60, 3600],
    ) -> list[Rollup]:
        """Buckets of ``step`` seconds that start in ``[from_ts, to_ts]``, each over all its samples.

        1 hour: the chunk summaries plus the rollups retention kept. 1 minute: from the raw chunks,
        vectorized — storing them would cost about a byte per sample for data kept no longer than
        the raw (docs/architecture.md). Both are exact: count, min, max and last equal a recomputation.
        """
        if step not in (60, 3600):
            raise ValueError("step must be 60 or 3600 seconds")
        with self._read() as conn:
            sid = self._series_id(conn, client_id, host, name, labels)
            if sid is None:
                return []
            parts = self._rollup_parts(conn, sid, from_ts, to_ts, step)
        start, n, vmin, vmax, vsum, last = (p.tolist() for p in parts)
        return [Rollup(*r) for r in zip(start, map(int, n), vmin, vmax, vsum, last, strict=True)]

    def _rollup_parts(
        self, conn: sa.Connection, sid: int, from_ts: float, to_ts: float, step: Literal[60, 3600]
    ) -> Parts:
        lo = float(np.ceil(from_ts / step) * step)
        if lo > to_ts:
            return _empty_parts()
        if step == 60:
            return self._minute_parts(conn, sid, lo, to_ts)
        return self._hour_parts(conn, sid, lo, to_ts)

    def query_parts(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        source: Literal["raw", "1m", "1h"],
        *,
        max_series: int,
    ) -> list[SeriesParts]:
        """Every series of ``host``/``name`` whose labels *include* ``labels``, as columns: raw
        samples (``from_ts <= ts <= to_ts``) or the 1-minute / 1-hour buckets ``query_rollups``
        returns. Ordered like ``list_series``; more than ``max_series`` raise ``SeriesLimitError``.

        What ``GET /api/v1/query_range`` reads: one connection, one series lookup, no Python
        objects per sample.
        """
        s = metric_series.c
        q = (
            sa.select(s.id, s.labels)
            .where(s.client_id == client_id, s.host == host, s.name == name)
            .order_by(s.labels_key)
        )
        out: list[SeriesParts] = []
        with self._read() as conn:
            found = [(int(sid), dict(lab)) for sid, lab in conn.execute(q).all()]
            found = [(sid, lab) for sid, lab in found if all(lab.get(k) == v for k, v in labels.items())]
            if len(found) > max_series:
                raise SeriesLimitError(len(found), max_series)
            for sid, lab in found:
                if source == "raw":
                    ts, values = self._chunk_samples(conn, sid, from_ts, to_ts)
                    parts: Parts = (ts, np.ones(len(ts)), values, values, values, values)
                else:
                    parts = self._rollup_parts(conn, sid, from_ts, to_ts, 60 if source == "1m" else 3600)
                out.append(SeriesParts(host, name, lab, *parts))
        return out

    def count_samples(self, client_id: str) -> int:
        q = (
            sa.select(sa.func.coalesce(sa.func.sum(metric_chunks.c.n), 0))
            .select_from(metric_chunks.join(metric_series, metric_chunks.c.series_id == metric_series.c.id))
            .where(metric_series.c.client_id == client_id)
        )
        with self._read() as conn:
            return int(conn.execute(q).scalar_one())

    def list_series(
        self, client_id: str, *, host: str | None = None, name: str | None = None
    ) -> list[SeriesInfo]:
        """The tenant's series, optionally only one host's and/or one metric name's."""
        q = (
            sa.select(metric_series)
            .where(metric_series.c.client_id == client_id)
            .where(*([metric_series.c.host == host] if host is not None else []))
            .where(*([metric_series.c.name == name] if name is not None else []))
            .order_by(metric_series.c.host, metric_series.c.name, metric_series.c.labels_key)
        )
        with self._read() as conn:
            return [
                SeriesInfo(r.host, r.name, r.unit, r.kind, bool(r.monotonic), dict(r.labels))
                for r in conn.execute(q)
            ]

    def latest_by_host(
        self,
        client_id: str,
        since: float,
        until: float,
        wanted: Sequence[tuple[str, Mapping[str, str]]],
    ) -> tuple[dict[str, float | None], list[LatestSample]]:
        """(newest sample time per host, newest sample of each ``wanted`` series), over chunks
        starting in ``[since, until]``; a host with none there maps to ``None``.

        ``wanted`` pairs a metric name with labels a series must *include* (JSON path tests, on both
        databases). ``until`` (a little past now) keeps PostgreSQL off the partitions made ahead.

        Why one index probe per series (``ORDER BY start_ts DESC LIMIT 1``): an agent sends a chunk
        per series per tick, so aggregating a window would read hundreds of chunks per series.
        Why the host's newest sample is taken from the ``wanted`` series first: probing every series
        of a 1,000-host fleet (33,000) costs ~100 ms on PostgreSQL, and an agent sends all its
        families each tick, so they are as new as any. Only hosts with no ``wanted`` sample (SDK
        hosts, silent hosts) pay the probe of all their series.
        """
        s = metric_series.c
        newest, on = self._newest_chunk(since, until)
        match = [
            sa.and_(s.name == name, *(s.labels[k].as_string() == v for k, v in labels.items()))
            for name, labels in wanted
        ]
        values_q = (
            sa.select(s.host, s.name, newest.c.end_ts, newest.c.vlast)
            .select_from(metric_series.join(newest, on))
            .where(s.client_id == client_id, sa.or_(*match) if match else sa.false())
        )
        # byte order: a locale-aware sort of 33,000 names costs PostgreSQL ~15 ms for nothing
        host = s.host.collate("C") if self.is_postgres else s.host
        hosts_q = sa.select(host).where(s.client_id == client_id).group_by(host)
        with self._read() as conn:
            latest = [LatestSample(h, n, float(t), float(v)) for h, n, t, v in conn.execute(values_q).all()]
            seen: dict[str, float | None] = {str(h): None for (h,) in conn.execute(hosts_q).all()}
            for sample in latest:
                prev = seen[sample.host]
                seen[sample.host] = sample.ts if prev is None else max(prev, sample.ts)
            rest = [h for h, ts in seen.items() if ts is None]
            for part in range(0, len(rest), 500):
                rest_q = (
                    sa.select(s.host, sa.func.max(newest.c.end_ts))
                    .select_from(metric_series.join(newest, on))
                    .where(s.client_id == client_id, s.host.in_(rest[part : part + 500]))
                    .group_by(s.host)
                )
                seen.update((str(h), float(ts)) for h, ts in conn.execute(rest_q))
        return seen, latest

    def fleet_latest(
        self, client_id: str, since: float, until: float
    ) -> tuple[dict[str, float | None], list[LatestSample]]:
        """``latest_by_host`` of the fleet view's own series (``hosts.FLEET``), read from the
        ``metric_hosts`` rows the write path keeps (store/hosts.py): one short row per host.

        A host last seen before ``since`` maps to ``None``; a value older than ``since`` is left
        out. A tenant with no row at all (data stored before the write path noted hosts) is
        answered by ``latest_by_host``, the slow way.
        """
        with self._read() as conn:
            rows = read_hosts(conn, client_id)
        if not rows:
            wanted = [(name, {key: value}) for name, key, value in FLEET.values()]
            return self.latest_by_host(client_id, since, until, wanted)
        seen: dict[str, float | None] = {}
        latest: list[LatestSample] = []
        for r in rows:
            seen[r.host] = r.last_seen if r.last_seen >= since else None
            for (name, _, _), got in zip(FLEET.values(), (r.cpu, r.memory, r.filesystem), strict=True):
                if got is not None and got[0] >= since:
                    latest.append(LatestSample(r.host, name, got[0], got[1]))
        return seen, latest

    def _newest_chunk(self, since: float, until: float) -> tuple[sa.FromClause, sa.ColumnElement[bool]]:
        """What to join to ``metric_series`` for each series' newest chunk starting at or after ``since``.

        PostgreSQL: a ``LATERAL`` probe per series. SQLite has no ``LATERAL``; a correlated subquery
        picks the newest chunk's rowid, which is the same index probe.
        """
        s = metric_series.c
        if self.is_postgres:
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
