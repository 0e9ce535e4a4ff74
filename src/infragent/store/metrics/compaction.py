"""Compaction: rewrite each closed series-hour's chunks as one dense chunk (level 1).

Why: ingest stores every batch's points of a series as its own *raw* chunk (``chunks.py``,
flags 2: 16 bytes a point plus ~100 bytes of row overhead), because encoding densely on the write
path costs CPU that ingest cannot spare. Once an hour is closed, its chunks never grow again (late
data aside), so merging them into one chunk per series-hour pays the dense encoding once and leaves
one row where there were tens or hundreds: several times fewer bytes (docs/architecture.md).

What a pass does: find clock hours that still hold level-0 chunks (the partial index
``ix_metric_chunks_pending``) and ended at least ``delay_s`` before ``now``, oldest first. For each,
list the series with a level-0 chunk there, and in slices of series (one transaction each) read
**all** chunks of those series-hours (levels 0 and 1), decode them, merge them by time (stable: a
compacted chunk first, then the raw ones by start time, so equal timestamps keep arrival order),
encode one chunk per series-hour with ``split_columns(dense=True)`` (vectorized over the slice) and
summaries recomputed from the merged points, delete exactly the rows read and insert the new ones.

Why deletes go by row identity and not by ``(series, hour, level 0)``: ingest keeps writing while
we work, and a late batch may commit a chunk for a series-hour after our read. Deleting by a
predicate would drop it unread; deleting the ``ctid``\\s (PostgreSQL, in the day's partition, under
REPEATABLE READ so the rows cannot change identity under us) or ``rowid``\\s (SQLite) we read leaves
it alone, still level 0, for the next pass. Insert and delete share one transaction: a crash leaves
either the old chunks or the new one, never both or neither. A slice whose rows changed meanwhile
(retention deleted some) is rolled back and retried on a later pass.

Why one compactor at a time: two passes could read the same series-hour and both rewrite it. On
PostgreSQL a session advisory lock (per schema) makes a second pass — another server, the CLI —
return at once with nothing done. On SQLite every slice runs under the store's writer lock, the one
ingest takes, and in a ``BEGIN IMMEDIATE`` transaction, so nothing else writes while a slice does;
slices are kept small so ingest waits milliseconds, not seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any, cast

import numpy as np
import psycopg
import sqlalchemy as sa

from infragent.errors import StoreError
from infragent.store.metrics.chunk_rows import ChunkRow, split_columns
from infragent.store.metrics.chunks import HOUR, ChunkFormatError, decode_chunks
from infragent.store.metrics.model import DAY
from infragent.store.metrics.pg import COPY_COLUMNS, PARTITION_SCHEMA, copy_stream, partition_name
from infragent.store.metrics.sql import SqlMetricStore

logger = logging.getLogger(__name__)

#: Input chunks per transaction. SQLite holds the ingest writer lock for a slice (~50 ms here).
SLICE_CHUNKS_PG = 20_000
SLICE_CHUNKS_SQLITE = 5_000

_PG_LOCK = "SELECT pg_try_advisory_lock(hashtext('infragent.compaction.' || current_schema()))"
_PG_UNLOCK = "SELECT pg_advisory_unlock(hashtext('infragent.compaction.' || current_schema()))"
#: Column order of the rewritten rows (binary COPY on PostgreSQL, INSERT on SQLite).
_COPY_FIELDS = "series_id, start_ts, end_ts, n, vmin, vmax, vsum, vlast, level, data"
_SQLITE_INSERT = f"INSERT INTO metric_chunks ({_COPY_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"  # noqa: S608
#: The fixed part of one binary COPY tuple: 10 fields, ``level`` (int2) just before ``data``.


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one or more passes did. ``hours``: hours finished (no level-0 chunk left in them)."""

    hours: int = 0
    series_hours: int = 0
    chunks_in: int = 0
    chunks_out: int = 0
    points: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0

    def __add__(self, other: CompactionResult) -> CompactionResult:
        return CompactionResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def did_work(self) -> bool:
        return self.chunks_in > 0


@dataclass(slots=True)
class _Slice:
    """Chunks read in one transaction, in merge order; ``keys`` identify the rows to delete."""

    keys: list[Any]
    sids: list[int]
    ns: list[int]
    levels: list[int]
    blobs: list[bytes]

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> _Slice:
        """From rows of (key, series_id, n, level, data[, …]): a ctid string or a rowid as key."""
        return cls(
            [r[0] for r in rows],
            [int(r[1]) for r in rows],
            [int(r[2]) for r in rows],
            [int(r[3]) for r in rows],
            [bytes(r[4]) for r in rows],
        )


def compact(
    store: SqlMetricStore,
    now: float,
    *,
    delay_s: float = 600.0,
    max_chunks: int = 200_000,
    progress: Callable[[CompactionResult], None] | None = None,
    on_read: Callable[[], None] | None = None,
) -> CompactionResult:
    """Compact closed hours, oldest first, until about ``max_chunks`` input chunks are done.

    A call is bounded; loop until ``did_work`` is false to catch up. ``progress`` gets the running
    totals after each transaction. ``on_read`` runs after a slice is read and before it is rewritten
    (tests use it to commit a racing write). Returns an empty result when another pass holds the
    PostgreSQL lock.
    """
    started = time.perf_counter()
    limit = math.floor((now - delay_s) / HOUR) * HOUR  # hours starting before this are closed
    backend: _Backend = _PgBackend(store) if store.is_postgres else _SqliteBackend(store)
    done = CompactionResult()
    with backend.exclusive() as mine:
        if not mine:
            logger.info("compaction skipped: another pass holds the lock")
            return done
        after = -math.inf
        while done.chunks_in < max_chunks:
            hour = backend.next_hour(after, limit)
            if hour is None:
                break
            after = hour + HOUR
            pending = backend.pending_series(hour)
            finished = True
            for group in _groups(pending, backend.slice_chunks):
                if done.chunks_in >= max_chunks:
                    finished = False
                    break
                step = backend.rewrite(hour, group, on_read)
                done = done + step
                if step.series_hours == 0:
                    finished = False
                if progress is not None:
                    progress(_timed(done, started))
            if finished and pending:
                done = done + CompactionResult(hours=1)
        if done.chunks_in:
            backend.reclaim()
    return _timed(done, started)


def _timed(result: CompactionResult, started: float) -> CompactionResult:
    return replace(result, seconds=time.perf_counter() - started)


def _groups(pending: Sequence[tuple[int, int]], size: int) -> Iterator[list[int]]:
    """Series ids in runs whose level-0 chunk counts add up to about ``size`` (one at least)."""
    group: list[int] = []
    count = 0
    for sid, n in pending:
        if group and count + n > size:
            yield group
            group, count = [], 0
        group.append(sid)
        count += n
    if group:
        yield group


def merge_slice(part: _Slice) -> list[ChunkRow]:
    """One dense chunk per series of ``part``: its chunks' points merged by time (stable)."""
    ts, values, counts = decode_chunks(part.blobs)
    if counts.tolist() != part.ns:
        raise ChunkFormatError("a chunk's point count does not match its row's")
    sids: list[int] = []
    lengths: list[int] = []
    for sid, n in zip(part.sids, part.ns, strict=True):
        if sids and sids[-1] == sid:
            lengths[-1] += n
        else:
            sids.append(sid)
            lengths.append(n)
    rows = split_columns(sids, np.array(lengths, dtype=np.intp), ts, values, dense=True)
    if len(rows) != len(sids):
        raise ChunkFormatError("a chunk crosses a clock hour")
    return rows


class _Backend:
    """What differs between the databases: locking, finding work, and the rewrite transaction."""

    slice_chunks: int

    def __init__(self, store: SqlMetricStore) -> None:
        self.store = store
        self.engine = store.engine

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        yield True

    def next_hour(self, after: float, limit: float) -> float | None:
        """Start of the oldest hour in ``[after, limit)`` holding a level-0 chunk (partial index)."""
        sql = sa.text(
            "SELECT min(start_ts) FROM metric_chunks WHERE level = 0 AND start_ts >= :a AND start_ts < :b"
        )
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            first = conn.execute(sql, {"a": after, "b": limit}).scalar_one()
        return None if first is None else math.floor(float(first) / HOUR) * HOUR

    def pending_series(self, hour: float) -> list[tuple[int, int]]:
        """(series id, level-0 chunks) of every series with a level-0 chunk in the hour, by id."""
        sql = sa.text(
            "SELECT series_id, count(*) FROM metric_chunks WHERE level = 0 "
            "AND start_ts >= :a AND start_ts < :b GROUP BY series_id ORDER BY series_id"
        )
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            return [(int(s), int(n)) for s, n in conn.execute(sql, {"a": hour, "b": hour + HOUR})]

    def rewrite(
        self, hour: float, sids: list[int], on_read: Callable[[], None] | None
    ) -> CompactionResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def reclaim(self) -> None:
        """Give the space of rewritten raw chunks back to the file system, where that is cheap."""

    @staticmethod
    def _result(part: _Slice, rows: list[ChunkRow]) -> CompactionResult:
        return CompactionResult(
            series_hours=len(rows),
            chunks_in=len(part.keys),
            chunks_out=len(rows),
            points=sum(part.ns),
            bytes_in=sum(len(b) for b in part.blobs),
            bytes_out=sum(len(r.data) for r in rows),
        )


class _PgBackend(_Backend):
    slice_chunks = SLICE_CHUNKS_PG

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """A session advisory lock for this schema, on a connection held for the whole pass."""
        with self.engine.connect() as conn:
            got = bool(conn.exec_driver_sql(_PG_LOCK).scalar_one())
            conn.commit()
            if not got:
                yield False
                return
            try:
                yield True
            finally:
                try:
                    conn.rollback()
                    conn.exec_driver_sql(_PG_UNLOCK)
                    conn.commit()
                except sa.exc.DBAPIError:  # the session is gone, and its lock with it
                    conn.invalidate()

    def reclaim(self) -> None:
        """Truncate each day's raw leaf (``<day>_l0``) that holds no live row any more.

        Its rows were all rewritten into the ``_l1`` leaf, so only dead tuples are left. ``NOWAIT``:
        a leaf an ingest is writing into right now is simply skipped until the next pass.
        """
        with self.engine.connect() as conn:
            leaves = (
                conn.exec_driver_sql(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %(p)s AND c.relname LIKE %(like)s AND c.relkind = 'r'",
                    {
                        "p": PARTITION_SCHEMA,
                        "like": conn.exec_driver_sql("SELECT current_schema()").scalar_one()
                        + r"\_\_metric\_chunks\_%\_l0",
                    },
                )
                .scalars()
                .all()
            )
            conn.commit()
            for name in leaves:
                leaf = f'{PARTITION_SCHEMA}."{name}"'
                try:
                    with conn.begin():
                        conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
                        conn.exec_driver_sql(f"LOCK TABLE {leaf} IN ACCESS EXCLUSIVE MODE")
                        empty = conn.exec_driver_sql(f"SELECT NOT EXISTS (SELECT FROM {leaf})").scalar_one()  # noqa: S608
                        if (
                            empty
                            and conn.exec_driver_sql(
                                "SELECT pg_relation_size(%(t)s)", {"t": leaf}
                            ).scalar_one()
                        ):
                            conn.exec_driver_sql(f"TRUNCATE {leaf}")
                except sa.exc.OperationalError as exc:  # the lock timed out: busy, try next pass
                    logger.debug("raw leaf %s busy, not truncated: %s", name, exc.orig)

    def rewrite(self, hour: float, sids: list[int], on_read: Callable[[], None] | None) -> CompactionResult:
        try:
            return self._rewrite(hour, sids, on_read)
        except (_SliceChangedError, sa.exc.OperationalError) as exc:
            if isinstance(exc, sa.exc.OperationalError) and not isinstance(
                exc.orig, psycopg.errors.SerializationFailure
            ):
                raise
            logger.warning("compaction of hour %s rolled back, retried next pass: %s", hour, exc)
            return CompactionResult()

    def _rewrite(self, hour: float, sids: list[int], on_read: Callable[[], None] | None) -> CompactionResult:
        params = {"a": hour, "b": hour + HOUR, "s": sids}
        with (
            self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
            table = f'{PARTITION_SCHEMA}."{partition_name(schema, int(hour // DAY))}"'
            got = conn.exec_driver_sql(
                "SELECT ctid, series_id, n, level, data, tableoid::regclass::text "  # noqa: S608
                f"FROM {table} "  # ``table`` comes from partition_name
                "WHERE series_id = ANY(%(s)s) AND start_ts >= %(a)s AND start_ts < %(b)s "
                "ORDER BY series_id, level DESC, start_ts, ctid",
                params,
            ).all()
            merged = _merge_read(got, on_read)
            if merged is None:
                return CompactionResult()
            part, rows = merged
            # a ctid names a row within one table: delete from each leaf (level) what was read there
            by_leaf: dict[str, list[str]] = {}
            for r in got:
                by_leaf.setdefault(str(r[5]), []).append(r[0])
            gone = sum(
                conn.exec_driver_sql(
                    f"DELETE FROM {leaf} WHERE ctid = ANY(%(k)s::tid[])",  # noqa: S608 - a catalog name
                    {"k": keys},
                ).rowcount
                for leaf, keys in by_leaf.items()
            )
            if gone != len(part.keys):
                raise _SliceChangedError(f"{gone} of {len(part.keys)} chunks were still there")
            raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY {table} ({COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(copy_stream(rows, level=1))
        return self._result(part, rows)


class _SqliteBackend(_Backend):
    slice_chunks = SLICE_CHUNKS_SQLITE

    def reclaim(self) -> None:
        """Return the freed pages to the file system (databases created with ``auto_vacuum =
        INCREMENTAL``, see ``store/engine.py``; elsewhere SQLite reuses them in place)."""
        raw = self.engine.raw_connection()
        try:
            with self.store.writing():
                if raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                    # executescript steps the pragma to its end (execute() frees a single page)
                    raw.executescript("PRAGMA incremental_vacuum;")
        finally:
            raw.close()

    def rewrite(self, hour: float, sids: list[int], on_read: Callable[[], None] | None) -> CompactionResult:
        with self.store.writing(), self.engine.begin() as conn:
            got = conn.exec_driver_sql(
                "SELECT rowid, series_id, n, level, data FROM metric_chunks "
                "WHERE series_id IN (SELECT value FROM json_each(?)) AND start_ts >= ? AND start_ts < ? "
                "ORDER BY series_id, level DESC, start_ts, rowid",
                (_json_list(sids), hour, hour + HOUR),
            ).all()
            merged = _merge_read(got, on_read)
            if merged is None:
                return CompactionResult()
            part, rows = merged
            gone = conn.exec_driver_sql(
                "DELETE FROM metric_chunks WHERE rowid IN (SELECT value FROM json_each(?))",
                (_json_list(part.keys),),
            ).rowcount
            if gone != len(part.keys):  # nothing else writes in this transaction: a bug, not a race
                raise _SliceChangedError(f"{gone} of {len(part.keys)} chunks were still there")
            conn.exec_driver_sql(
                _SQLITE_INSERT,
                [
                    (r.series_id, r.start_ts, r.end_ts, r.n, r.vmin, r.vmax, r.vsum, r.vlast, r.data)
                    for r in rows
                ],
            )
        return self._result(part, rows)


def _merge_read(
    got: Sequence[Sequence[Any]], on_read: Callable[[], None] | None
) -> tuple[_Slice, list[ChunkRow]] | None:
    """The slice a backend read (None if empty), after ``on_read``, and its merged chunks."""
    part = _Slice.of(got)
    if not part.keys:
        return None
    if on_read is not None:
        on_read()
    return part, merge_slice(part)


def _json_list(ints: Sequence[int]) -> str:
    return "[" + ",".join(map(str, ints)) + "]"


class _SliceChangedError(StoreError):
    """Rows read by a slice were gone when it deleted them: roll back, leave them for a later pass."""
