"""Two server processes on one PostgreSQL schema: each scheduled run happens once.

Both servers run their scheduler every 0.1 s against the same schedules, so every due run is found
due by both, at nearly the same moment. Sixteen interval schedules (the shortest interval is a
minute, so each is due once in the test's window) start half a second apart over 8 s. What is
counted is the database: one ``schedule_runs`` row per due run, at its due time; one
``runbook_runs`` row per claimed run, the one its claim names; one ``schedule.run`` audit entry per
run, ``started``. Which process claimed each run is printed (both usually do; either is right).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from infragent.store import audit
from infragent.store.runbook_schema import runbook_runs, schedule_runs, schedules
from infragent.store.sql import SqlStore
from support.detect import deployment, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
]
RUNBOOKS = """\
runbooks:
  - name: scheduled-check
    steps:
      - notify: "scheduled check of {node_id}"
"""
SCHEDULES = 16
SPREAD_S = 0.5


def _claims(store: SqlStore, client_id: str) -> list[sa.Row[object]]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(schedule_runs).where(schedule_runs.c.client_id == client_id)))


def test_each_scheduled_run_happens_once(store: SqlStore, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "runbooks.yaml"
    path.write_text(RUNBOOKS)
    env = {"INFRAGENT_RUNBOOKS_PATH": str(path), "INFRAGENT_SCHEDULE_TICK_S": "0.1"}
    with deployment(store, db_url, tmp_path) as d:
        servers = [d.server(**env).start(), d.server(**env).start()]
        auth = {"Authorization": f"Bearer {d.api_key}"}
        first = time.time() + 3.0  # after every schedule is created
        starts = {f"every-minute-{i}": first + i * SPREAD_S for i in range(SCHEDULES)}
        with httpx.Client(base_url=servers[0].url, headers=auth, timeout=10) as http:
            for name, start in starts.items():
                body = {
                    "name": name,
                    "runbook": "scheduled-check",
                    "every": "1m",
                    "start": start,
                    "node_id": "h",
                }
                r = http.post("/api/v1/schedules", json=body)
                assert r.status_code == 201, r.text
                assert r.json()["next_run_at"] == start
        wait_for(
            lambda: len(_claims(store, d.client_id)) >= SCHEDULES or None,
            first + SCHEDULES * SPREAD_S + 20 - time.time(),
            "every due run to be claimed",
        )
        for server in servers:  # both still up: neither crashed on a lost race
            assert server.running, server.log()
        for server in servers:
            server.stop()
        claims = _claims(store, d.client_id)
        with store.engine.connect() as conn:
            ids = {r.name: r.id for r in conn.execute(sa.select(schedules.c.name, schedules.c.id))}
            runs = list(conn.execute(sa.select(runbook_runs).where(runbook_runs.c.client_id == d.client_id)))
            entries = [e for e in audit.entries(conn, d.client_id) if e.kind == "schedule.run"]
    expected = {(ids[name], start) for name, start in starts.items()}
    assert sorted((c.schedule_id, c.due_at) for c in claims) == sorted(expected)
    assert all(c.run_id is not None for c in claims)
    assert len(runs) == SCHEDULES
    assert {r.id for r in runs} == {c.run_id for c in claims}
    assert {(r.schedule_id, r.runbook) for r in runs} == {(sid, "scheduled-check") for sid, _ in expected}
    assert Counter(e.detail["outcome"] for e in entries) == {"started": SCHEDULES}
    assert sorted(e.detail["run_id"] for e in entries) == sorted(r.id for r in runs)
    print("claims per server process:", Counter(c.claimed_by.split(":")[1] for c in claims))
