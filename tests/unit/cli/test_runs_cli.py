"""``infragent runs``, ``infragent approvals`` and ``infragent killswitch`` through typer's
``CliRunner`` on a temporary SQLite database: what is printed, what the database holds afterwards,
and the exit codes scripts rely on (1 refused, 2 bad usage)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from infragent.cli.runs import approvals_app, killswitch_app, runs_app
from infragent.responder.step_run import Start
from infragent.store import guard_reads, run_reads
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client
from support.run_rows import APPROVED_RESTART, add_approval, advance, queue_run, row_of


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def store(db: str) -> Iterator[SqlStore]:
    s = open_store(db)
    yield s
    s.close()


@pytest.fixture
def tenant(store: SqlStore) -> str:
    return create_client(store, "a@example.com", "Alpha", "http://127.0.0.1:9/h", now=1.0).client.id


def run(app: typer.Typer, db: str, *args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"INFRAGENT_DATABASE_URL": db, **env})
    return result.exit_code, result.output


def _waiting(store: SqlStore, tenant: str) -> tuple[str, str]:
    now = time.time()
    run_id = queue_run(store, tenant, APPROVED_RESTART, now)
    advance(store, run_id, APPROVED_RESTART, Start(), now)
    return run_id, add_approval(store, tenant, run_id, 1, now)


def test_runs_are_listed_shown_and_cancelled(db: str, store: SqlStore, tenant: str) -> None:
    run_id, _ = _waiting(store, tenant)
    code, out = run(runs_app, db, "list")
    assert code == 0 and run_id in out and "waiting_approval" in out and "waiting for approval" in out
    code, out = run(runs_app, db, "show", run_id)
    assert code == 0 and "restart-web" in out and "#1 restart: waiting for approval until" in out
    code, out = run(runs_app, db, "cancel", run_id, "--reason", "wrong host", "--by", "ann")
    assert code == 0 and "cli:ann" in out
    assert row_of(store, run_id).cancel_requested_by == "cli:ann"
    code, out = run(runs_app, db, "show", "nope")
    assert code == 1 and "run 'nope' not found" in out
    code, out = run(runs_app, db, "list", "--status", "sleeping")
    assert code == 2 and "--status" in out


def test_an_approval_is_answered_once(db: str, store: SqlStore, tenant: str) -> None:
    _, approval_id = _waiting(store, tenant)
    code, out = run(approvals_app, db, "list", "--status", "pending")
    assert code == 0 and approval_id in out and "s left" in out
    code, out = run(approvals_app, db, "approve", approval_id, "--note", "ok", "--by", "ann")
    assert code == 0 and "approved by cli:ann" in out
    code, out = run(approvals_app, db, "reject", approval_id)
    assert code == 1 and "already approved" in out
    with store.read() as conn:
        assert run_reads.get_approval(conn, tenant, approval_id, time.time()).note == "ok"


def test_the_kill_switch(db: str, store: SqlStore, tenant: str) -> None:
    code, out = run(killswitch_app, db, "status")
    assert code == 0 and "kill switch off" in out
    code, out = run(killswitch_app, db, "on", "--reason", "storm", "--by", "ann")
    assert code == 0 and "ON" in out and "cli:ann" in out and "storm" in out
    with store.read() as conn:
        assert guard_reads.read_kill_switch(conn).on
    code, out = run(killswitch_app, db, "off")
    assert code == 0 and "kill switch off" in out
    code, out = run(killswitch_app, db, "status", INFRAGENT_RESPONDER_KILL_SWITCH="true")
    assert code == 0 and "ON" in out and "responder_kill_switch" in out
