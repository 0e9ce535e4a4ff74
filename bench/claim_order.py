"""The responder's claim, oldest pending work first: its query plan and its cost (figures, no assertions).

A fleet of ``--agents`` agents, ``--noisy`` of which hold ``--backlog`` pending events each (the
rest one each), and half of the noisy ones leased (a responder is busy with them). Prints the plan
of ``store/claims.claim``'s pick (it must seek ``ix_events_agent_pending_received`` per agent, not
read a noisy agent's whole backlog) and the time of a claim (pick + lease + read the one event of
the quiet agent it picks), rolled back each time so every claim sees the same fleet.

    .venv/bin/python bench/claim_order.py --agents 2000 --noisy 20 --backlog 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa

from infragent.auth.registration import register_client
from infragent.store import claims
from infragent.store.schema import agents, events
from infragent.store.sql import SqlStore, open_store

PG = os.environ.get("INFRAGENT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def _store(kind: str) -> Iterator[SqlStore]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            yield store
            store.close()
        return
    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    store = open_store(f"{PG}?options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _fill(store: SqlStore, n_agents: int, n_noisy: int, backlog: int) -> None:
    reg = register_client(store, "bench@example.com", "Bench", "http://127.0.0.1:9/h", now=1.0)
    t = 1_000_000.0
    agent_rows, event_rows = [], []
    for i in range(n_agents):
        agent_id = str(uuid.uuid4())
        noisy = i < n_noisy
        agent_rows.append(
            {
                "id": agent_id,
                "client_id": reg.client.id,
                "node_id": f"host-{i}",
                "kind": "agent",
                "command_mode": "push",
                "actions": [],
                "labels": {},
                "registered_at": 1.0,
                "last_seen": 1.0,
                # half the noisy agents are being worked on: the pick must look past them
                "lease_until": 2e9 if noisy and i % 2 == 0 else None,
            }
        )
        for j in range(backlog if noisy else 1):
            event_rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "client_id": reg.client.id,
                    "agent_id": agent_id,
                    "type": "app_down",
                    "service": "web",
                    "severity": "critical",
                    "data": {},
                    # the backlog is newer than the quiet agents' events: a quiet agent is claimed,
                    # and the pick must still weigh every noisy agent's oldest pending event
                    "received_at": t + (100_000 + j if noisy else i),
                }
            )
    with store.write() as conn:
        conn.execute(agents.insert(), agent_rows)
        for k in range(0, len(event_rows), 5000):
            conn.execute(events.insert(), event_rows[k : k + 5000])
        conn.execute(sa.text("ANALYZE"))


def _plan(store: SqlStore) -> str:
    with store.write() as conn:
        postgresql = conn.dialect.name == "postgresql"
        query = claims.pick_query(2_000_000.0, postgresql=postgresql)
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN (ANALYZE, BUFFERS) " if postgresql else "EXPLAIN QUERY PLAN "
        rows = conn.exec_driver_sql(explain + sql).all()
        conn.rollback()
    return "\n".join(" | ".join(str(x) for x in r) for r in rows)


def _time(store: SqlStore, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        with store.engine.connect() as conn:
            start = time.perf_counter()
            with conn.begin() as tx:
                claim = claims.claim(conn, "bench", 60.0, 2_000_000.0)
                out.append(time.perf_counter() - start)
                assert claim is not None
                tx.rollback()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--noisy", type=int, default=20)
    ap.add_argument("--backlog", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = ap.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    pending = args.noisy * args.backlog + args.agents - args.noisy
    print(
        f"{args.agents} agents, {args.noisy} noisy with {args.backlog} pending each; {pending} pending events"
    )
    for kind in kinds:
        with _store(kind) as store:
            _fill(store, args.agents, args.noisy, args.backlog)
            print(f"\n== {kind}: plan of the pick\n{_plan(store)}")
            ms = sorted(x * 1000 for x in _time(store, args.rounds))
            print(
                f"== {kind}: claim p50 {statistics.median(ms):.2f} ms, "
                f"p95 {ms[int(len(ms) * 0.95) - 1]:.2f} ms ({args.rounds} claims)"
            )


if __name__ == "__main__":
    main()
