"""Compaction rewrites closed series-hours as one dense chunk and changes no answer.

Every test runs on SQLite and PostgreSQL. Times are recent and hour-aligned so PostgreSQL's day
partitions are real ones. Values are dyadic (exact binary fractions) where sums are compared
bit-exactly: a sum of the same floats in another order may differ in its last bit otherwise.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from infragent.store.metrics import Rollup, SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult, compact
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.metric_batches import host_batches

HOUR = 3600.0
DAY = 86_400.0
NOW = 1_764_028_800.0  # midnight UTC
CPU = {"cpu.mode": "user"}
Q = ("host-1", "system.cpu.utilization", CPU)


def _batch(
    batch_id: str, ts: list[float], values: list[float], name: str = "system.cpu.utilization"
) -> MetricBatch:
    series = SeriesData(name, "1", "gauge", False, CPU, ts, values)
    return MetricBatch(batch_id, "host-1", {"host.name": "host-1"}, [series])


@pytest.fixture
def raw_days() -> float:
    return 7.0


def _levels(metrics: SqlMetricStore) -> list[tuple[int, float, int]]:
    """(level, hour, chunks) over all chunks."""
    sql = (
        "SELECT level, floor(start_ts / 3600) * 3600 AS h, count(*) FROM metric_chunks "
        "GROUP BY level, h ORDER BY h, level"
    )
    with metrics.engine.connect() as conn:
        return [(int(a), float(b), int(c)) for a, b, c in conn.exec_driver_sql(sql)]


def _chunks_per_series_hour(metrics: SqlMetricStore, level: int) -> set[int]:
    sql = (
        f"SELECT count(*) FROM metric_chunks WHERE level = {level:d} "
        "GROUP BY series_id, floor(start_ts / 3600)"
    )
    with metrics.engine.connect() as conn:
        return {int(n) for (n,) in conn.exec_driver_sql(sql)}


def _bytes(metrics: SqlMetricStore) -> int:
    with metrics.engine.connect() as conn:
        return int(
            conn.exec_driver_sql("SELECT coalesce(sum(length(data)), 0) FROM metric_chunks").scalar_one()
        )


def _empty(result: CompactionResult) -> bool:
    return replace(result, seconds=0.0) == CompactionResult()


def _snapshot(metrics: SqlMetricStore, tenant: str) -> dict[str, Any]:
    return {
        "range": metrics.query_range(tenant, *Q, 0, 2e9),
        "minutes": metrics.query_rollups(tenant, *Q, 0, 2e9, step=60),
        "hours": metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600),
        "window": metrics.query_rollups(tenant, *Q, NOW - 2 * HOUR + 90, NOW - 1800, step=60),
        "count": metrics.count_samples(tenant),
    }


def _interleaved(start: float, n_batches: int, points: int, seed: int = 3) -> list[MetricBatch]:
    """Batches whose points interleave in time (7 s apart, never minute-aligned); dyadic values."""
    rnd = random.Random(seed)
    all_ts = [start + i * 7.0 for i in range(points)]
    rnd.shuffle(all_ts)
    out = []
    for b in range(n_batches):
        ts = sorted(all_ts[b::n_batches])
        out.append(_batch(f"i-{start}-{b}", ts, [rnd.randrange(-4000, 4000) / 8 for _ in ts]))
    return out


def test_compaction_changes_no_answer_and_leaves_one_chunk_per_series_hour(
    metrics: SqlMetricStore, tenant: str
) -> None:
    # 3 closed hours interleaved over 5 batches, plus the open hour (and one within the delay)
    for b in _interleaved(NOW - 3 * HOUR + 13, 5, 1500):
        metrics.write_batch(tenant, b, now=NOW)
    for b in _interleaved(NOW + 5, 3, 100, seed=4):  # the current hour: open
        metrics.write_batch(tenant, b, now=NOW)
    other = _batch("other", [NOW - 2 * HOUR + 1.5, NOW - 2 * HOUR + 2.5], [1.0, 2.0], name="x")
    metrics.write_batch(tenant, other, now=NOW)
    before = _snapshot(metrics, tenant)
    levels_before = _levels(metrics)
    bytes_before = _bytes(metrics)

    now = NOW + 300  # the last hour closed 300 s ago: still inside the default 600 s delay
    result = compact(metrics, now)

    assert _snapshot(metrics, tenant) == before  # bit-exact: points, min/max/sum/last, counts
    levels = _levels(metrics)
    closed = [(lv, h, n) for lv, h, n in levels if h < NOW - HOUR]
    assert closed == [(1, NOW - 3 * HOUR, 1), (1, NOW - 2 * HOUR, 2)]  # cpu (+ "x" in one hour)
    assert [x for x in levels if x[1] >= NOW - HOUR] == [x for x in levels_before if x[1] >= NOW - HOUR]
    assert result.hours == 2
    assert result.series_hours == result.chunks_out == 3
    assert result.chunks_in == sum(n for lv, h, n in levels_before if h < NOW - HOUR)
    assert result.points == sum(1 for t, _ in before["range"] if t < NOW - HOUR) + 2
    assert result.bytes_in > result.bytes_out > 0
    assert _bytes(metrics) == bytes_before - result.bytes_in + result.bytes_out
    assert result.seconds > 0

    assert _empty(compact(metrics, now))  # a second pass is a no-op

    # once the delay has passed, the last closed hour goes too; the open one never
    assert compact(metrics, NOW + 600).hours == 1
    assert {lv for lv, h, _ in _levels(metrics) if h < NOW} == {1}
    assert [x for x in _levels(metrics) if x[1] >= NOW] == [x for x in levels_before if x[1] >= NOW]
    assert _snapshot(metrics, tenant) == before


def test_a_late_chunk_is_merged_on_the_next_pass(metrics: SqlMetricStore, tenant: str) -> None:
    metrics.write_batch(tenant, _batch("a", [NOW - HOUR + 10, NOW - HOUR + 30], [1.0, 3.0]), now=NOW)
    assert compact(metrics, NOW + HOUR).series_hours == 1
    # late, and one sample at the same time as a stored one: it sorts after it (arrival order)
    metrics.write_batch(tenant, _batch("late", [NOW - HOUR + 20, NOW - HOUR + 30], [2.0, 4.0]), now=NOW)
    want = [(NOW - HOUR + 10, 1.0), (NOW - HOUR + 20, 2.0), (NOW - HOUR + 30, 3.0), (NOW - HOUR + 30, 4.0)]
    assert metrics.query_range(tenant, *Q, 0, 2e9) == want

    result = compact(metrics, NOW + HOUR)

    assert (result.chunks_in, result.chunks_out, result.points) == (2, 1, 4)
    assert _levels(metrics) == [(1, NOW - HOUR, 1)]
    assert metrics.query_range(tenant, *Q, 0, 2e9) == want
    assert metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600) == [
        Rollup(NOW - HOUR, 4, 1.0, 4.0, 10.0, 4.0)
    ]


def test_a_chunk_committed_while_a_slice_is_rewritten_survives(metrics: SqlMetricStore, tenant: str) -> None:
    """The race: ingest commits a chunk of the same series-hour between the pass's read and delete.

    PostgreSQL lets it commit then (the pass reads in REPEATABLE READ and deletes by ``ctid``); on
    SQLite the write waits for the slice's transaction (the writer lock) and lands after it.
    """
    metrics.write_batch(tenant, _batch("a", [NOW - HOUR + 10], [1.0]), now=NOW)
    racing: list[threading.Thread] = []

    def write_late() -> None:
        def late() -> None:
            metrics.write_batch(tenant, _batch("late", [NOW - HOUR + 20], [2.0]), now=NOW)

        if metrics.is_postgres:
            late()  # commits now, while the pass's transaction is open
        else:
            racing.append(threading.Thread(target=late))
            racing[0].start()

    first = compact(metrics, NOW + HOUR, on_read=write_late)
    for t in racing:
        t.join(10)

    assert (first.chunks_in, first.points) == (1, 1)
    assert _levels(metrics) == [(0, NOW - HOUR, 1), (1, NOW - HOUR, 1)]
    assert metrics.query_range(tenant, *Q, 0, 2e9) == [(NOW - HOUR + 10, 1.0), (NOW - HOUR + 20, 2.0)]
    second = compact(metrics, NOW + HOUR)
    assert (second.chunks_in, second.chunks_out, second.points) == (2, 1, 2)
    assert metrics.query_range(tenant, *Q, 0, 2e9) == [(NOW - HOUR + 10, 1.0), (NOW - HOUR + 20, 2.0)]
    assert metrics.count_samples(tenant) == 2


def test_concurrent_ingest_loses_and_doubles_nothing(metrics: SqlMetricStore, tenant: str) -> None:
    """Writers fill closed hours while compaction loops; every sample is there exactly once."""
    per_writer, writers = 120, 4
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):  # one-point batches, spread over 3 closed hours
                ts = NOW - 3 * HOUR + (i * writers + w) * 22.5 + 0.5
                metrics.write_batch(tenant, _batch(f"w{w}-{i}", [ts], [float(i * writers + w)]), now=NOW)
        except BaseException as exc:
            errors.append(exc)

    def compact_loop() -> None:
        try:
            while not stop.is_set():
                compact(metrics, NOW, delay_s=0, max_chunks=50)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    compactor = threading.Thread(target=compact_loop)
    compactor.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    compactor.join(60)
    assert not errors
    while compact(metrics, NOW, delay_s=0).did_work:
        pass

    total = per_writer * writers
    got = metrics.query_range(tenant, *Q, 0, 2e9)
    assert got == [(NOW - 3 * HOUR + k * 22.5 + 0.5, float(k)) for k in range(total)]
    assert metrics.count_samples(tenant) == total
    assert _levels(metrics) == [(1, NOW - 3 * HOUR + h * HOUR, 1) for h in range(3)]


def test_realistic_batches_shrink_several_fold(metrics: SqlMetricStore, tenant: str) -> None:
    """60-point batches of 10 s data (a third counters, percentages, 6-decimal random values)."""
    for b in host_batches(NOW - 3 * HOUR, 3 * HOUR):
        metrics.write_batch(tenant, b, now=NOW)
    probe = ("host-1", "host.random", {"n": "2"})
    samples = metrics.query_range(tenant, *probe, 0, 2e9)
    hourly = metrics.query_rollups(tenant, *probe, 0, 2e9, step=3600)
    count = metrics.count_samples(tenant)
    before = _bytes(metrics)

    done = CompactionResult()
    while (step := compact(metrics, NOW + 600, max_chunks=100)).did_work:
        done = done + step

    after = _bytes(metrics)
    assert count == metrics.count_samples(tenant) == done.points == 3 * 12 * 1080
    assert (done.hours, done.series_hours, done.chunks_in) == (3, 3 * 36, 3 * 36 * 6)
    assert metrics.query_range(tenant, *probe, 0, 2e9) == samples
    got = metrics.query_rollups(tenant, *probe, 0, 2e9, step=3600)
    assert [(r.start, r.count, r.min, r.max, r.last) for r in got] == [
        (r.start, r.count, r.min, r.max, r.last) for r in hourly
    ]
    assert [r.sum for r in got] == pytest.approx([r.sum for r in hourly], rel=1e-12)
    assert before / count > 16  # raw: 16 bytes a point plus headers
    assert after / count < 3.5, f"{after / count:.2f} bytes a point after compaction"
    assert _chunks_per_series_hour(metrics, 1) == {1}


def test_retention_still_drops_compacted_chunks_and_keeps_their_rollups(
    store: SqlStore, metrics: SqlMetricStore, tenant: str
) -> None:
    old = [NOW - 10 * DAY + 60 * i for i in range(90)]
    new = [NOW - DAY + 60 * i for i in range(90)]
    metrics.write_batch(tenant, _batch("old", old, [float(i) for i in range(90)]), now=NOW)
    metrics.write_batch(tenant, _batch("new", new, [float(i) for i in range(90)]), now=NOW)
    hourly = metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600)
    assert compact(metrics, NOW).hours == 4

    result = metrics.apply_retention(NOW)

    assert result.deleted_chunks == 2  # the old data's two compacted hours
    assert [ts for ts, _ in metrics.query_range(tenant, *Q, 0, 2e9)] == new
    assert metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600) == hourly
    assert metrics.count_samples(tenant) == 90


def test_a_second_compactor_skips_while_one_runs(tenant: str, metrics: SqlMetricStore) -> None:
    if not metrics.is_postgres:
        pytest.skip("SQLite serializes slices on the writer lock instead")
    metrics.write_batch(tenant, _batch("a", [NOW - HOUR + 10], [1.0]), now=NOW)
    with metrics.engine.connect() as holder:
        holder.exec_driver_sql(
            "SELECT pg_advisory_lock(hashtext('infragent.compaction.' || current_schema()))"
        )
        assert _empty(compact(metrics, NOW + HOUR))
        holder.exec_driver_sql(
            "SELECT pg_advisory_unlock(hashtext('infragent.compaction.' || current_schema()))"
        )
        holder.commit()
    assert compact(metrics, NOW + HOUR).series_hours == 1  # the lock is free again
    with metrics.engine.connect() as conn:  # and the pass let go of it
        sql = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
        key = conn.exec_driver_sql(
            "SELECT hashtext('infragent.compaction.' || current_schema())::oid"
        ).scalar_one()
        assert conn.exec_driver_sql(sql, (key,)).scalar_one() == 0


def test_old_dense_chunks_are_compacted_too(store: SqlStore, metrics: SqlMetricStore, tenant: str) -> None:
    """Chunks stored before the raw layout existed (dense, level 0 after migration 0004)."""
    from infragent.store.metrics.chunk_rows import split_batch

    metrics.write_batch(tenant, _batch("a", [NOW - HOUR + 10], [1.0]), now=NOW)
    with store.engine.begin() as conn:
        sid = conn.exec_driver_sql("SELECT series_id FROM metric_chunks").scalar_one()
    (row,) = split_batch([(sid, [NOW - HOUR + 5.5, NOW - HOUR + 7], [0.5, 0.25])], dense=True)
    ins = sa.text(
        "INSERT INTO metric_chunks (series_id, start_ts, end_ts, n, vmin, vmax, vsum, vlast, data) "
        "VALUES (:s, :a, :b, :n, :lo, :hi, :sum, :last, :data)"
    )
    with store.engine.begin() as conn:
        conn.execute(
            ins,
            {
                "s": row.series_id,
                "a": row.start_ts,
                "b": row.end_ts,
                "n": row.n,
                "lo": row.vmin,
                "hi": row.vmax,
                "sum": row.vsum,
                "last": row.vlast,
                "data": row.data,
            },
        )
    want = [(NOW - HOUR + 5.5, 0.5), (NOW - HOUR + 7, 0.25), (NOW - HOUR + 10, 1.0)]
    assert metrics.query_range(tenant, *Q, 0, 2e9) == want
    assert compact(metrics, NOW + HOUR).chunks_in == 2
    assert metrics.query_range(tenant, *Q, 0, 2e9) == want
    assert metrics.query_rollups(tenant, *Q, 0, 2e9, step=3600) == [
        Rollup(NOW - HOUR, 3, 0.25, 1.0, 1.75, 1.0)
    ]


def test_compacted_raw_leaves_give_their_space_back(metrics: SqlMetricStore, tenant: str) -> None:
    """PostgreSQL: a day's raw leaf is emptied by compaction and truncated, so the disk shrinks."""
    if not metrics.is_postgres:
        pytest.skip("SQLite has no partitions; its freed pages are reused in place")
    for b in host_batches(NOW - 3 * HOUR, 3 * HOUR):
        metrics.write_batch(tenant, b, now=NOW)
    sql = (
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'metric_partitions' AND c.relkind = 'r' "
        "AND c.relname LIKE current_schema() || '%%'"
    )

    def leaves() -> dict[str, int]:
        """Bytes on disk (with TOAST and indexes) of every day's raw and compacted leaves."""
        out: dict[str, int] = {}
        with metrics.engine.connect() as conn:
            for name, size in conn.exec_driver_sql(sql):
                out[str(name)[-3:]] = out.get(str(name)[-3:], 0) + int(size)
        return out

    before = leaves()
    assert set(before) == {"_l0", "_l1"} and before["_l0"] > 600_000  # 16 bytes a raw point
    while compact(metrics, NOW + 600).did_work:
        pass
    after = leaves()
    assert after["_l0"] < 200 * 1024, after  # truncated: the empty leaves' first index pages are left
    assert after["_l1"] < before["_l0"] / 3, after  # the small data set: empty leaves' pages weigh in
    assert metrics.count_samples(tenant) == 3 * 12 * 1080


def test_sqlite_hands_freed_pages_back(metrics: SqlMetricStore, tenant: str) -> None:
    """SQLite: the file is created with incremental auto-vacuum, and compaction shrinks it."""
    if metrics.is_postgres:
        pytest.skip("PostgreSQL truncates its raw leaves instead (the test above)")

    def pages() -> tuple[int, int, int]:
        with metrics.engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one()
            count = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        return int(mode), int(count), int(free)

    _, empty, _ = pages()  # the schema's own pages: every migration adds some
    for b in host_batches(NOW - 3 * HOUR, 3 * HOUR):
        metrics.write_batch(tenant, b, now=NOW)
    mode, before, _ = pages()
    assert mode == 2  # incremental
    while compact(metrics, NOW + 600).did_work:
        pass
    _, after, free = pages()
    assert free == 0 and after - empty < (before - empty) / 2, (empty, before, after, free)
    assert metrics.count_samples(tenant) == 3 * 12 * 1080
