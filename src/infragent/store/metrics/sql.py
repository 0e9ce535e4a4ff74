"""``SqlMetricStore``: the metric store over an engine, on SQLite and PostgreSQL alike.

It implements the three ports of ``base.py``. Writes and retention go to the engine's own write
path, ``pg.PgWrites`` (daily partitions, binary COPY) or ``sqlite.SqliteWrites`` (one writer at a
time, group commit), chosen once here; reads are shared (``reads.py``), and so are series ids
(``series.py``).

Why composition and not a subclass per database: the store is one type callers can name and
annotate, and the write paths import nothing of it, so no module imports another in a circle.
``count_samples`` sums the chunks' point counts, so it stays exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

import sqlalchemy as sa

from infragent.query.aggregate import Partials
from infragent.query.errors import TooManySeriesError
from infragent.query.plan import Source
from infragent.query.selector import matches
from infragent.store.metrics import reads
from infragent.store.metrics.hosts import FLEET, read_hosts
from infragent.store.metrics.model import (
    DEFAULT_RAW_DAYS,
    DEFAULT_ROLLUP_DAYS,
    LatestSample,
    RetentionResult,
    Rollup,
    SeriesInfo,
    SeriesParts,
    WriteResult,
)
from infragent.store.metrics.pg import PgWrites
from infragent.store.metrics.series import SeriesIds
from infragent.store.metrics.sqlite import SqliteWrites
from infragent.store.schema import metric_chunks, metric_retention, metric_series
from infragent.wire import Columns, MetricBatch


class SqlMetricStore:
    """``MetricWriter``, ``MetricReader`` and ``MetricRetention`` over an engine shared with
    ``SqlStore``, which owns (and disposes) it.

    One instance per process: its series-id cache is what makes the steady state of ingest free of
    lookups, and on SQLite its writer lock is what serializes writes, compaction and retention.
    """

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
        self._ids = SeriesIds()
        self._writes: PgWrites | SqliteWrites = (
            PgWrites(engine, self._ids, raw_days=raw_days, rollup_days=rollup_days)
            if self.is_postgres
            else SqliteWrites(engine, self._ids, raw_days=raw_days, rollup_days=rollup_days)
        )

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            yield conn

    def writing(self) -> AbstractContextManager[object]:
        """Held while rewriting chunks outside ``write_batch`` (compaction): on SQLite the writer
        lock ingest takes, so nothing else writes meanwhile; on PostgreSQL nothing (MVCC)."""
        if isinstance(self._writes, SqliteWrites):
            return self._writes.writer
        return contextlib.nullcontext()

    # -- writes -------------------------------------------------------------------------------------

    def write_batch(
        self, client_id: str, batch: MetricBatch, now: float, columns: Columns | None = None
    ) -> WriteResult:
        """Store the batch once: a batch id seen before for this tenant stores nothing.

        ``columns``: the batch's points as arrays (a version-2 body, ``wire.decode_with_columns``),
        which saves building them again from the Python lists (PostgreSQL uses them).
        """
        return self._writes.write_batch(client_id, batch, now, columns)

    def set_retention(self, client_id: str, raw_days: float | None) -> None:
        """Keep this tenant's raw samples ``raw_days`` (``None``: the store's default)."""
        with self.engine.begin() as conn:
            conn.execute(metric_retention.delete().where(metric_retention.c.client_id == client_id))
            if raw_days is not None:
                conn.execute(metric_retention.insert().values(client_id=client_id, raw_days=raw_days))

    def apply_retention(self, now: float) -> RetentionResult:
        """Drop raw chunks past each tenant's retention (keeping their 1-hour rollups), old batch ids
        and rollups past ``rollup_days``."""
        return self._writes.apply_retention(now)

    # -- reads --------------------------------------------------------------------------------------

    def query_range(
        self, client_id: str, host: str, name: str, labels: Mapping[str, str], from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]:
        """Samples of the one series with exactly these labels, ``from_ts <= ts <= to_ts``, by time."""
        with self._read() as conn:
            sid = reads.series_id(conn, client_id, host, name, labels)
            if sid is None:
                return []
            ts, values = reads.chunk_samples(conn, sid, from_ts, to_ts)
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
            sid = reads.series_id(conn, client_id, host, name, labels)
            if sid is None:
                return []
            p = reads.rollup_parts(conn, sid, from_ts, to_ts, step)
        cols = (p.start.tolist(), map(int, p.n.tolist()), p.min.tolist(), p.max.tolist(), p.sum.tolist())
        return [Rollup(*r) for r in zip(*cols, p.last.tolist(), strict=True)]

    def query_parts(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        source: Source,
        *,
        max_series: int,
    ) -> list[SeriesParts]:
        """Every series of ``host``/``name`` whose labels *include* ``labels``, as partial aggregates:
        raw samples (``from_ts <= ts <= to_ts``) or the 1-minute / 1-hour buckets ``query_rollups``
        returns. Ordered like ``list_series``; more than ``max_series`` raise ``TooManySeriesError``.

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
            found = [(sid, lab) for sid, lab in found if matches(lab, labels)]
            if len(found) > max_series:
                raise TooManySeriesError(len(found), max_series)
            for sid, lab in found:
                if source == "raw":
                    parts = Partials.of_samples(*reads.chunk_samples(conn, sid, from_ts, to_ts))
                else:
                    parts = reads.rollup_parts(conn, sid, from_ts, to_ts, 60 if source == "1m" else 3600)
                out.append(SeriesParts(host, name, lab, parts))
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
        match = [
            sa.and_(s.name == name, *(s.labels[k].as_string() == v for k, v in labels.items()))
            for name, labels in wanted
        ]
        # byte order: a locale-aware sort of 33,000 names costs PostgreSQL ~15 ms for nothing
        host = s.host.collate("C") if self.is_postgres else s.host
        hosts_q = sa.select(host).where(s.client_id == client_id).group_by(host)
        with self._read() as conn:
            newest, on = reads.newest_chunk(conn, since, until)
            values_q = (
                sa.select(s.host, s.name, newest.c.end_ts, newest.c.vlast)
                .select_from(metric_series.join(newest, on))
                .where(s.client_id == client_id, sa.or_(*match) if match else sa.false())
            )
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
        ``metric_hosts`` rows the write path keeps (``hosts.py``): one short row per host.

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
