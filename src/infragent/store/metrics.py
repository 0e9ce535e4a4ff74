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

import hashlib
import heapq
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.errors import StoreError
from infragent.store.chunks import HOUR, decode_chunk
from infragent.store.schema import (
    metric_batches,
    metric_chunks,
    metric_retention,
    metric_rollups_1h,
    metric_series,
)
from infragent.wire import MetricBatch, SeriesData

#: A bound on the id cache: a tenant with more live series than this pays a SELECT per new batch.
MAX_CACHED_SERIES = 200_000
DEFAULT_RAW_DAYS = 30.0
DEFAULT_ROLLUP_DAYS = 400.0
DAY = 86_400.0

SeriesKey = tuple[str, str, str, str]  # (client_id, host, name, labels_key)


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


class MetricStore(Protocol):
    """The port ingest and rules use; all reads are scoped by tenant (``client_id``)."""

    def write_batch(self, client_id: str, batch: MetricBatch, now: float) -> WriteResult: ...

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


class SqlMetricStore:
    """``MetricStore`` over an engine shared with ``SqlStore``, which owns (and disposes) it.

    ``SqlMetricStore(engine)`` returns the adapter for the engine's database (like ``pathlib.Path``
    returns a ``PosixPath``); this class holds what both share: series ids, reads and rollups.
    """

    def __new__(cls, engine: sa.Engine, **_options: float) -> SqlMetricStore:
        if cls is SqlMetricStore:
            # Imported here: both adapters import this module for the shared base.
            if engine.dialect.name == "postgresql":
                from infragent.store.metrics_pg import PgMetrics

                cls = PgMetrics
            else:
                from infragent.store.metrics_sqlite import SqliteMetrics

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

    def write_batch(self, client_id: str, batch: MetricBatch, now: float) -> WriteResult:
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

    @staticmethod
    def _overlapping(sid: int, from_ts: float, to_ts: float) -> sa.ColumnElement[bool]:
        """Chunks of ``sid`` that may hold samples in ``[from_ts, to_ts]``.

        ``start_ts >= hour(from_ts)`` is implied (a chunk never crosses an hour) and lets
        PostgreSQL prune partitions and bound the index scan from below.
        """
        c = metric_chunks.c
        return sa.and_(
            c.series_id == sid,
            c.start_ts >= float(np.floor(from_ts / HOUR) * HOUR),
            c.start_ts <= to_ts,
            c.end_ts >= from_ts,
        )

    def _samples(
        self, conn: sa.Connection, sid: int, from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]:
        q = (
            sa.select(metric_chunks.c.data)
            .where(self._overlapping(sid, from_ts, to_ts))
            .order_by(metric_chunks.c.start_ts)
        )
        runs: list[list[tuple[float, float]]] = []
        for (data,) in conn.execute(q):
            ts, values = decode_chunk(bytes(data))
            keep = (ts >= from_ts) & (ts <= to_ts)
            runs.append(list(zip(ts[keep].tolist(), values[keep].tolist(), strict=True)))
        # each chunk is time-sorted; chunks of different batches may interleave
        return list(heapq.merge(*runs, key=lambda p: p[0]))

    def query_range(
        self, client_id: str, host: str, name: str, labels: Mapping[str, str], from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]:
        """Samples of the one series with exactly these labels, ``from_ts <= ts <= to_ts``, by time."""
        with self._read() as conn:
            sid = self._series_id(conn, client_id, host, name, labels)
            return [] if sid is None else self._samples(conn, sid, from_ts, to_ts)

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

        1 hour: the chunk summaries (a chunk never crosses an hour) merged in SQL-sized steps, plus
        the rollups retention kept of dropped chunks. 1 minute: from the raw chunks, vectorized —
        storing them would cost about a byte per sample for data kept no longer than the raw
        (docs/architecture.md). Both are exact: count, min, max and last equal a recomputation.
        """
        if step not in (60, 3600):
            raise ValueError("step must be 60 or 3600 seconds")
        lo = float(np.ceil(from_ts / step) * step)
        with self._read() as conn:
            sid = self._series_id(conn, client_id, host, name, labels)
            if sid is None or lo > to_ts:
                return []
            if step == 60:
                return self._minute_rollups(conn, sid, lo, to_ts)
            c = metric_chunks.c
            live = conn.execute(
                sa.select(c.start_ts, c.n, c.vmin, c.vmax, c.vsum, c.end_ts, c.vlast).where(
                    self._overlapping(sid, lo, to_ts + HOUR)
                )
            )
            r = metric_rollups_1h.c
            kept = conn.execute(
                sa.select(r.bucket, r.n, r.vmin, r.vmax, r.vsum, r.last_ts, r.vlast).where(
                    r.series_id == sid, r.bucket >= lo, r.bucket <= to_ts
                )
            )
            parts = [(float(np.floor(row[0] / HOUR) * HOUR), *row[1:]) for row in live]
            parts += [tuple(row) for row in kept]
            return [b for b in merge_rollups(parts) if lo <= b.start <= to_ts]

    def _minute_rollups(self, conn: sa.Connection, sid: int, lo: float, to_ts: float) -> list[Rollup]:
        """Chunks that lie inside one minute bucket of the range contribute their stored summary;
        only the others are decoded.

        Why: an agent sends a batch per 10-second tick, so a day of one series is 8,640 one-point
        chunks; decoding each costs ~30 µs in Python, reading its summary nothing extra. Summaries
        are exact (``chunks.py``), so the result still equals a recomputation.
        """
        hi = float(np.floor(to_ts / 60) * 60 + 60) - 1e-9
        c = metric_chunks.c
        if self.is_postgres:
            same_minute = sa.func.floor(c.start_ts / 60) == sa.func.floor(c.end_ts / 60)
        else:  # SQLite may lack floor(); a cast truncates, which is floor for positive times
            minute = sa.Integer()
            same_minute = sa.and_(
                c.start_ts >= 0, sa.cast(c.start_ts / 60, minute) == sa.cast(c.end_ts / 60, minute)
            )
        inside = sa.and_(same_minute, c.start_ts >= lo, c.end_ts <= hi)
        q = sa.select(
            c.start_ts, c.n, c.vmin, c.vmax, c.vsum, c.end_ts, c.vlast, sa.case((inside, None), else_=c.data)
        ).where(self._overlapping(sid, lo, hi))
        parts: list[tuple[float, int, float, float, float, float, float]] = []
        runs: list[list[tuple[float, float]]] = []
        for start, n, vmin, vmax, vsum, end, vlast, data in conn.execute(q):
            if data is None:
                parts.append((math.floor(start / 60) * 60.0, n, vmin, vmax, vsum, end, vlast))
                continue
            ts, values = decode_chunk(bytes(data))
            keep = (ts >= lo) & (ts <= hi)
            runs.append(list(zip(ts[keep].tolist(), values[keep].tolist(), strict=True)))
        samples = list(heapq.merge(*runs, key=lambda p: p[0]))
        if not parts:
            return self._bucket_minutes(samples, to_ts)
        # mixed: each decoded sample is a one-point partial, so ``last`` still goes by time
        parts += [(float(np.floor(t / 60) * 60), 1, v, v, v, t, v) for t, v in samples]
        return [r for r in merge_rollups(parts) if r.start <= to_ts]

    @staticmethod
    def _bucket_minutes(samples: list[tuple[float, float]], to_ts: float) -> list[Rollup]:
        if not samples:
            return []
        arr = np.array(samples, dtype=np.float64)
        ts, values = arr[:, 0], arr[:, 1]
        bucket = np.floor(ts / 60) * 60
        starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
        ends = np.concatenate((starts[1:], [len(ts)])) - 1
        counts = np.diff(np.concatenate((starts, [len(ts)])))
        out = zip(
            bucket[starts].tolist(),
            counts.tolist(),
            np.minimum.reduceat(values, starts).tolist(),
            np.maximum.reduceat(values, starts).tolist(),
            np.add.reduceat(values, starts).tolist(),
            values[ends].tolist(),
            strict=True,
        )
        return [Rollup(b, n, lo_, hi, total, last) for b, n, lo_, hi, total, last in out if b <= to_ts]

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
            latest = [
                LatestSample(r.host, r.name, float(r.end_ts), float(r.vlast)) for r in conn.execute(values_q)
            ]
            seen: dict[str, float | None] = {str(h): None for (h,) in conn.execute(hosts_q)}
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
