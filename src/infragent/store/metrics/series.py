"""Series ids and batch claims: what both write paths share, as functions over a ``Connection``.

Why a batch table: agents deliver at least once (spool, retries), so the server must make a resend a
no-op. The batch id is inserted first, in the same transaction as the chunks, with
``ON CONFLICT DO NOTHING``; the unique key decides which of two racing requests stores the points.
On PostgreSQL the loser's insert waits for the winner's commit and then returns no row; on SQLite
``BEGIN IMMEDIATE`` serializes the writers and the loser sees rowcount 0. Either way the loser writes
nothing and reports ``duplicate=True``. If the winner rolls back, its batch row goes with it.

Why series ids are cached per store instance (``SeriesIds``): a host re-sends the same series every
tick, so after the first batch the ids come from memory. Ids are cached only after the transaction
that created them commits (``remember``), so a rolled-back insert never leaves a dangling id behind.
Retention never deletes series rows, so a cached id never goes stale.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from infragent.errors import StoreError
from infragent.store.metrics.model import MAX_CACHED_SERIES, SeriesKey, labels_key
from infragent.store.schema import metric_batches, metric_retention, metric_series
from infragent.wire import MetricBatch, SeriesData

_Quick = tuple[str, str, str, tuple[tuple[str, str], ...]]


def insert_ignoring(conn: sa.Connection, table: sa.Table, *unique: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (unique) DO NOTHING``: only that key is ignored, unlike ``OR IGNORE``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(unique))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(unique))


def claim_batch(conn: sa.Connection, client_id: str, batch: MetricBatch, points: int, now: float) -> bool:
    """Insert the batch id; False when it was already there (or a racing request got it first)."""
    stmt = insert_ignoring(conn, metric_batches, "client_id", "batch_id").values(
        client_id=client_id, batch_id=batch.batch_id, host=batch.node_id, received_at=now, points=points
    )
    if conn.dialect.name == "postgresql":
        return conn.execute(stmt.returning(metric_batches.c.batch_id)).first() is not None
    return bool(conn.execute(stmt).rowcount == 1)


def retention_days(conn: sa.Connection, default: float) -> tuple[float, float]:
    """(shortest, longest) raw retention in effect for any tenant, ``default`` included."""
    row = conn.execute(
        sa.select(sa.func.min(metric_retention.c.raw_days), sa.func.max(metric_retention.c.raw_days))
    ).one()
    lows = [default] + ([float(row[0])] if row[0] is not None else [])
    highs = [default] + ([float(row[1])] if row[1] is not None else [])
    return min(lows), max(highs)


class SeriesIds:
    """The id cache of one store instance (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._ids: dict[SeriesKey, int] = {}
        #: the same ids keyed by the labels as sent (no SHA-256 per series per batch)
        self._quick: dict[_Quick, int] = {}
        self._lock = threading.Lock()

    def cached(self, client_id: str, host: str, series: Sequence[SeriesData]) -> list[int] | None:
        """Every series' id from memory, or None if one must be looked up or created (in SQL)."""
        with self._lock:
            quick = self._quick
            hits = [quick.get((client_id, host, s.name, tuple(s.attributes.items()))) for s in series]
        return None if None in hits else cast(list[int], hits)

    def resolve(
        self, conn: sa.Connection, client_id: str, host: str, series: Sequence[SeriesData]
    ) -> tuple[list[int], dict[SeriesKey, int]]:
        """Ids for ``series`` in order, creating the missing ones; also the ids not yet cached
        (hand them to ``remember`` once the transaction has committed).

        New series are inserted in sorted key order so two batches creating the same series on
        PostgreSQL take the unique-index locks in the same order and cannot deadlock.
        """
        quick: list[_Quick] = [(client_id, host, s.name, tuple(s.attributes.items())) for s in series]
        with self._lock:
            hits = [self._quick.get(k) for k in quick]
        if None not in hits:  # the steady state: no hashing, no SQL
            return cast(list[int], hits), {}
        keys: list[SeriesKey] = [(client_id, host, s.name, labels_key(s.attributes)) for s in series]
        with self._lock:
            known = {k: self._ids[k] for k in keys if k in self._ids}
            self._quick.update((q, known[k]) for q, k in zip(quick, keys, strict=True) if k in known)
        missing = {k: s for k, s in zip(keys, series, strict=True) if k not in known}
        found = _create(conn, client_id, host, missing) if missing else {}
        return [known[k] if k in known else found[k] for k in keys], found

    def remember(self, created: dict[SeriesKey, int]) -> None:
        if not created:
            return
        with self._lock:
            if len(self._ids) + len(created) > MAX_CACHED_SERIES:
                self._ids.clear()
                self._quick.clear()
            self._ids.update(created)


def _create(
    conn: sa.Connection, client_id: str, host: str, missing: dict[SeriesKey, SeriesData]
) -> dict[SeriesKey, int]:
    """Insert the ``missing`` series (those another writer created meanwhile are kept) and read
    back all their ids."""
    conn.execute(
        insert_ignoring(conn, metric_series, "client_id", "host", "name", "labels_key"),
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
    found: dict[SeriesKey, int] = {}
    for row in rows:
        key = (client_id, host, row.name, row.labels_key)
        if key in missing:
            found[key] = int(row.id)
    if len(found) != len(missing):
        raise StoreError(f"metric series vanished while writing batch for host {host!r}")
    return found
