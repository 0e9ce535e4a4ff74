"""Metric storage: the ``MetricStore`` port and its SQLAlchemy Core adapter for SQLite and PostgreSQL.

Why a batch table: agents deliver at least once (spool, retries), so the server must make a resend a
no-op. The batch id is inserted first, in the same transaction as the samples, with
``ON CONFLICT DO NOTHING``; the unique key decides which of two racing requests stores the points.
On PostgreSQL the loser's insert waits for the winner's commit and then returns no row; on SQLite
``BEGIN IMMEDIATE`` (see ``engine.py``) serializes the writers and the loser sees rowcount 0. Either
way the loser writes nothing and reports ``duplicate=True``. If the winner rolls back, its batch row
goes with it and a later resend is stored normally.

Why series ids are cached per store instance: a host re-sends the same few hundred series every
tick, so after the first batch the ids come from memory and a write is two statements (the batch
row and one executemany of samples). Ids are cached only after the transaction that created them
commits, so a rolled-back insert never leaves a dangling id behind. Nothing deletes series yet; the
retention work that does must also clear this cache.

Why every metric query lives here: the sample layout (one row per point) is the simple, correct
first version; a later issue replaces it with chunks and rollups behind this same interface.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.errors import StoreError
from infragent.store.schema import metric_batches, metric_samples, metric_series
from infragent.wire import MetricBatch, SeriesData

#: A bound on the id cache: a tenant with more live series than this pays a SELECT per new batch.
MAX_CACHED_SERIES = 200_000

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


class MetricStore(Protocol):
    """The port ingest and rules use; all reads are scoped by tenant (``client_id``)."""

    def write_batch(self, client_id: str, batch: MetricBatch, now: float) -> WriteResult: ...

    def query_range(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
    ) -> list[tuple[float, float]]: ...

    def count_samples(self, client_id: str) -> int: ...

    def list_series(self, client_id: str) -> list[SeriesInfo]: ...


def labels_key(labels: Mapping[str, str]) -> str:
    """SHA-256 of the labels as sorted, compact JSON: a fixed-width column the unique index can hold."""
    return hashlib.sha256(orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS)).hexdigest()


class SqlMetricStore:
    """``MetricStore`` over an engine shared with ``SqlStore``, which owns (and disposes) it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._ids: dict[SeriesKey, int] = {}
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
        series = [s for s in batch.series if s.values]
        points = sum(len(s.values) for s in series)
        with self.engine.begin() as conn:
            if not self._claim_batch(conn, client_id, batch, points, now):
                return WriteResult(accepted_points=0, duplicate=True)
            ids, created = self._series_ids(conn, client_id, batch.node_id, series)
            rows = [
                {"series_id": sid, "ts": ts, "value": value}
                for s, sid in zip(series, ids, strict=True)
                for ts, value in zip(s.timestamps, s.values, strict=True)
            ]
            if rows:
                conn.execute(metric_samples.insert(), rows)
        self._remember(created)
        return WriteResult(accepted_points=points, duplicate=False)

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
        keys: list[SeriesKey] = [(client_id, host, s.name, labels_key(s.attributes)) for s in series]
        with self._lock:
            known = {k: self._ids[k] for k in keys if k in self._ids}
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
            self._ids.update(created)

    # -- reads --------------------------------------------------------------------------------------

    def query_range(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
    ) -> list[tuple[float, float]]:
        """Samples of the one series with exactly these labels, ``from_ts <= ts <= to_ts``, by time."""
        q = (
            sa.select(metric_samples.c.ts, metric_samples.c.value)
            .select_from(metric_samples.join(metric_series, metric_samples.c.series_id == metric_series.c.id))
            .where(
                metric_series.c.client_id == client_id,
                metric_series.c.host == host,
                metric_series.c.name == name,
                metric_series.c.labels_key == labels_key(labels),
                metric_samples.c.ts >= from_ts,
                metric_samples.c.ts <= to_ts,
            )
            .order_by(metric_samples.c.ts)
        )
        with self._read() as conn:
            return [(float(r.ts), float(r.value)) for r in conn.execute(q)]

    def count_samples(self, client_id: str) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(metric_samples.join(metric_series, metric_samples.c.series_id == metric_series.c.id))
            .where(metric_series.c.client_id == client_id)
        )
        with self._read() as conn:
            return int(conn.execute(q).scalar_one())

    def list_series(self, client_id: str) -> list[SeriesInfo]:
        q = (
            sa.select(metric_series)
            .where(metric_series.c.client_id == client_id)
            .order_by(metric_series.c.host, metric_series.c.name, metric_series.c.labels_key)
        )
        with self._read() as conn:
            return [
                SeriesInfo(r.host, r.name, r.unit, r.kind, bool(r.monotonic), dict(r.labels))
                for r in conn.execute(q)
            ]
