"""The server forwards what it accepted (native and OTLP) to a real VictoriaMetrics, once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infragent import wire
from infragent.config import Settings
from infragent.server.app import create_app
from infragent.store.sql import SqlStore
from support import victoria
from support.databases import create_client
from support.servers import serve

pytestmark = pytest.mark.skipif(not victoria.available(), reason=victoria.MISSING_REASON)


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[victoria.Victoria]:
    with victoria.run_victoria(tmp_path) as instance:
        yield instance


def test_accepted_batches_are_queryable_in_victoriametrics(store: SqlStore, vm: victoria.Victoria) -> None:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/h", now=time.time())
    now = float(int(time.time()))
    batch = wire.MetricBatch(
        batch_id="b-1",
        node_id="web-1",
        resource={"host.name": "web-1"},
        series=[
            wire.SeriesData(
                name="system.cpu.utilization",
                unit="1",
                kind="gauge",
                monotonic=False,
                attributes={"cpu.mode": "user"},
                timestamps=[now - 20, now - 10, now],
                values=[0.25, 0.5, 0.75],
            ),
        ],
    )
    body = wire.encode_batch(batch)
    headers = {
        "Authorization": f"Bearer {reg.api_key}",
        "Content-Type": wire.CONTENT_TYPE,
        "Content-Encoding": "gzip",
    }
    app = create_app(Settings(remote_write_url=vm.write_url), store=store)
    with serve(app) as base, httpx.Client(base_url=base) as http:
        assert http.post("/api/v1/metrics", content=body, headers=headers).json()["duplicate"] is False
        assert http.post("/api/v1/metrics", content=body, headers=headers).json()["duplicate"] is True
        exporter = app.state.services.exporter
        assert exporter.flush(10)
        assert exporter.stats().sent_samples == 3  # the duplicate was not forwarded again
    vm.force_flush()
    [series] = vm.export('{__name__="system_cpu_utilization"}')
    assert series["metric"]["cpu_mode"] == "user" and series["metric"]["host"] == "web-1"
    assert series["values"] == [0.25, 0.5, 0.75]
    assert [t / 1000 for t in series["timestamps"]] == [now - 20, now - 10, now]
