"""Runbooks as steps with real processes, on SQLite and PostgreSQL: a responder process runs the
step runbooks against a real signed-command receiver (the SDK's webhook app), people answer through
the real HTTP API, and the test plays the service: it reports ``app_down`` and, once restarted,
``app_recovered`` (as the agent's check would).

What must hold (issue #14's Done-when): crash → act → verify → resolved with MTTR; a crash loop →
exactly 3 restarts then one escalation with a summary; approval required → waits, approved via the
API → runs once; expired → escalated, nothing run; shadow mode → nothing sent, the would-be
command recorded; kill switch → nothing sent; a responder SIGKILLed mid-runbook → the run goes on
(or fails cleanly) after the lease and no step runs twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from infragent.config import Settings
from infragent.incidents.model import IncidentPolicy
from infragent.model import Severity
from infragent.server.app import create_app
from infragent.store.incident_reads import get_incident
from infragent.store.runbook_schema import action_history, run_approvals, run_steps, runbook_runs
from infragent.store.schema import commands
from infragent.store.sql import SqlStore
from support.databases import audit_entries, insert_event
from support.responders import Receiver, register_node
from support.servers import serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
NODE = "host-1"
RUNBOOKS = """
runbooks:
  - name: restart-web
    match: {event_type: app_down, service: web}
    steps:
      - {id: restart, act: {action: restart, target: "{service}", params: {name: "{service}"}}}
      - {id: verify, verify: {signal: check}, timeout: 30s}
  - name: restart-db
    match: {event_type: app_down, service: db}
    approval: required
    steps:
      - {id: restart, act: {action: restart, target: "{service}", params: {name: "{service}"}}}
      - {id: verify, verify: {signal: check}, timeout: 30s}
  - name: restart-cache
    match: {event_type: app_down, service: cache}
    approval: required
    approval_expiry: 2s
    steps:
      - {id: restart, act: {action: restart, target: "{service}", params: {name: "{service}"}}}
"""


def until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s:g} s")
        time.sleep(0.05)


@contextmanager
def responder_process(db_url: str, runbooks: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENT_")}
    environ.update(
        {
            "INFRAGENT_DATABASE_URL": db_url,
            "INFRAGENT_RUNBOOKS_PATH": str(runbooks),
            "INFRAGENT_RUN_LEASE_S": "2",
            "INFRAGENT_RUN_POLL_S": "0.2",
            "INFRAGENT_LEASE_S": "2",
            "INFRAGENT_COOLDOWN_S": "0",
            "INFRAGENT_LOG_LEVEL": "warning",
            "INFRAGENT_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver runs on this machine
            **env,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "infragent", "responder"], env=environ, stdout=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


class Rig:
    """The test's side: the service (events), the people (API), and what was stored."""

    def __init__(self, store: SqlStore, receiver: Receiver, api: httpx.Client) -> None:
        self.store, self.receiver, self.api = store, receiver, api
        self.client_id = receiver.reg.client.id

    def report(self, kind: str, service: str) -> None:
        severity = Severity.CRITICAL if kind == "app_down" else Severity.INFO
        insert_event(
            self.store,
            self.client_id,
            type=kind,
            service=service,
            severity=severity,
            data={},
            node_id=NODE,
            now=time.time(),
            incidents=IncidentPolicy(),
        )

    def runs(self) -> list[Any]:
        with self.store.read() as conn:
            return list(conn.execute(sa.select(runbook_runs).order_by(runbook_runs.c.created_at)).all())

    def ended(self, count: int = 1) -> Callable[[], bool]:
        return lambda: sum(1 for r in self.runs() if r.ended_at is not None) >= count

    def incident(self, incident_id: str) -> Any:
        with self.store.read() as conn:
            return get_incident(conn, self.client_id, incident_id)

    def rows(self, table: sa.Table) -> list[Any]:
        with self.store.read() as conn:
            return list(conn.execute(sa.select(table)).all())

    def restarts(self) -> int:
        return self.receiver.total


@pytest.fixture
def rig(store: SqlStore, receiver: Receiver) -> Iterator[Rig]:
    register_node(store, receiver.reg, NODE)
    settings = Settings(rules_enabled=False, notify_enabled=False, webhook_allowed_networks=("127.0.0.0/8",))
    with serve(create_app(settings, store=store)) as base:
        headers = {"Authorization": f"Bearer {receiver.reg.api_key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as api:
            yield Rig(store, receiver, api)


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    path = tmp_path / "runbooks.yaml"
    path.write_text(RUNBOOKS, encoding="utf-8")
    return path


def test_crash_is_restarted_verified_and_resolved_with_mttr(rig: Rig, db_url: str, runbooks: Path) -> None:
    with responder_process(db_url, runbooks):
        rig.report("app_down", "web")
        until(lambda: rig.restarts() == 1, what="the restart")
        rig.report("app_recovered", "web")
        until(rig.ended(), what="the run's end")
    (run,) = rig.runs()
    assert (run.status, run.outcome) == ("completed", "completed")
    assert run.mttr_s is not None and run.mttr_s > 0
    assert rig.incident(run.incident_id).status == "resolved"
    assert [s.step_id for s in rig.rows(run_steps)] == ["restart", "verify"]
    assert rig.restarts() == 1
    effectiveness = rig.api.get("/api/v1/effectiveness").json()
    assert "restart-web" in str(effectiveness)


def test_crash_loop_gets_three_restarts_then_one_escalation(rig: Rig, db_url: str, runbooks: Path) -> None:
    stop = threading.Event()

    def crash_looping_service() -> None:
        """Dies again within a second of every restart."""
        seen = 0
        while not stop.is_set():
            if rig.restarts() > seen:
                seen = rig.restarts()
                rig.report("app_recovered", "web")
                time.sleep(0.3)
                rig.report("app_down", "web")
            time.sleep(0.05)

    service = threading.Thread(target=crash_looping_service, daemon=True)
    with responder_process(db_url, runbooks):
        rig.report("app_down", "web")
        service.start()
        try:
            until(lambda: any(r.outcome == "escalated" for r in rig.runs()), 60, "the escalation")
            time.sleep(2)  # anything more would show now
        finally:
            stop.set()
            service.join(5)
    assert rig.restarts() == 3
    escalated = [r for r in rig.runs() if r.outcome == "escalated"]
    assert len(escalated) == 1
    assert "budget exhausted" in escalated[0].summary and "restart" in escalated[0].summary
    assert rig.incident(escalated[0].incident_id).status == "escalated"
    assert len(rig.rows(action_history)) == 3


def test_approval_waits_then_the_api_approves_and_it_runs_once(rig: Rig, db_url: str, runbooks: Path) -> None:
    with responder_process(db_url, runbooks):
        rig.report("app_down", "db")
        until(lambda: len(rig.rows(run_approvals)) == 1, what="the approval request")
        time.sleep(1)
        assert rig.restarts() == 0
        (approval,) = rig.api.get("/api/v1/approvals").json()["approvals"]
        assert approval["status"] == "pending" and approval["action"] == "restart"
        answer = rig.api.post(f"/api/v1/approvals/{approval['id']}/approve", json={"note": "go"})
        assert answer.status_code == 200, answer.text
        until(lambda: rig.restarts() == 1, what="the approved restart")
        rig.report("app_recovered", "db")
        until(rig.ended(), what="the run's end")
        again = rig.api.post(f"/api/v1/approvals/{approval['id']}/approve", json={})
        assert again.status_code == 409
    (run,) = rig.runs()
    assert run.outcome == "completed"
    assert rig.restarts() == 1


def test_an_expired_approval_escalates_and_nothing_runs(rig: Rig, db_url: str, runbooks: Path) -> None:
    with responder_process(db_url, runbooks):
        rig.report("app_down", "cache")
        until(rig.ended(), what="the expiry")
    (run,) = rig.runs()
    assert run.outcome == "escalated" and "expired" in run.summary
    assert [a.status for a in rig.rows(run_approvals)] == ["expired"]
    assert rig.incident(run.incident_id).status == "escalated"
    assert rig.restarts() == 0


def test_shadow_mode_sends_nothing_and_records_the_command(rig: Rig, db_url: str, runbooks: Path) -> None:
    assert rig.api.put("/api/v1/guardrails", json={"shadow": True}).status_code == 200
    with responder_process(db_url, runbooks):
        rig.report("app_down", "web")
        until(lambda: len(rig.rows(action_history)) == 1, what="the would-be command")
        time.sleep(1)
    (would,) = rig.rows(action_history)
    assert (would.shadow, would.action, would.outcome) == (True, "restart", "would_send")
    kinds = [a.kind for a in audit_entries(rig.store, rig.client_id)]
    assert "command.would_send" in kinds and "command.sent" not in kinds
    assert rig.restarts() == 0


def test_the_kill_switch_sends_nothing(rig: Rig, db_url: str, runbooks: Path) -> None:
    thrown = rig.api.put("/api/v1/kill-switch", json={"on": True, "reason": "maintenance"})
    assert thrown.status_code == 200, thrown.text
    with responder_process(db_url, runbooks):
        rig.report("app_down", "web")
        until(rig.ended(), what="the refused run's end")
    (run,) = rig.runs()
    assert run.outcome == "escalated" and "kill switch" in run.summary
    assert rig.restarts() == 0
    assert rig.rows(action_history) == []


def test_a_responder_killed_mid_runbook_runs_no_step_twice(rig: Rig, db_url: str, runbooks: Path) -> None:
    """Killed while the restart is in flight: the next responder takes the run over after the lease,
    re-sends the same command id, the receiver does not run it again, and the run goes on."""
    rig.receiver.gate = threading.Event()  # the restart takes its time
    with responder_process(db_url, runbooks) as first:
        rig.report("app_down", "web")
        assert rig.receiver.entered.wait(30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    rig.receiver.gate.set()
    until(lambda: rig.restarts() == 1, what="the first restart's end")
    with responder_process(db_url, runbooks):
        # the re-send is refused as a replay; the receiver answers with its one run's stored result
        until(lambda: rig.rows(run_steps) != [], what="the restart step's end after the take-over")
        rig.report("app_recovered", "web")
        until(rig.ended(), what="the run's end")
    (run,) = rig.runs()
    assert rig.restarts() == 1
    assert run.outcome == "completed"
    kinds = [a.kind for a in audit_entries(rig.store, rig.client_id)]
    assert "run.taken_over" in kinds
    assert kinds.count("command.sent") == 2  # the step's one command, re-sent under its id
    assert len(rig.rows(commands)) == 1


def test_a_responder_killed_while_verifying_resumes_and_resolves(
    rig: Rig, db_url: str, runbooks: Path
) -> None:
    with responder_process(db_url, runbooks) as first:
        rig.report("app_down", "web")
        until(lambda: rig.restarts() == 1, what="the restart")
        until(lambda: any(r.status == "running" and r.lease_owner is None for r in rig.runs()), what="verify")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    rig.report("app_recovered", "web")
    with responder_process(db_url, runbooks):
        until(rig.ended(), what="the resumed run's end")
    (run,) = rig.runs()
    assert run.outcome == "completed"
    assert rig.incident(run.incident_id).status == "resolved"
    assert rig.restarts() == 1
    assert [s.step_id for s in rig.rows(run_steps)] == ["restart", "verify"]
