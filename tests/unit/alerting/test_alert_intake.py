"""``Intake``: what other threads hand to the evaluator, by tenant, in order; past its bound a batch
is reduced to its host (read back from the store later), never dropped and never waited for."""

from __future__ import annotations

from infragent.alerting.intake import Intake
from infragent.alerting.ports import Signal
from infragent.model import Event, Severity
from infragent.wire import MetricBatch


def _batch(host: str, n: int) -> MetricBatch:
    return MetricBatch(f"{host}-{n}", host, {}, [])


def test_items_are_drained_by_tenant_in_arrival_order() -> None:
    intake = Intake()
    intake.batch("t1", _batch("a", 1))
    intake.event("t2", Event("e1", "t2", "ag", "h", "app_down", "web", Severity.CRITICAL, {}, 5.0))
    intake.batch("t1", _batch("b", 2))
    intake.signal(Signal("t2", frozenset({"x"}), events=True))
    assert intake.wake.is_set()
    rounds = intake.drain()
    assert [b.batch.batch_id for b in rounds["t1"].batches] == ["a-1", "b-2"]
    assert [(e.event_id, e.type, e.at) for e in rounds["t2"].events] == [("e1", "app_down", 5.0)]
    assert rounds["t2"].signals == [Signal("t2", frozenset({"x"}), events=True)]
    assert intake.drain() == {}


def test_past_its_bound_a_batch_is_only_noted_by_host() -> None:
    intake = Intake(max_queued=2)
    for n, host in enumerate(["a", "b", "c", "c"]):
        intake.batch("t1", _batch(host, n))
    r = intake.drain()["t1"]
    assert [b.batch.node_id for b in r.batches] == ["a", "b"]
    assert r.noted == {"c"}
