"""The server's upkeep thread compacts and applies retention on schedule, and stops on shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from infragent.config import Settings
from infragent.server.app import create_app
from infragent.server.maintenance import Maintenance, MaintenanceStats
from infragent.store.metrics import SqlMetricStore
from infragent.store.records import Registration
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client
from support.servers import serve

HOUR = 3600.0
DAY = 86_400.0
NOW = 1_764_028_800.0
CPU = {"cpu.mode": "user"}


def _batch(batch_id: str, ts: list[float]) -> MetricBatch:
    series = SeriesData("system.cpu.utilization", "1", "gauge", False, CPU, ts, [1.0] * len(ts))
    return MetricBatch(batch_id, "host-1", {"host.name": "host-1"}, [series])


def _levels(metrics: SqlMetricStore) -> list[int]:
    with metrics.engine.connect() as conn:
        return [int(r[0]) for r in conn.exec_driver_sql("SELECT level FROM metric_chunks ORDER BY start_ts")]


def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_loop_compacts_applies_retention_and_stops(store: SqlStore, client_reg: Registration) -> None:
    tenant = client_reg.client.id
    metrics = SqlMetricStore(store.engine, raw_days=7)
    metrics.write_batch(tenant, _batch("old", [NOW - 10 * DAY + 5]), now=NOW)
    metrics.write_batch(tenant, _batch("a", [NOW - 2 * HOUR + 5]), now=NOW)
    metrics.write_batch(tenant, _batch("b", [NOW - 2 * HOUR + 15]), now=NOW)
    stats = MaintenanceStats(CollectorRegistry())
    loop = Maintenance(
        metrics,
        compact_interval_s=0.05,
        retention_interval_s=0.05,
        compact_delay_s=600,
        stats=stats,
        clock=lambda: NOW,
    )
    loop.start()
    try:
        _until(lambda: _levels(metrics) == [1])
        # a chunk arriving later is compacted by a later run
        metrics.write_batch(tenant, _batch("c", [NOW - 2 * HOUR + 25]), now=NOW)
        _until(lambda: _levels(metrics) == [1] and stats.runs.labels("retention")._value.get() >= 2)
    finally:
        started = time.monotonic()
        loop.stop(timeout_s=10)
        assert time.monotonic() - started < 5
    assert loop._thread is None
    assert metrics.count_samples(tenant) == 3
    assert [ts for ts, _ in metrics.query_range(tenant, "host-1", "system.cpu.utilization", CPU, 0, 2e9)] == [
        NOW - 2 * HOUR + 5,
        NOW - 2 * HOUR + 15,
        NOW - 2 * HOUR + 25,
    ]
    assert stats.points._value.get() >= 3
    assert stats.chunks.labels("in")._value.get() >= 3
    assert stats.errors.labels("compaction")._value.get() == 0
    assert stats.retention_chunks._value.get() >= 1  # the 10-day-old chunk (compacted first, then dropped)


def test_a_failing_run_is_logged_and_the_loop_goes_on(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = SqlMetricStore(store.engine)
    calls = 0

    def clock() -> float:  # the first two runs fail, as a database outage would make them
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OSError("database is down")
        return NOW

    stats = MaintenanceStats(CollectorRegistry())
    loop = Maintenance(metrics, compact_interval_s=0.02, retention_interval_s=0, stats=stats, clock=clock)
    loop.start()
    try:
        _until(lambda: stats.runs.labels("compaction")._value.get() >= 1)
    finally:
        loop.stop()
    assert stats.errors.labels("compaction")._value.get() == 2
    assert "metrics compaction failed" in caplog.text


def test_intervals_of_zero_start_no_thread(store: SqlStore) -> None:
    loop = Maintenance(SqlMetricStore(store.engine), compact_interval_s=0, retention_interval_s=0)
    loop.start()
    assert loop._thread is None
    loop.stop()


def test_the_server_runs_compaction_and_exposes_its_counts(db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        metrics_compact_interval_s=0.05,
        metrics_retention_interval_s=0,
    )
    app = create_app(settings, clock=lambda: NOW)
    services = app.state.services
    reg = create_client(services.store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=NOW)
    with serve(app) as url:
        metrics: SqlMetricStore = services.metric_store  # built with the app, shared with ingest
        metrics.write_batch(reg.client.id, _batch("a", [NOW - 2 * HOUR + 5, NOW - 2 * HOUR + 6]), now=NOW)
        metrics.write_batch(reg.client.id, _batch("b", [NOW - 2 * HOUR + 7]), now=NOW)
        _until(lambda: _levels(metrics) == [1])

        def scraped() -> bool:
            text = httpx.get(f"{url}/metrics").text
            return "infragent_compaction_points_total 3.0" in text

        _until(scraped)
        text = httpx.get(f"{url}/metrics").text
        assert 'infragent_compaction_chunks_total{stage="in"} 2.0' in text
        assert 'infragent_compaction_chunks_total{stage="out"} 1.0' in text
        assert "infragent_compaction_seconds_total" in text
        thread = [t for t in threading.enumerate() if t.name == "metrics-maintenance"]
        assert thread
    assert not thread[0].is_alive()  # stopped with the app
