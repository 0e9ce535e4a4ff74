"""Event stored → responder decision: latency of each wake-up path (figures, no assertions).

Paths: in-process signal (``infragent up``), SQLite across processes (``PRAGMA data_version`` poll),
PostgreSQL across processes (LISTEN/NOTIFY). The sweep interval is set to 60 s, so every figure
below a minute is a wake-up, not the sweep. Latency = audit ``decision.made`` minus ``event.received``.

    .venv/bin/python bench/responder_wakeup.py --events 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from infragent.auth.registration import register_client
from infragent.config import Settings
from infragent.model import Severity
from infragent.store import audit, events
from infragent.store.sql import SqlStore, open_store
from infragent.store.wakeup import Wakeup

PG = os.environ.get("INFRAGENT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _latencies(store: SqlStore, client_id: str) -> list[float]:
    received: dict[str, float] = {}
    decided: list[float] = []
    with store.read() as conn:
        entries = audit.entries(conn, client_id)
    for entry in entries:
        if entry.kind == "event.received":
            received[entry.subject] = entry.at
        elif entry.kind == "decision.made":
            decided.extend(entry.at - received[e] for e in entry.detail["event_ids"])
    return decided


def _pending(store: SqlStore) -> int:
    with store.read() as conn:
        return events.pending_count(conn)


def _drive(store: SqlStore, count: int, wake: Wakeup | None) -> str:
    reg = register_client(store, "bench@example.com", "Bench", "http://127.0.0.1:9/h", now=time.time())
    for i in range(count):
        # app_recovered → the built-in runbook decides "none": no webhook in the measured path.
        with store.write() as conn:
            events.insert_event(
                conn,
                reg.client.id,
                type="app_recovered",
                service="web",
                severity=Severity.INFO,
                data={},
                node_id=f"bench-{i}",
                now=time.time(),
            )
        if wake is not None:
            wake.set()
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    while _pending(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    return reg.client.id


def _report(name: str, lat: list[float], events: int) -> None:
    ms = sorted(x * 1000 for x in lat)
    if len(ms) < events:
        print(f"{name:<38} only {len(ms)}/{events} handled")
        return
    p95 = ms[int(0.95 * (len(ms) - 1))]
    p50 = statistics.median(ms)
    print(f"{name:<38} n={len(ms):<4} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms")


def in_process(events: int) -> None:
    from infragent.cli.runtime import start_responder

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), sweep_interval_s=60)
        store = open_store(settings.resolved_database_url)
        wake = Wakeup()
        running = start_responder(settings, store, wake, watch=False)
        try:
            client = _drive(store, events, wake)
            _report("in-process signal (SQLite)", _latencies(store, client), events)
        finally:
            running.stop()
            store.close()


def other_process(name: str, url: str, events: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env.update(
        {"INFRAGENT_DATABASE_URL": url, "INFRAGENT_SWEEP_INTERVAL_S": "60", "INFRAGENT_LOG_LEVEL": "warning"}
    )
    store = open_store(url)
    proc = subprocess.Popen([sys.executable, "-m", "infragent", "responder"], env=env)
    try:
        time.sleep(2.0)  # start-up: imports, migrations, LISTEN
        client = _drive(store, events, None)
        _report(name, _latencies(store, client), events)
    finally:
        proc.terminate()
        proc.wait(15)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50)
    args = parser.parse_args()
    print(f"responder wake-up latency, {args.events} events each, sweep interval 60 s")
    in_process(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        other_process("SQLite, other process (data_version)", f"sqlite:///{tmp}/b.db", args.events)
    schema = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        other_process(
            "PostgreSQL, other process (NOTIFY)", f"{PG}?options=-csearch_path%3D{schema}", args.events
        )
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
