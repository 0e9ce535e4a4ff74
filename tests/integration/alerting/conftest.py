"""Evaluators over a real database (the ``store`` fixture: SQLite and PostgreSQL), driven with
explicit times (``tick(now)``, ``run_pending(now)``): no thread, no sleep.

A tenant here has the default pack switched off and one rule of the test's own, so what is
recorded is what the test caused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from infragent.alerting import Evaluator, EvaluatorConfig, SqlAlertStore
from infragent.alerting.signals import pg_listen
from infragent.alerting.telemetry import AlertMetrics
from infragent.incidents.model import IncidentPolicy
from infragent.rules.files import parse_rule_text
from infragent.store import alerts, rules
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client

T0 = 1_767_000_000.0
#: ``last`` over 30 s above 0.9, for 20 s, per host; kept firing 30 s after it stops holding.
CPU_HOT = """
alert: CpuHot
kind: threshold
metric: cpu.busy
function: last
window: 30s
by: [host]
op: ">"
value: 0.9
for: 20s
keep_firing_for: 30s
severity: critical
annotations: {summary: "{{ $labels.host }} is busy ({{ $value }})"}
"""


@dataclass
class Bench:
    """A tenant with one rule, the stores, and evaluators made over them."""

    store: SqlStore
    metrics: SqlMetricStore
    client_id: str
    rule_id: str
    policy: IncidentPolicy = field(default_factory=IncidentPolicy)
    made: list[Evaluator] = field(default_factory=list)
    t0: float = T0

    def evaluator(self, owner: str, *, listen: bool = False, **config: Any) -> Evaluator:
        """An evaluator as a server process has one; ``listen`` (PostgreSQL): hear other processes."""
        settings = {"tick_s": 0.05, "lease_s": 15.0, **config}
        url = self.store.engine.url.render_as_string(hide_password=False)
        ev = Evaluator(
            SqlAlertStore(self.store, self.policy),
            self.metrics,
            EvaluatorConfig(**settings),
            metrics=AlertMetrics(),
            owner=owner,
            listen=pg_listen(url) if listen else None,
        )
        self.made.append(ev)
        return ev

    def batch(self, host: str, points: list[tuple[float, float]]) -> MetricBatch:
        ts = [p[0] for p in points]
        values = [p[1] for p in points]
        series = SeriesData("cpu.busy", "1", "gauge", False, {"core": "0"}, ts, values)
        return MetricBatch(str(uuid.uuid4()), host, {}, [series])

    def ingest(self, ev: Evaluator | None, host: str, points: list[tuple[float, float]], now: float) -> None:
        """Store a batch as ingest would, then hand it to ``ev`` (the process that received it)."""
        batch = self.batch(host, points)
        self.metrics.write_batch(self.client_id, batch, now)
        if ev is not None:
            ev.observe_batch(self.client_id, batch)
            ev.run_pending(now)

    def add_rule(self, text: str, now: float = T0) -> str:
        return add_rule(self.store, self.client_id, text, now)

    def transitions(self, rule_id: str | None = None) -> list[tuple[float, str, str]]:
        with self.store.read() as conn:
            rows = alerts.transitions(conn, self.client_id, rule_id or self.rule_id)
        return [(r["at"], r["from_status"], r["to_status"]) for r in rows]

    def instance(self) -> alerts.InstanceRow:
        with self.store.read() as conn:
            (row,) = [r for r in alerts.load_instances(conn, self.client_id) if r.rule_id == self.rule_id]
        return row


def add_rule(store: SqlStore, client_id: str, text: str, now: float = T0) -> str:
    with store.write() as conn:
        return rules.create_rule(
            conn, client_id, parse_rule_text(text, "test"), origin="api", now=now, actor="test"
        ).id


@pytest.fixture
def bench(store: SqlStore) -> Iterator[Bench]:
    reg = create_client(store, f"{uuid.uuid4().hex[:8]}@example.com", "Acme", "http://127.0.0.1:9/h", now=T0)
    client_id = reg.client.id
    with store.write() as conn:
        for stored in rules.load_rules(conn, client_id):
            rules.set_enabled(conn, client_id, stored.name, False, now=T0, actor="test")
    b = Bench(store, SqlMetricStore(store.engine), client_id, add_rule(store, client_id, CPU_HOT))
    yield b
    for ev in b.made:
        ev.stop()
