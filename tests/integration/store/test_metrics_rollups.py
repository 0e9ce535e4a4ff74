"""Rollups equal a recomputation from raw samples; retention drops old data and keeps the rest.

Every test runs on SQLite and PostgreSQL (the ``store`` fixture). Times are recent and hour-aligned
so that PostgreSQL's day partitions are the ones retention would really see.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from infragent.store.metrics import Rollup, SqlMetricStore, WriteResult
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client

DAY = 86_400.0
NOW = 1_764_028_800.0  # midnight UTC
CPU = {"cpu.mode": "user"}
Q = ("host-1", "system.cpu.utilization", CPU)


def _batch(batch_id: str, ts: list[float], values: list[float], node: str = "host-1") -> MetricBatch:
    series = SeriesData("system.cpu.utilization", "1", "gauge", False, CPU, ts, values)
    return MetricBatch(batch_id, node, {"host.name": node}, [series])


def _recompute(samples: list[tuple[float, float]], step: int) -> list[Rollup]:
    buckets: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for ts, v in sorted(samples, key=lambda p: p[0]):
        buckets[(ts // step) * step].append((ts, v))
    return [
        Rollup(b, len(ps), min(v for _, v in ps), max(v for _, v in ps), sum(v for _, v in ps), ps[-1][1])
        for b, ps in sorted(buckets.items())
    ]


def _same(got: list[Rollup], want: list[Rollup]) -> None:
    assert [(r.start, r.count, r.min, r.max, r.last) for r in got] == [
        (r.start, r.count, r.min, r.max, r.last) for r in want
    ]
    assert [r.sum for r in got] == pytest.approx([r.sum for r in want])
    assert [r.avg for r in got] == pytest.approx([r.avg for r in want])


@pytest.fixture
def raw_days() -> float:
    return 7.0


def _interleaved_batches(
    start: float, n_batches: int = 5
) -> tuple[list[MetricBatch], list[tuple[float, float]]]:
    """Batches whose points interleave in time, so several batches hit every minute and hour."""
    rnd = random.Random(11)
    all_ts = [start + i * 7.0 for i in range(1200)]  # 2.3 hours, 7 s apart: buckets never align
    rnd.shuffle(all_ts)
    batches, samples = [], []
    for b in range(n_batches):
        ts = sorted(all_ts[b::n_batches])
        values = [round(rnd.uniform(-50, 50), 3) for _ in ts]
        batches.append(_batch(f"b-{b}", ts, values))
        samples += list(zip(ts, values, strict=True))
    return batches, samples


@pytest.mark.parametrize("step", [60, 3600])
def test_rollups_equal_recomputed_aggregates_across_batches(
    metrics: SqlMetricStore, tenant: str, step: int
) -> None:
    batches, samples = _interleaved_batches(NOW - 3 * 3600 + 13)
    for b in batches:
        assert metrics.write_batch(tenant, b, now=NOW).accepted_points == len(b.series[0].values)
    got = metrics.query_rollups(tenant, *Q, 0, 2e9, step=step)  # type: ignore[arg-type]
    _same(got, _recompute(samples, step))
    # a window selects the buckets that start in it, each over all of its samples
    lo, hi = NOW - 2 * 3600, NOW - 3600
    window = [r for r in _recompute(samples, step) if lo <= r.start <= hi]
    _same(metrics.query_rollups(tenant, *Q, lo, hi, step=step), window)  # type: ignore[arg-type]
    assert metrics.query_rollups("someone-else", *Q, 0, 2e9, step=step) == []  # type: ignore[arg-type]


def test_rollups_refuse_other_steps(metrics: SqlMetricStore, tenant: str) -> None:
    with pytest.raises(ValueError, match="60 or 3600"):
        metrics.query_rollups(tenant, *Q, 0, 1, step=300)  # type: ignore[arg-type]


def _partitions(store: SqlStore) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'metric_chunks' AND n.nspname = current_schema() ORDER BY 1"
        )
        return [r[0] for r in rows]


def test_retention_drops_old_data_keeps_the_rest_and_its_hourly_rollups(
    store: SqlStore, metrics: SqlMetricStore, tenant: str
) -> None:
    old = [NOW - 10 * DAY + 60 * i for i in range(90)]  # 10 days old: past 7 days' retention
    new = [NOW - DAY + 60 * i for i in range(90)]
    assert metrics.write_batch(
        tenant, _batch("old", old, [float(i) for i in range(90)]), now=NOW
    ).accepted_points
    metrics.write_batch(tenant, _batch("new", new, [float(i) for i in range(90)]), now=NOW)
    hourly_before = metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600)
    is_pg = store.engine.dialect.name == "postgresql"
    before = _partitions(store) if is_pg else []

    result = metrics.apply_retention(NOW)

    assert metrics.count_samples(tenant) == 90
    assert [ts for ts, _ in metrics.query_range(tenant, *Q, 0, 2e9)] == new
    assert metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600) == hourly_before  # kept for old data
    assert [r.start for r in metrics.query_rollups(tenant, *Q, 0, 2e9, step=60)] == new  # raw only
    assert result.deleted_chunks == 2  # the old data spanned two clock hours
    if is_pg:
        after = _partitions(store)
        gone = set(before) - set(after)
        assert result.dropped_partitions == len(gone) >= 1
        assert all(name.endswith(("20251115", "20251116")) or name < after[0] for name in gone)
        assert len(after) >= 5  # today ±2 days stay, created ahead
    else:
        assert result.dropped_partitions == 0
    # the batch id of dropped data is forgotten; newer ones still deduplicate
    assert metrics.write_batch(tenant, _batch("new", new, [0.0] * 90), now=NOW) == WriteResult(0, True)
    assert metrics.apply_retention(NOW) == type(result)(0, 0)  # idempotent


def test_retention_per_tenant(store: SqlStore, metrics: SqlMetricStore, tenant: str) -> None:
    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/hook", now=1.0).client.id
    ts = [NOW - 3 * DAY + 600 * i for i in range(6)]  # 3 days old
    metrics.write_batch(tenant, _batch("a", ts, [1.0] * 6), now=NOW)
    metrics.write_batch(other, _batch("a", ts, [2.0] * 6), now=NOW)
    metrics.set_retention(other, 2.0)  # shorter than the store's 7 days
    metrics.apply_retention(NOW)
    assert metrics.count_samples(tenant) == 6 and metrics.count_samples(other) == 0
    assert [r.count for r in metrics.query_rollups(other, *Q, 0, 2e9, step=3600)] == [6]
    metrics.set_retention(tenant, 30.0)  # longer: even older data stays for this tenant
    metrics.set_retention(other, None)
    old = [NOW - 20 * DAY + 60 * i for i in range(3)]
    metrics.write_batch(tenant, _batch("b", old, [3.0] * 3), now=NOW)
    metrics.write_batch(other, _batch("b", old, [3.0] * 3), now=NOW)
    metrics.apply_retention(NOW)
    assert metrics.count_samples(tenant) == 9 and metrics.count_samples(other) == 0


def test_a_partition_dropped_under_a_writer_is_recreated(
    make_metrics: Callable[[], SqlMetricStore], tenant: str
) -> None:
    writer, janitor = make_metrics(), make_metrics()
    old = [NOW - 10 * DAY + 1.0]
    writer.write_batch(tenant, _batch("x1", old, [1.0]), now=NOW)  # the writer caches that day
    janitor.apply_retention(NOW)  # drops it (PostgreSQL) or deletes the row (SQLite)
    assert writer.write_batch(tenant, _batch("x2", old, [2.0]), now=NOW).accepted_points == 1
    assert writer.query_range(tenant, *Q, 0, 2e9) == [(old[0], 2.0)]


def test_old_samples_are_converted_by_the_migration(db_url: str) -> None:
    """A database at 0002 with row-per-sample data comes out at head with the same samples."""
    from infragent.store.engine import create_engine
    from infragent.store.migrate import upgrade

    engine = create_engine(db_url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO clients VALUES ('c1', 'a@example.com', 'A', 'http://x', 's', 1.0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO metric_series "
                "(client_id, host, name, unit, kind, monotonic, labels, labels_key) "
                "VALUES ('c1', 'host-1', 'system.cpu.utilization', '1', 'gauge', false, '{}', "
                "'44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a')"
            )
            sid = conn.exec_driver_sql("SELECT id FROM metric_series").scalar_one()
            rows = [(sid, NOW - 7000.0 + 10 * i, i / 4) for i in range(1000)]
            conn.exec_driver_sql(
                "INSERT INTO metric_samples (series_id, ts, value) VALUES (?, ?, ?)"
                if engine.dialect.name == "sqlite"
                else "INSERT INTO metric_samples (series_id, ts, value) VALUES (%s, %s, %s)",
                rows,
            )
        upgrade(engine)
        metrics = SqlMetricStore(engine)
        got = metrics.query_range("c1", "host-1", "system.cpu.utilization", {}, 0, 2e9)
        assert got == [(ts, v) for _, ts, v in rows]
        assert metrics.count_samples("c1") == 1000
        with pytest.raises(sa.exc.DBAPIError), engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM metric_samples")
    finally:
        engine.dispose()
