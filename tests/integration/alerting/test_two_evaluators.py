"""Two server processes' evaluators on one PostgreSQL tenant, each in its own thread on the real
clock: one holds the tenant, the other signals it (``NOTIFY``) about the batches it received, and
every transition is recorded once, in order, with one incident."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from infragent.store import alerts

if TYPE_CHECKING:
    from conftest import Bench

pytestmark = pytest.mark.postgres

QUICK = """
alert: Quick
kind: threshold
metric: cpu.busy
function: last
window: 5s
by: [host]
op: ">"
value: 0.9
for: 1s
"""


def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_the_holder_evaluates_what_the_other_process_received_and_records_it_once(bench: Bench) -> None:
    if bench.store.engine.dialect.name != "postgresql":
        pytest.skip("several server processes share a tenant on PostgreSQL only")
    quick = bench.add_rule(QUICK)
    a = bench.evaluator("A", listen=True)
    b = bench.evaluator("B", listen=True)
    a.start()
    b.start()
    _until(lambda: a.holds(bench.client_id) or b.holds(bench.client_id))
    holder, other = (a, b) if a.holds(bench.client_id) else (b, a)
    with bench.store.read() as conn:
        assert set(alerts.lease_holders(conn)[bench.client_id][:1]) == {holder.owner}

    def send(value: float) -> None:
        """Ingest in the process that does NOT hold the tenant: store, then hand it over."""
        now = time.time()
        batch = bench.batch("web-1", [(now, value)])
        bench.metrics.write_batch(bench.client_id, batch, now)
        other.observe_batch(bench.client_id, batch)

    def fired() -> bool:
        return any(to == "firing" for _, _, to in bench.transitions(quick))

    def resolved() -> bool:
        return any(frm == "firing" and to == "inactive" for _, frm, to in bench.transitions(quick))

    deadline = time.monotonic() + 20
    while not fired():
        assert time.monotonic() < deadline, bench.transitions(quick)
        send(0.95)
        time.sleep(0.1)
    while not resolved():
        assert time.monotonic() < deadline, bench.transitions(quick)
        send(0.1)
        time.sleep(0.1)
    got = [(frm, to) for _, frm, to in bench.transitions(quick)]
    assert got == [("inactive", "pending"), ("pending", "firing"), ("firing", "inactive")]
    with bench.store.read() as conn:
        (row,) = [r for r in alerts.load_instances(conn, bench.client_id) if r.rule_id == quick]
    assert row.incident_id is not None
    assert not other.holds(bench.client_id)
