"""The agent's delivery promise against the real server: nothing accepted is lost, nothing stored twice.

Both processes are real (``python -m infragent server`` and ``python -m infragent.agent run``), the
server stores in SQLite or PostgreSQL, and the faults are real ones: the server stopped for a
window, the agent SIGKILLed at random moments, a spool over its cap, bytes flipped in a segment.

How points are counted: the agent runs with ``INFRAGENT_AGENT_JOURNAL=1``, so every batch it spooled
(across all its lives) is in ``journal.log`` with its point count. After the agent is stopped, the
test reads what the server stored (``metric_batches`` and the metric store's sample count), and what
is still pending in the spool. Then: created = stored + pending (+ dropped or set aside where the
test provokes it), and no series holds a timestamp twice.

The agent's own ``/metrics`` is compared with itself only within one answer: the agent reads its
spool and its counters under one lock, so collected = sent + waiting (``agent_buffer_points``) +
dropped + dead-lettered holds in every snapshot. Comparing a snapshot with a spool read taken after
stop was racy (a batch collected after the scrape and sent before the stop: 4752 vs 4680 + 0).

``INFRAGENT_RELIABILITY_OUTAGE_S`` sets the outage of test (a), 60 s by default as the issue asks;
``INFRAGENT_RELIABILITY_AUTH_OUTAGE_S`` how long the agent ships with a wrong key in test (e), 30 s
by default. Shorter values make fast local runs.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from infragent.agent.spool import DeadLetters, Spool
from infragent.agent.spool.deadletter import FILE_NAME as DEAD_LETTER_FILE
from infragent.store.metrics import SqlMetricStore
from infragent.store.schema import metric_batches
from infragent.store.sql import SqlStore
from support.agent_proc import AgentProc, ServerProc, wait_until
from support.databases import create_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

OUTAGE_S = float(os.environ.get("INFRAGENT_RELIABILITY_OUTAGE_S", "60"))
AUTH_OUTAGE_S = float(os.environ.get("INFRAGENT_RELIABILITY_AUTH_OUTAGE_S", "30"))
KILLS = 20
RETRY_CAP = "3"  # seconds: the agent's backoff cap, so a drain after an outage takes seconds


class Deployment:
    """One tenant, one server process, and helpers to read what the server stored."""

    def __init__(self, store: SqlStore, db_url: str, work: Path) -> None:
        self.store = store
        reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/hook", now=time.time())
        self.client_id = reg.client.id
        self.api_key = reg.api_key
        self.server = ServerProc(db_url, work)
        self.work = work
        self.agents: list[AgentProc] = []

    def agent(self, **env: str) -> AgentProc:
        env.setdefault("INFRAGENT_AGENT_RETRY_MAX_S", RETRY_CAP)
        agent = AgentProc(self.server.url, self.api_key, self.work / "agent", **env)
        self.agents.append(agent)
        return agent

    def stored_batches(self) -> dict[str, int]:
        q = sa.select(metric_batches.c.batch_id, metric_batches.c.points).where(
            metric_batches.c.client_id == self.client_id
        )
        with self.store.engine.connect() as conn:
            return {row.batch_id: row.points for row in conn.execute(q)}

    def stored_points(self) -> int:
        return SqlMetricStore(self.store.engine).count_samples(self.client_id)

    def duplicated_timestamps(self) -> int:
        """Samples whose (series, timestamp) is stored more than once."""
        metrics = SqlMetricStore(self.store.engine)
        duplicates = 0
        for series in metrics.list_series(self.client_id):
            stamps = [
                ts
                for ts, _ in metrics.query_range(
                    self.client_id, series.host, series.name, series.labels, 0.0, 1e12
                )
            ]
            duplicates += len(stamps) - len(set(stamps))
        return duplicates

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()
        self.server.close()


@pytest.fixture
def deployment(store: SqlStore, db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(store, db_url, tmp_path)
    try:
        yield d
    finally:
        d.close()


def pending_in_spool(agent: AgentProc) -> dict[str, int]:
    """Batches still in the (stopped) agent's spool: batch id → points."""
    with Spool(agent.data_dir / "spool") as spool:
        return {r.batch_id: r.points for r in spool.peek(1_000_000)}


def drained(agent: AgentProc) -> bool:
    metrics = agent.metrics()
    return metrics["agent_buffer_records"] == 0 and metrics["agent_server_reachable"] == 1


def explain(d: Deployment, agent: AgentProc) -> str:
    return f"agent log:\n{agent.log()}\nserver log:\n{d.server.log()}"


def test_server_outage_loses_nothing_and_stores_nothing_twice(deployment: Deployment) -> None:
    """(a) The server is down for OUTAGE_S while the agent collects every second."""
    d = deployment
    d.server.start()
    agent = d.agent().start()
    wait_until(lambda: agent.metrics()["agent_points_sent_total"] > 0, 20, "first points to be sent")
    d.server.kill()
    time.sleep(OUTAGE_S)  # the fault itself: the server stays down this long (not a wait for state)
    during = agent.metrics()
    assert during["agent_server_reachable"] == 0
    assert during["agent_buffer_records"] >= OUTAGE_S * 0.8  # about one batch per second waited
    assert agent.health()["status"] == "degraded"
    d.server.start()
    wait_until(lambda: drained(agent), 60, "the spool to drain after the outage")
    final = agent.metrics()  # one consistent snapshot: its figures are compared with each other only
    assert agent.stop() == 0, explain(d, agent)

    created = agent.journal()
    stored = d.stored_batches()
    pending = pending_in_spool(agent)
    assert set(created) == set(stored) | set(pending), explain(d, agent)
    assert not set(stored) & set(pending)
    assert d.stored_points() == sum(created[b] for b in stored)
    assert d.duplicated_timestamps() == 0
    assert final["agent_points_collected_total"] == (
        final["agent_points_sent_total"] + final["agent_buffer_points"]
    ), final
    assert final["agent_points_dropped_total"] == final["agent_points_dead_lettered_total"] == 0


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_agent_killed_at_random_moments(deployment: Deployment) -> None:
    """(b) SIGKILL the agent 20 times mid-stream (5 batches a second), restart it on the same spool."""
    d = deployment
    d.server.start()
    rng = random.Random(os.environ.get("PYTEST_SEED", "agent-kills"))
    agent = d.agent(METRICS_INTERVAL="0.2")
    for _ in range(KILLS):
        agent.start()
        time.sleep(rng.uniform(0.05, 1.5))  # the fault schedule: kill at a random moment
        agent.kill()
    agent.start()
    wait_until(lambda: drained(agent), 60, "the spool to drain after the last restart")
    assert agent.stop() == 0, explain(d, agent)

    created = agent.journal()
    stored = d.stored_batches()
    pending = pending_in_spool(agent)
    lost = set(created) - set(stored) - set(pending)
    assert lost == set(), explain(d, agent)
    # A kill between "spooled" and "journaled" leaves a batch the journal never saw; at most one a kill.
    assert len(set(stored) - set(created)) <= KILLS
    assert d.stored_points() == sum(stored.values())
    assert d.duplicated_timestamps() == 0
    assert len(created) > KILLS  # the agent did work between kills


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_spool_cap_drops_oldest_and_counts_exactly(deployment: Deployment) -> None:
    """(c) With the server down, a 64 KiB spool overflows; the drop count is exact."""
    d = deployment
    agent = d.agent(METRICS_INTERVAL="0.1", BUFFER_MAX_SIZE="64KiB").start()
    wait_until(lambda: agent.metrics()["agent_points_dropped_total"] > 0, 60, "the spool to overflow")
    first_drop = agent.metrics()["agent_points_dropped_total"]
    overflowed_at = len(agent.journal())
    wait_until(  # a few more drops: 20 more batches (2 s at this interval) and the count has grown
        lambda: (
            len(agent.journal()) >= overflowed_at + 20
            and agent.metrics()["agent_points_dropped_total"] > first_drop
        ),
        60,
        "more batches to be dropped",
    )
    cut = len(agent.journal())  # batches created while the server was down
    d.server.start()
    wait_until(lambda: drained(agent), 60, "the spool to drain")
    exposed = agent.metrics()["agent_points_dropped_total"]
    assert agent.stop() == 0, explain(d, agent)

    # The agent keeps collecting every 0.1 s until it stops, and a loaded machine can overflow the
    # 64 KiB spool again in that time: compare with the count the spool persisted at stop (the
    # exposed counter is the same number, read a moment earlier).
    with Spool(agent.data_dir / "spool") as spool:
        dropped_points = spool.stats.dropped_points
    created = agent.journal()
    stored = d.stored_batches()
    pending = pending_in_spool(agent)
    missing = sum(points for batch, points in created.items() if batch not in stored and batch not in pending)
    assert 0 < exposed <= dropped_points
    assert dropped_points == missing, explain(d, agent)
    assert d.stored_points() == sum(stored.values())
    assert d.duplicated_timestamps() == 0
    # What was dropped during the outage is the oldest: every batch of that time that was stored is
    # newer than every one that was dropped.
    order = list(created)[:cut]
    dropped = [i for i, b in enumerate(order) if b not in stored and b not in pending]
    kept = [i for i, b in enumerate(order) if b in stored]
    assert dropped
    if kept:  # on a loaded machine the outage's batches may all be gone before the server is back
        assert max(dropped) < min(kept)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_corrupted_spool_record_is_set_aside_and_the_rest_sent(deployment: Deployment) -> None:
    """(d) Flip bytes in one spooled record while the agent is stopped; the rest still arrives."""
    d = deployment
    agent = d.agent(METRICS_INTERVAL="0.2").start()
    wait_until(lambda: agent.metrics()["agent_buffer_records"] >= 10, 30, "batches to pile up")
    assert agent.stop(signal.SIGTERM) == 0
    pending = pending_in_spool(agent)
    victim = list(pending)[len(pending) // 2]
    [segment] = [
        p for p in (agent.data_dir / "spool").glob("seg-*.spool") if victim.encode() in p.read_bytes()
    ]
    data = bytearray(segment.read_bytes())
    at = data.find(victim.encode()) + len(victim) + 8  # inside the victim's payload
    data[at] ^= 0xFF
    data[at + 1] ^= 0xFF
    segment.write_bytes(bytes(data))

    d.server.start()
    agent.start()
    wait_until(lambda: drained(agent), 60, "the spool to drain")
    final = agent.metrics()
    assert agent.stop() == 0, explain(d, agent)

    assert final["agent_corrupt_records_total"] == 1
    created = agent.journal()
    stored = d.stored_batches()
    left = pending_in_spool(agent)
    assert set(created) - set(stored) - set(left) == {victim}, explain(d, agent)
    assert list((agent.data_dir / "spool" / "quarantine").iterdir())
    assert d.stored_points() == sum(stored.values())
    assert d.duplicated_timestamps() == 0


def wrong_key(key: str) -> str:
    """The same key id with another secret: well-formed, and refused with 401."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_wrong_key_keeps_everything_and_the_right_key_sends_it_once(deployment: Deployment) -> None:
    """(e) The agent ships with a wrong key for AUTH_OUTAGE_S, then restarts with the right one."""
    d = deployment
    d.server.start()
    agent = d.agent(INFRAGENT_API_KEY=wrong_key(d.api_key)).start(wait_ready=False)
    wait_until(
        lambda: agent.metrics()["agent_server_auth_failing"] == 1, 30, "the agent to see its key refused"
    )
    time.sleep(AUTH_OUTAGE_S)  # the fault itself: a wrong key this long (not a wait for state)
    during = agent.metrics()
    assert during["agent_server_auth_failing"] == 1 and during["agent_server_reachable"] == 1
    assert during["agent_points_sent_total"] == during["agent_points_dead_lettered_total"] == 0
    assert during["agent_buffer_records"] >= AUTH_OUTAGE_S * 0.8  # about one batch per second kept
    assert during["agent_points_collected_total"] == during["agent_buffer_points"]
    ready = httpx.get(f"{agent.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and "HTTP 401" in ready.json()["reason"], ready.text
    assert agent.health()["status"] == "degraded"
    # Paused, not hammering: one refused batch, then a pause of at least a minute.
    assert agent.log(tail=10_000_000).count("metrics: HTTP 401") <= 1 + int(AUTH_OUTAGE_S // 60)
    assert d.stored_batches() == {}

    assert agent.stop() == 0, explain(d, agent)
    agent.env["INFRAGENT_API_KEY"] = d.api_key  # the operator fixes the key and restarts the agent
    agent.start()
    wait_until(lambda: drained(agent), 60, "the kept batches to be sent")
    final = agent.metrics()
    assert final["agent_server_auth_failing"] == 0
    assert agent.stop() == 0, explain(d, agent)

    created = agent.journal()
    stored = d.stored_batches()
    pending = pending_in_spool(agent)
    assert set(created) - set(stored) - set(pending) == set(), explain(d, agent)  # 0 lost
    assert {b: created[b] for b in stored} == stored  # every batch stored with all its points
    assert d.stored_points() == sum(stored.values())
    assert d.duplicated_timestamps() == 0  # 0 duplicated
    assert not list(DeadLetters(agent.data_dir / DEAD_LETTER_FILE).entries())
