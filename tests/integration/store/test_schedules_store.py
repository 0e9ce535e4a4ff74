"""Scheduled runbooks in the store, on both databases: create with clear refusals, each due run
claimed once (also by two claimers racing in threads), and the missed-run policy after downtime."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from infragent.responder.steps import Escalate, Step, StepRunbook
from infragent.store import audit, schedules
from infragent.store.runbook_schema import runbook_runs, schedule_runs
from infragent.store.schedule_specs import ScheduleError, spec_doc
from infragent.store.sql import SqlStore

RUNBOOK = StepRunbook("nightly-check", (Step("esc", Escalate("scheduled check of {node_id}")),))
RUNBOOKS = {RUNBOOK.name: RUNBOOK}
#: 2026-01-05 00:00:00 UTC, a Monday
T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def _create(db: SqlStore, tenant: str, name: str = "every-5m", **kw: Any) -> schedules.StoredSchedule:
    args: dict[str, Any] = {
        "name": name,
        "runbook": RUNBOOK.name,
        "spec": {"every_s": 300.0, "start": 0.0},
        "tz": None,
        "missed": "skip",
        "node_id": "host-1",
        "labels": {"service": "web"},
        "enabled": True,
        "known_runbooks": RUNBOOKS,
        "now": T0 + 10,
        "actor": "test",
    } | kw
    with db.write() as conn:
        return schedules.create_schedule(conn, tenant, **args)


def _claim(db: SqlStore, now: float, worker: str = "w1") -> list[schedules.ScheduledRun]:
    with db.write() as conn:
        return schedules.claim_due(conn, now, worker, 100, RUNBOOKS)


def _rows(db: SqlStore, table: sa.Table) -> list[sa.Row[Any]]:
    with db.read() as conn:
        return list(conn.execute(sa.select(table)))


def test_create_computes_the_next_run_and_is_audited(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant)
    assert s.next_run_at == T0 + 300 and s.enabled and s.last_run is None
    assert s.described.startswith("every 300 s")
    assert s.facts().service == "web" and s.facts().node_id == "host-1"
    with store.read() as conn:
        assert [x.name for x in schedules.list_schedules(conn, tenant)] == ["every-5m"]
        assert schedules.get_schedule(conn, tenant, s.id) == schedules.get_schedule(conn, tenant, "every-5m")
        kinds = [e.kind for e in audit.entries(conn, tenant, [s.id])]
    assert kinds == ["schedule.create"]


def test_cron_in_a_time_zone(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant, "berlin", spec={"cron": "30 2 * * *"}, tz="Europe/Berlin")
    assert s.next_run_at == datetime(2026, 1, 5, 1, 30, tzinfo=UTC).timestamp()  # 02:30 CET
    assert "Europe/Berlin" in s.described


@pytest.mark.parametrize(
    ("kw", "status", "field", "words"),
    [
        ({"runbook": "nope"}, 422, "runbook", "known runbooks are nightly-check"),
        ({"runbook": "nope", "known_runbooks": {}}, 422, "runbook", "set runbooks_path"),
        ({"spec": {"cron": "0 25 * * *"}}, 422, "cron", "column 3"),
        ({"spec": {"cron": "0 0 * *"}}, 422, "cron", "5 fields"),
        ({"tz": "Mars/Olympus"}, 422, "timezone", "unknown time zone"),
        ({"spec": {"every_s": 5}}, 422, "every", "at least 60"),
        ({"spec": {"at": T0 - 1}}, 422, "spec", "no run after now"),
        ({"missed": "catch_up"}, 422, "missed", "run_once or skip"),
        ({"name": ""}, 422, "name", "1 to 100"),
    ],
)
def test_create_refusals_name_the_field(
    store: SqlStore, tenant: str, kw: dict[str, Any], status: int, field: str, words: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        _create(store, tenant, **kw)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert words in caught.value.message


def test_a_taken_name_is_409_and_an_unknown_schedule_404(store: SqlStore, tenant: str) -> None:
    _create(store, tenant)
    with pytest.raises(ScheduleError) as caught:
        _create(store, tenant)
    assert caught.value.status == 409
    with store.read() as conn, pytest.raises(ScheduleError) as missing:
        schedules.get_schedule(conn, tenant, "other")
    assert missing.value.status == 404


def test_spec_doc_reads_request_fields() -> None:
    assert spec_doc(every="15m") == {"every_s": 900.0, "start": 0.0}
    assert spec_doc(at="2026-06-01T12:00:00", tz="Europe/Berlin") == {
        "at": datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp()
    }
    assert spec_doc(cron="*/5 * * * *") == {"cron": "*/5 * * * *"}
    refused: list[tuple[dict[str, Any], str]] = [
        ({"cron": "* * * * *", "every": 60}, "spec"),
        ({}, "spec"),
        ({"every": "soon"}, "every"),
        ({"at": "tomorrow"}, "at"),
        ({"cron": "* * * * *", "start": 0}, "start"),
    ]
    for kw, field in refused:
        with pytest.raises(ScheduleError) as caught:
            spec_doc(**kw)
        assert caught.value.field == field, kw


def test_each_due_run_is_claimed_once(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant)
    assert _claim(store, T0 + 299) == []
    [run] = _claim(store, T0 + 301)
    assert (run.due_at, run.error) == (T0 + 300, None) and run.run_id is not None
    assert _claim(store, T0 + 302, "w2") == []  # the same run again: nothing
    with store.read() as conn:
        again = schedules.get_schedule(conn, tenant, s.id)
    assert again.next_run_at == T0 + 600 and again.last_run_at == T0 + 300
    assert again.last_run is not None and again.last_run.run_id == run.run_id
    [row] = _rows(store, runbook_runs)
    assert (row.id, row.schedule_id, row.runbook, row.node_id) == (run.run_id, s.id, RUNBOOK.name, "host-1")
    [claim] = _rows(store, schedule_runs)
    assert (claim.due_at, claim.claimed_by, claim.run_id) == (T0 + 300, "w1", run.run_id)
    with store.read() as conn:
        [entry] = [e for e in audit.entries(conn, tenant, [s.id]) if e.kind == "schedule.run"]
    assert entry.detail["outcome"] == "started" and entry.detail["run_id"] == run.run_id


@pytest.mark.parametrize(("missed", "runs"), [("run_once", 1), ("skip", 0)])
def test_missed_runs_after_downtime(store: SqlStore, tenant: str, missed: str, runs: int) -> None:
    """A day without a server: run_once runs the latest missed run once, skip runs none; either
    way the next run is the first after now, and nothing is made up later."""
    s = _create(store, tenant, missed=missed)
    later = T0 + 86400 + 130  # 130 s after the last due run (T0 + 86400): later than a tick
    claimed = _claim(store, later)
    assert [c.due_at for c in claimed] == [T0 + 86400] * runs
    with store.read() as conn:
        after = schedules.get_schedule(conn, tenant, s.id)
        entries = audit.entries(conn, tenant, [s.id])
    outcomes = [e.detail["outcome"] for e in entries if e.kind == "schedule.run"]
    assert after.next_run_at == T0 + 86400 + 300
    assert outcomes == (["started"] if runs else ["skipped"])
    assert _claim(store, later + 1) == []
    assert len(_rows(store, runbook_runs)) == runs


def test_skip_still_runs_a_run_late_by_an_ordinary_tick(store: SqlStore, tenant: str) -> None:
    _create(store, tenant)
    assert [c.due_at for c in _claim(store, T0 + 330)] == [T0 + 300]


def test_a_runbook_not_loaded_fails_the_run_with_its_reason(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant)
    with store.write() as conn:
        [run] = schedules.claim_due(conn, T0 + 301, "w1", 10, {})
    assert run.run_id is None and run.error is not None and "not loaded" in run.error
    with store.read() as conn:
        [entry] = [e for e in audit.entries(conn, tenant, [s.id]) if e.kind == "schedule.run"]
        assert schedules.get_schedule(conn, tenant, s.id).next_run_at == T0 + 600
    assert entry.detail["outcome"] == "failed" and "nightly-check" in entry.detail["reason"]
    assert _rows(store, runbook_runs) == []
    assert [r.run_id for r in _rows(store, schedule_runs)] == [None]


def test_disable_enable_and_delete(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant)
    with store.write() as conn:
        off = schedules.set_enabled(conn, tenant, s.name, False, now=T0 + 20, actor="test")
    assert not off.enabled and off.next_run_at is None
    assert _claim(store, T0 + 1000) == []
    with store.write() as conn:
        on = schedules.set_enabled(conn, tenant, s.id, True, now=T0 + 1000, actor="test")
    assert on.next_run_at == T0 + 1200  # runs due while off are not made up
    assert _claim(store, T0 + 1100) == []
    assert len(_claim(store, T0 + 1201)) == 1
    with store.write() as conn:
        schedules.delete_schedule(conn, tenant, s.id, now=T0 + 1300, actor="test")
    with store.read() as conn:
        assert schedules.list_schedules(conn, tenant) == []
        kinds = [e.kind for e in audit.entries(conn, tenant, [s.id])]
    assert kinds == [f"schedule.{k}" for k in ("create", "disable", "enable", "run", "delete")]
    assert _rows(store, schedule_runs) == [] and len(_rows(store, runbook_runs)) == 1


def test_a_one_off_runs_once_and_has_no_next_run(store: SqlStore, tenant: str) -> None:
    s = _create(store, tenant, "once", spec={"at": T0 + 60})
    assert len(_claim(store, T0 + 61)) == 1
    with store.read() as conn:
        assert schedules.get_schedule(conn, tenant, s.id).next_run_at is None
    assert _claim(store, T0 + 10_000) == []


def test_two_claimers_racing_claim_each_due_run_once(store: SqlStore, tenant: str) -> None:
    """Eight threads claim at the same 30 ticks of five schedules (a barrier keeps them at one
    clock, as processes sharing real time are): each due run is claimed once, none is lost."""
    for i in range(5):
        _create(store, tenant, f"s{i}", spec={"every_s": 60.0, "start": float(i)})
    ticks = [T0 + 60 * k + 30 for k in range(1, 31)]
    claimed: list[tuple[str, float]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    together = threading.Barrier(8, timeout=30)

    def claimer(worker: str) -> None:
        try:
            for now in ticks:
                together.wait()
                got = _claim(store, now, worker)
                with lock:
                    claimed.extend((c.schedule.id, c.due_at) for c in got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(claimed) == len(set(claimed)) == 5 * 30
    assert len(_rows(store, schedule_runs)) == 150
    runs_ = _rows(store, runbook_runs)
    assert len(runs_) == 150 and {r.id for r in runs_} == {r.run_id for r in _rows(store, schedule_runs)}
