"""The fleet view's ``metric_hosts`` rows (store/metrics/hosts.py) on both databases.

``note_batch`` is called directly here, as the write paths will call it in their transaction; the
answer of ``fleet_latest`` is checked against ``latest_by_host``, which reads the samples.
"""

from __future__ import annotations

import functools

import pytest
import sqlalchemy as sa

from infragent.store.metrics import LatestSample, SqlMetricStore, hosts
from infragent.store.metrics.hosts import CPU, FILESYSTEM, FLEET, MEMORY, backfill, note_batch
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client

NOW = 1_764_028_800.0
SINCE, UNTIL = NOW - 86_400, NOW + 3600
WANTED = [(name, {key: value}) for name, key, value in FLEET.values()]


def _s(name: str, labels: dict[str, str], ts: list[float], values: list[float]) -> SeriesData:
    return SeriesData(name, "1", "gauge", False, labels, ts, values)


def _tick(at: float, idle: float, used: float, mounts: dict[str, float]) -> list[SeriesData]:
    out = [
        _s(CPU, {"cpu.mode": "idle"}, [at], [idle]),
        _s(CPU, {"cpu.mode": "user"}, [at], [1 - idle]),
        _s(MEMORY, {"system.memory.state": "used"}, [at], [used]),
        _s(MEMORY, {"system.memory.state": "free"}, [at], [1 - used]),
    ]
    for mount, fill in mounts.items():
        base = {"system.filesystem.mountpoint": mount, "system.device": "/dev/sda"}
        out.append(_s(FILESYSTEM, {**base, "system.filesystem.state": "used"}, [at], [fill]))
        out.append(_s(FILESYSTEM, {**base, "system.filesystem.state": "free"}, [at], [1 - fill]))
    return out


def _write(metrics: SqlMetricStore, tenant: str, batch_id: str, host: str, series: list[SeriesData]) -> None:
    """Store the batch and note it, as the write path does (in one transaction there)."""
    assert not metrics.write_batch(tenant, MetricBatch(batch_id, host, {}, series), NOW).duplicate
    with metrics.engine.begin() as conn:
        note_batch(conn, postgres=metrics.is_postgres, client_id=tenant, host=host, series=series, now=NOW)


def _sorted(
    answer: tuple[dict[str, float | None], list[LatestSample]],
) -> tuple[dict[str, float | None], list[LatestSample]]:
    seen, latest = answer
    return seen, sorted(latest, key=repr)


def test_fleet_rows_answer_as_the_samples_do(metrics: SqlMetricStore, tenant: str) -> None:
    _write(metrics, tenant, "a-old", "host-a", _tick(NOW - 300, 0.9, 0.2, {"/": 0.1}))
    _write(metrics, tenant, "a-new", "host-a", _tick(NOW - 30, 0.75, 0.5, {"/": 0.3, "/data": 0.9}))
    _write(metrics, tenant, "b", "host-b", _tick(NOW - 1000, 0.5, 0.25, {}))
    _write(metrics, tenant, "c", "host-c", _tick(NOW - 3 * 86_400, 0.5, 0.25, {"/": 0.5}))
    _write(metrics, tenant, "sdk", "app-1", [_s("app.requests", {}, [NOW - 5], [3.0])])
    got = metrics.fleet_latest(tenant, SINCE, UNTIL)
    assert got[0] == {"host-a": NOW - 30, "host-b": NOW - 1000, "host-c": None, "app-1": NOW - 5}
    want = metrics.latest_by_host(tenant, SINCE, UNTIL, WANTED)
    # the samples give one value per mount, the row the fullest: compare the fullest
    fullest = max((x for x in want[1] if x.host == "host-a" and x.name == FILESYSTEM), key=lambda x: x.value)
    rest = [x for x in want[1] if not (x.host == "host-a" and x.name == FILESYSTEM)]
    assert _sorted(got) == _sorted((want[0], [*rest, fullest]))


def test_a_late_batch_does_not_roll_the_row_back(metrics: SqlMetricStore, tenant: str) -> None:
    _write(metrics, tenant, "new", "host-a", _tick(NOW - 10, 0.75, 0.5, {"/": 0.3}))
    _write(metrics, tenant, "old", "host-a", _tick(NOW - 600, 0.1, 0.9, {"/": 0.9}))  # a spool replay
    _write(metrics, tenant, "cpu-only", "host-a", [_s(CPU, {"cpu.mode": "idle"}, [NOW - 5], [0.6])])
    [row] = _rows(metrics, tenant)
    assert row == hosts.HostRow("host-a", NOW - 5, (NOW - 5, 0.6), (NOW - 10, 0.5), (NOW - 10, 0.3))


def test_samples_from_the_future_and_empty_batches_are_not_seen(metrics: SqlMetricStore, tenant: str) -> None:
    with metrics.engine.begin() as conn:
        note = functools.partial(note_batch, conn, postgres=metrics.is_postgres, client_id=tenant, now=NOW)
        note(host="h", series=[_s(CPU, {"cpu.mode": "idle"}, [NOW + 7200, NOW - 1], [0.1, 0.2])])
        note(host="h", series=[_s(CPU, {"cpu.mode": "idle"}, [NOW + 7200], [0.9])])
        note(host="empty", series=[_s(CPU, {"cpu.mode": "idle"}, [], [])])
    assert _rows(metrics, tenant) == [hosts.HostRow("h", NOW - 1, (NOW - 1, 0.2), None, None)]


def test_rows_are_per_tenant_and_backfill_rebuilds_them(
    metrics: SqlMetricStore, tenant: str, store: SqlStore
) -> None:
    other = create_client(store, "b@example.com", "B", "http://127.0.0.1:9/h", now=1000.0).client.id
    _write(metrics, tenant, "a", "host-a", _tick(NOW - 30, 0.75, 0.5, {"/": 0.3, "/data": 0.9}))
    _write(metrics, other, "b", "host-b", _tick(NOW - 20, 0.5, 0.25, {}))
    assert [r.host for r in _rows(metrics, tenant)] == ["host-a"]
    assert [r.host for r in _rows(metrics, other)] == ["host-b"]
    before = _rows(metrics, tenant) + _rows(metrics, other)
    with metrics.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM metric_hosts"))
        assert backfill(conn) == 2
    assert _rows(metrics, tenant) + _rows(metrics, other) == before


def test_a_tenant_without_rows_is_answered_from_the_samples(metrics: SqlMetricStore, tenant: str) -> None:
    """Data stored before the write path noted hosts (or not yet wired): the slow way, same answer."""
    batch = MetricBatch("a", "host-a", {}, _tick(NOW - 30, 0.75, 0.5, {"/": 0.3}))
    metrics.write_batch(tenant, batch, NOW)
    got = metrics.fleet_latest(tenant, SINCE, UNTIL)
    assert _sorted(got) == _sorted(metrics.latest_by_host(tenant, SINCE, UNTIL, WANTED))


def _rows(metrics: SqlMetricStore, tenant: str) -> list[hosts.HostRow]:
    with metrics.engine.connect() as conn:
        return sorted(hosts.read_hosts(conn, tenant), key=lambda r: r.host)


def test_the_postgres_cte_notes_only_a_claimed_batch(metrics: SqlMetricStore, tenant: str) -> None:
    """``pg_cte`` is ``note_batch`` folded into the single statement that claims and stores a batch."""
    if not metrics.is_postgres:
        pytest.skip("SQLite writes in a transaction: note_batch")
    sql = f"WITH claim AS (SELECT 1 WHERE %(ok)s), hosts AS ({hosts.pg_cte('claim')}) SELECT 1"
    with metrics.engine.begin() as conn:
        for ok, at in ((False, NOW - 5), (True, NOW - 20), (False, NOW - 1)):
            params = hosts.note_params(tenant, "host-a", _tick(at, 0.75, 0.5, {"/": 0.3}), NOW)
            conn.exec_driver_sql(sql, {**params, "ok": ok})
        conn.exec_driver_sql(sql, {**hosts.note_params(tenant, "empty", [], NOW), "ok": True})
    assert _rows(metrics, tenant) == [
        hosts.HostRow("host-a", NOW - 20, (NOW - 20, 0.75), (NOW - 20, 0.5), (NOW - 20, 0.3))
    ]
