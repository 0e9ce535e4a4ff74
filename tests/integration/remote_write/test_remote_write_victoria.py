"""Real batches through the exporter into a real VictoriaMetrics; every sample must come back exactly.

Values are the kind agents send (integer byte counters, percentages with two decimals, load
averages, zero): VictoriaMetrics keeps values as decimals of about 12 significant digits, so a
value like ``0.13436424411240122`` comes back as ``0.1343642441124`` — storage precision, not
something the exporter does (docs/scaling.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest

from infragent.remote_write import RemoteWriteExporter
from infragent.wire import MetricBatch, SeriesData
from support import victoria
from support.victoria import Victoria

pytestmark = pytest.mark.skipif(not victoria.available(), reason=victoria.MISSING_REASON)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    with victoria.run_victoria(tmp_path_factory.mktemp("vm")) as instance:
        yield instance


def _series(
    name: str, attributes: dict[str, str], timestamps: list[float], values: list[float]
) -> SeriesData:
    return SeriesData(
        name=name,
        unit="1",
        kind="gauge",
        monotonic=False,
        attributes=attributes,
        timestamps=timestamps,
        values=values,
    )


def _batches(start: float, rng: random.Random) -> list[MetricBatch]:
    """Ten ticks from two hosts, each tick its own batch, as agents ship them (timestamps in ms steps)."""
    out = []
    for host in ("web-1", "db-1"):
        for tick in range(10):
            ts = round(start + tick * 10 + rng.randrange(1000) / 1000, 3)
            series = [
                _series("system.cpu.utilization", {"cpu.mode": mode}, [ts], [rng.randrange(0, 10001) / 100])
                for mode in ("user", "system", "idle")
            ]
            series.append(
                _series(
                    "system.network.io",
                    {"network.interface.name": "eth0", "network.io.direction": "receive"},
                    [ts, ts + 5],
                    [float(rng.randrange(2**40)), float(rng.randrange(2**40))],
                )
            )
            series.append(_series("system.cpu.load_average.1m", {}, [ts], [rng.randrange(0, 800) / 100]))
            series.append(_series("system.uptime", {}, [ts], [0.0 if tick == 0 else float(tick * 10)]))
            out.append(MetricBatch(batch_id=f"{host}-{tick}", node_id=host, resource={}, series=series))
    return out


def _expected(
    tenant: str, batches: list[MetricBatch]
) -> dict[frozenset[tuple[str, str]], list[tuple[int, float]]]:
    expected: dict[frozenset[tuple[str, str]], list[tuple[int, float]]] = {}
    for b in batches:
        for s in b.series:
            labels = {k.replace(".", "_"): v for k, v in s.attributes.items()}
            labels |= {
                "__name__": s.name.replace(".", "_"),
                "host": b.node_id,
                "instance": b.node_id,
                "tenant": tenant,
            }
            points = expected.setdefault(frozenset(labels.items()), [])
            points.extend((round(t * 1000), v) for t, v in zip(s.timestamps, s.values, strict=True))
    return {k: sorted(v) for k, v in expected.items()}


def _stored(vm: Victoria, tenant: str) -> dict[frozenset[tuple[str, str]], list[tuple[int, float]]]:
    vm.force_flush()
    return {
        frozenset(row["metric"].items()): sorted(zip(row["timestamps"], row["values"], strict=True))
        for row in vm.export(f'{{tenant="{tenant}"}}')
    }


def test_every_sample_arrives_exactly(vm: Victoria) -> None:
    batches = _batches(time.time() - 600, random.Random(5))
    exporter = RemoteWriteExporter(
        vm.write_url, max_batch_samples=7
    )  # many requests, series split across them
    exporter.start()
    try:
        for b in batches:
            exporter.submit("acme", b)
        assert exporter.flush(10)
    finally:
        exporter.close(timeout_s=5)
    total = sum(b.point_count for b in batches)
    stats = exporter.stats()
    assert (stats.sent_samples, stats.dropped_samples, stats.rejected_samples, stats.queued) == (
        total,
        0,
        0,
        0,
    )
    expected = _expected("acme", batches)
    assert len(expected) == 12  # 6 series x 2 hosts
    assert _stored(vm, "acme") == expected


def test_close_flushes_what_is_queued(vm: Victoria) -> None:
    batches = _batches(time.time() - 1200, random.Random(6))
    exporter = RemoteWriteExporter(vm.write_url)
    for b in batches:
        exporter.submit("globex", b)
    exporter.start()
    exporter.close(timeout_s=10)
    assert exporter.stats().sent_samples == sum(b.point_count for b in batches)
    assert _stored(vm, "globex") == _expected("globex", batches)


def test_names_are_queryable_with_promql(vm: Victoria) -> None:
    now = round(time.time() - 120)
    batch = MetricBatch(
        batch_id="q-1",
        node_id="web-1",
        resource={},
        series=[
            _series(
                "system.memory.utilization", {"system.memory.state": "used"}, [now, now + 30], [0.25, 0.5]
            )
        ],
    )
    exporter = RemoteWriteExporter(vm.write_url)
    exporter.submit("initech", batch)
    exporter.close(timeout_s=10)
    vm.force_flush()
    [result] = vm.query_range(
        'system_memory_utilization{tenant="initech",host="web-1",system_memory_state="used"}',
        start=now,
        end=now + 30,
        step="30s",
    )
    assert result["values"] == [[now, "0.25"], [now + 30, "0.5"]]
