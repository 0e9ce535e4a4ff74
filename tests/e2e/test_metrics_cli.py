"""``infragent metrics compact|retention`` as an operator runs them, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult
from infragent.store.records import Registration
from infragent.store.sql import SqlStore
from support.metric_batches import host_batches

pytestmark = pytest.mark.e2e
HOUR = 3600.0


def _run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    env["INFRAGENT_DATABASE_URL"] = db_url
    env["INFRAGENT_LOG_LEVEL"] = "warning"
    return subprocess.run(
        [sys.executable, "-m", "infragent", "metrics", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _written(store: SqlStore, tenant: str) -> SqlMetricStore:
    """36 series, 60-point batches of 10 s data over the 3 hours before the previous one."""
    metrics = SqlMetricStore(store.engine)
    start = time.time() // HOUR * HOUR - 4 * HOUR
    for b in host_batches(start, 3 * HOUR, hosts=2, series_per_host=6):
        metrics.write_batch(tenant, b, now=start + 3 * HOUR)
    return metrics


def test_compact_prints_progress_and_a_summary(
    store: SqlStore, client_reg: Registration, db_url: str
) -> None:
    metrics = _written(store, client_reg.client.id)
    before = metrics.query_range(client_reg.client.id, "host-1", "host.random", {"n": "2"}, 0, 2e9)

    done = _run(db_url, "compact")

    assert done.returncode == 0, done.stderr
    assert "compacted 3 hours, 36 series-hours, 12,960 points" in done.stdout
    assert "compacting: " in done.stdout and "MB ->" in done.stdout and "pts/s" in done.stdout
    assert metrics.query_range(client_reg.client.id, "host-1", "host.random", {"n": "2"}, 0, 2e9) == before
    again = _run(db_url, "compact", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["chunks_in"] == 0 and set(summary) >= {f for f in CompactionResult.__dataclass_fields__}


def test_compact_json_and_delay(store: SqlStore, client_reg: Registration, db_url: str) -> None:
    _written(store, client_reg.client.id)
    # data fills the 3 hours before the last one; only the oldest ended 3 hours ago or more
    done = _run(db_url, "compact", "--delay", str(3 * HOUR), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["hours"], summary["series_hours"], summary["points"]) == (1, 12, 4320)
    assert summary["bytes_out"] < summary["bytes_in"] / 4 and summary["ratio"] > 4


def test_retention_runs_once(db_url: str, store: SqlStore) -> None:
    done = _run(db_url, "retention")
    assert done.returncode == 0, done.stderr
    assert "retention: 0 chunks removed" in done.stdout


def test_a_database_that_cannot_be_opened_is_a_clear_error() -> None:
    done = _run("postgresql://someone:secret@127.0.0.1:1/none", "compact")
    assert done.returncode == 1
    assert "infragent: cannot open the database 127.0.0.1:1/none" in done.stderr
    assert "secret" not in done.stderr + done.stdout
