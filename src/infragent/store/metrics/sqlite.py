"""SQLite metric adapter: the same chunks and rollups, one writer at a time, batches group-committed.

Why one writer at a time: SQLite has one write lock per file. Threads that each ``BEGIN IMMEDIATE``
queue on it through ``busy_timeout``, sleeping and retrying. Here a writer enqueues its batch and
takes the store's writer lock; whoever holds it drains the whole queue into **one** transaction
(group commit), so N waiting requests cost one commit, not N. There is no dedicated thread to start,
stop or leak: the caller that gets the lock does the work, and the others find their batch done.

Why a savepoint per batch: one bad batch (an unknown tenant, say) must fail alone; its savepoint
rolls back and its caller gets the exception, while the rest of the group commits.

Retention deletes rows (there are no partitions), archiving whole hours into ``metric_rollups_1h``
first, as PostgreSQL does when it drops a partition (``last`` comes from a ``first_value`` window
ordered by ``end_ts``, SQLite having no ``array_agg``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import sqlalchemy as sa

from infragent.store.metrics.chunk_rows import ChunkRow, split_batch
from infragent.store.metrics.hosts import note_batch
from infragent.store.metrics.model import DAY, RetentionResult, SeriesKey, WriteResult
from infragent.store.metrics.series import SeriesIds, claim_batch, retention_days
from infragent.wire import Columns, MetricBatch

_INSERT = (
    "INSERT INTO metric_chunks (series_id, start_ts, end_ts, n, vmin, vmax, vsum, vlast, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_DOOMED = """
FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id
LEFT JOIN metric_retention r ON r.client_id = s.client_id
WHERE c.start_ts < :upper
  AND floor(c.start_ts / 3600) * 3600 + 3600 <= :now - coalesce(r.raw_days, :default) * 86400
"""

_ARCHIVE = f"""
INSERT INTO metric_rollups_1h (series_id, bucket, n, vmin, vmax, vsum, last_ts, vlast)
SELECT series_id, bucket, sum(n), min(vmin), max(vmax), sum(vsum), max(end_ts), max(lastv)
FROM (
    SELECT c.series_id, floor(c.start_ts / 3600) * 3600 AS bucket, c.n, c.vmin, c.vmax, c.vsum, c.end_ts,
           first_value(c.vlast) OVER (
               PARTITION BY c.series_id, floor(c.start_ts / 3600) ORDER BY c.end_ts DESC
           ) AS lastv
    {_DOOMED}
) WHERE true
GROUP BY series_id, bucket
ON CONFLICT (series_id, bucket) DO UPDATE SET
    n = metric_rollups_1h.n + excluded.n,
    vmin = min(metric_rollups_1h.vmin, excluded.vmin),
    vmax = max(metric_rollups_1h.vmax, excluded.vmax),
    vsum = metric_rollups_1h.vsum + excluded.vsum,
    vlast = CASE WHEN excluded.last_ts >= metric_rollups_1h.last_ts
                 THEN excluded.vlast ELSE metric_rollups_1h.vlast END,
    last_ts = max(metric_rollups_1h.last_ts, excluded.last_ts)
"""  # noqa: S608 - built from constants only

_DELETE = f"DELETE FROM metric_chunks WHERE rowid IN (SELECT c.rowid {_DOOMED})"  # noqa: S608 - constants


@dataclass(eq=False)
class _Job:
    """One caller's batch, waiting for whichever caller holds the writer lock to store it."""

    client_id: str
    batch: MetricBatch
    now: float
    rows: list[ChunkRow]
    points: int
    done: bool = False
    result: WriteResult | None = None
    error: BaseException | None = None
    created: dict[SeriesKey, int] = field(default_factory=dict)


class SqliteWrites:
    """``SqlMetricStore``'s writes and retention on SQLite: see the module docstring for the write
    path and why. ``writer`` is the one write lock; compaction takes it too."""

    def __init__(self, engine: sa.Engine, ids: SeriesIds, *, raw_days: float, rollup_days: float) -> None:
        self.engine = engine
        self.raw_days = raw_days
        self.rollup_days = rollup_days
        self.writer = threading.Lock()
        self._ids = ids
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()

    def write_batch(
        self, client_id: str, batch: MetricBatch, now: float, columns: Columns | None = None
    ) -> WriteResult:
        """Store the batch once: a batch id seen before for this tenant stores nothing."""
        series = [s for s in batch.series if s.values]
        rows = split_batch([(i, s.timestamps, s.values) for i, s in enumerate(series)], dense=False)
        job = _Job(client_id, batch, now, rows, sum(len(s.values) for s in series))
        with self._queue_lock:
            self._queue.append(job)
        with self.writer:
            if not job.done:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._commit_group(jobs)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _commit_group(self, jobs: list[_Job]) -> None:
        """Store every job in one transaction, each under its own savepoint; mark them all done."""
        try:
            with self.engine.begin() as conn:
                for job in jobs:
                    try:
                        with conn.begin_nested():
                            job.result = self._store(conn, job)
                    except Exception as exc:  # noqa: BLE001 - handed to the job's caller, who re-raises it
                        job.error = exc
        except Exception as exc:  # noqa: BLE001 - the commit failed: every job of the group failed
            for job in jobs:
                job.error = job.error or exc
        else:
            for job in jobs:
                if job.error is None:
                    self._ids.remember(job.created)
        finally:
            for job in jobs:
                job.done = True

    def _store(self, conn: sa.Connection, job: _Job) -> WriteResult:
        batch = job.batch
        if not claim_batch(conn, job.client_id, batch, job.points, job.now):
            return WriteResult(accepted_points=0, duplicate=True)
        series = [s for s in batch.series if s.values]
        ids, job.created = self._ids.resolve(conn, job.client_id, batch.node_id, series)
        if job.rows:
            conn.exec_driver_sql(
                _INSERT,
                [
                    (ids[r.series_id], r.start_ts, r.end_ts, r.n, r.vmin, r.vmax, r.vsum, r.vlast, r.data)
                    for r in job.rows
                ],
            )
        note_batch(
            conn, postgres=False, client_id=job.client_id, host=batch.node_id, series=series, now=job.now
        )
        return WriteResult(accepted_points=job.points, duplicate=False)

    def apply_retention(self, now: float) -> RetentionResult:
        """Delete chunks past each tenant's retention (whole hours, archived as 1-hour rollups first),
        batch ids past the longest retention and rollups past ``rollup_days``."""
        with self.writer, self.engine.begin() as conn:
            shortest, longest = retention_days(conn, self.raw_days)
            params = {"upper": now - shortest * DAY, "now": now, "default": self.raw_days}
            conn.execute(sa.text(_ARCHIVE), params)
            deleted = conn.execute(sa.text(_DELETE), params).rowcount
            conn.execute(
                sa.text("DELETE FROM metric_batches WHERE received_at < :c"), {"c": now - longest * DAY}
            )
            conn.execute(
                sa.text("DELETE FROM metric_rollups_1h WHERE bucket < :c"),
                {"c": now - self.rollup_days * DAY},
            )
        return RetentionResult(dropped_partitions=0, deleted_chunks=int(deleted))
