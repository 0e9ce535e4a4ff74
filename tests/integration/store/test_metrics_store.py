from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from infragent.store.metrics import SeriesInfo, SqlMetricStore, WriteResult, labels_key
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client

CPU = {"cpu.mode": "user"}


def _series(
    name: str = "system.cpu.utilization", attrs: dict[str, str] | None = None, **over: Any
) -> SeriesData:
    fields: dict[str, Any] = {
        "name": name,
        "unit": "1",
        "kind": "gauge",
        "monotonic": False,
        "attributes": CPU if attrs is None else attrs,
        "timestamps": [1000.0, 1010.0, 1020.0],
        "values": [0.125, 0.5, 0.75],
        **over,
    }
    return SeriesData(**fields)


def _batch(
    batch_id: str = "b-1", node: str = "host-1", series: list[SeriesData] | None = None
) -> MetricBatch:
    return MetricBatch(batch_id, node, {"host.name": node}, [_series()] if series is None else series)


def test_write_then_query_range_exactly(metrics: SqlMetricStore, tenant: str) -> None:
    disk = _series(
        "system.disk.io",
        {"system.device": "sda", "disk.io.direction": "read"},
        unit="By",
        kind="sum",
        monotonic=True,
        timestamps=[1000.0, 1010.0],
        values=[1e12, 1e12 + 4096.0],
    )
    assert metrics.write_batch(tenant, _batch(series=[_series(), disk]), now=2000.0) == WriteResult(5, False)
    assert metrics.query_range(tenant, "host-1", "system.cpu.utilization", CPU, 0, 1e10) == [
        (1000.0, 0.125),
        (1010.0, 0.5),
        (1020.0, 0.75),
    ]
    # inclusive bounds; label order does not matter; a different label set is another series
    assert metrics.query_range(tenant, "host-1", "system.cpu.utilization", CPU, 1010.0, 1020.0) == [
        (1010.0, 0.5),
        (1020.0, 0.75),
    ]
    labels = {"disk.io.direction": "read", "system.device": "sda"}
    assert metrics.query_range(tenant, "host-1", "system.disk.io", labels, 0, 1e10) == [
        (1000.0, 1e12),
        (1010.0, 1e12 + 4096.0),
    ]
    assert metrics.query_range(tenant, "host-1", "system.cpu.utilization", {}, 0, 1e10) == []
    assert metrics.count_samples(tenant) == 5
    assert metrics.list_series(tenant) == [
        SeriesInfo("host-1", "system.cpu.utilization", "1", "gauge", False, CPU),
        SeriesInfo("host-1", "system.disk.io", "By", "sum", True, labels),
    ]


def test_duplicate_batch_id_stores_nothing(
    metrics: SqlMetricStore, make_metrics: Callable[[], SqlMetricStore], tenant: str
) -> None:
    assert not metrics.write_batch(tenant, _batch(), now=1.0).duplicate
    again = _batch(series=[_series(values=[9.0, 9.0, 9.0])])  # same id, other content: still a resend
    assert metrics.write_batch(tenant, again, now=2.0) == WriteResult(0, True)
    assert metrics.count_samples(tenant) == 3
    # a fresh store (empty id cache, as after a restart) agrees
    assert make_metrics().write_batch(tenant, _batch(), now=3.0).duplicate


def test_later_batches_reuse_series_and_new_labels_make_new_ones(
    metrics: SqlMetricStore, make_metrics: Callable[[], SqlMetricStore], tenant: str
) -> None:
    metrics.write_batch(tenant, _batch("b-1"), now=1.0)
    later = _series(timestamps=[1030.0], values=[1.0])
    metrics.write_batch(tenant, _batch("b-2", series=[later, _series(attrs={"cpu.mode": "idle"})]), now=2.0)
    restarted = make_metrics()  # finds the existing series in the table
    restarted.write_batch(tenant, _batch("b-3", series=[_series(timestamps=[1040.0], values=[2.0])]), now=3.0)
    labels = sorted(tuple(s.labels.items()) for s in metrics.list_series(tenant))
    assert labels == [(("cpu.mode", "idle"),), (("cpu.mode", "user"),)]
    got = metrics.query_range(tenant, "host-1", "system.cpu.utilization", CPU, 0, 1e10)
    assert [ts for ts, _ in got] == [1000.0, 1010.0, 1020.0, 1030.0, 1040.0]


def test_empty_series_and_empty_batches(metrics: SqlMetricStore, tenant: str) -> None:
    assert metrics.write_batch(tenant, _batch(series=[]), now=1.0) == WriteResult(0, False)
    assert metrics.write_batch(tenant, _batch(series=[]), now=1.0).duplicate  # the id still counts
    empty = _series(timestamps=[], values=[])
    assert metrics.write_batch(tenant, _batch("b-2", series=[empty]), now=1.0) == WriteResult(0, False)
    assert metrics.list_series(tenant) == [] and metrics.count_samples(tenant) == 0


def test_concurrent_resends_store_the_batch_once(
    make_metrics: Callable[[], SqlMetricStore], tenant: str
) -> None:
    stores = [make_metrics() for _ in range(8)]  # separate caches: all race to create
    barrier = threading.Barrier(len(stores))
    results: list[WriteResult] = []
    errors: list[BaseException] = []

    def send(s: SqlMetricStore) -> None:
        try:
            barrier.wait()
            results.append(s.write_batch(tenant, _batch(), now=5.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert stores[0].count_samples(tenant) == 3


def test_concurrent_distinct_batches_share_new_series(
    make_metrics: Callable[[], SqlMetricStore], tenant: str
) -> None:
    stores = [make_metrics() for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []
    names = ["a", "b", "c", "d"]

    def send(i: int, s: SqlMetricStore) -> None:
        try:
            barrier.wait()
            series = [
                _series(n, timestamps=[float(i)], values=[float(i)]) for n in names[i % 2 :] + names[: i % 2]
            ]
            s.write_batch(tenant, _batch(f"b-{i}", series=series), now=5.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [s.name for s in stores[0].list_series(tenant)] == names
    assert stores[0].count_samples(tenant) == 6 * len(names)


def test_tenants_are_isolated(store: SqlStore, metrics: SqlMetricStore, tenant: str) -> None:
    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/hook", now=1.0).client.id
    metrics.write_batch(tenant, _batch(), now=1.0)
    # the same batch id, host and series under another tenant is not a duplicate and stays apart
    assert metrics.write_batch(
        other, _batch(series=[_series(values=[7.0, 8.0, 9.0])]), now=1.0
    ) == WriteResult(3, False)
    q = ("host-1", "system.cpu.utilization", CPU, 0.0, 1e10)
    assert [v for _, v in metrics.query_range(tenant, *q)] == [0.125, 0.5, 0.75]
    assert [v for _, v in metrics.query_range(other, *q)] == [7.0, 8.0, 9.0]
    assert metrics.count_samples(tenant) == metrics.count_samples(other) == 3
    assert len(metrics.list_series(tenant)) == len(metrics.list_series(other)) == 1
    assert metrics.query_range("no-such-client", *q) == [] and metrics.list_series("no-such-client") == []


def test_labels_key_is_canonical() -> None:
    assert labels_key({"a": "1", "b": "2"}) == labels_key({"b": "2", "a": "1"})
    assert labels_key({"a": "1"}) != labels_key({"a": "1", "b": ""})
    assert len(labels_key({})) == 64


def test_a_failed_write_leaves_nothing_behind(metrics: SqlMetricStore, tenant: str) -> None:
    with pytest.raises(sa.exc.IntegrityError):  # no such client: the foreign key refuses the batch
        metrics.write_batch("no-such-client", _batch(), now=1.0)
    assert metrics.write_batch(tenant, _batch(), now=2.0) == WriteResult(3, False)
