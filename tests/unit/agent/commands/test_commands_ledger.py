"""The ledger on disk: at-most-once across restarts, crash recovery, pruning, one owner at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from infragent.agent.ledger import DB_NAME, INTERRUPTED_OUTPUT, KEEP_SEEN_S, LazyLedger, Ledger, LedgerError

NOW = 1_700_000_000.0
RESULT = {"status": "ok", "output": "done", "exit_code": 0, "duration_ms": 5}


def test_begin_finish_get(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        assert ledger.begin("c1", NOW, "mark") is None
        running = ledger.begin("c1", NOW + 1, "mark")
        assert running is not None and running.state == "running" and running.result is None
        ledger.finish("c1", RESULT, NOW + 2)
        entry = ledger.get("c1")
        assert entry is not None
        assert (entry.state, entry.result, entry.http_status) == ("done", RESULT, 200)
        assert (entry.started_at, entry.finished_at, entry.action) == (NOW, NOW + 2, "mark")
        assert ledger.begin("c1", NOW + 3) == entry  # untouched
        assert ledger.get("nope") is None


def test_finish_twice_or_unknown_is_an_error(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        ledger.begin("c1", NOW)
        ledger.finish("c1", RESULT, NOW)
        with pytest.raises(LedgerError):
            ledger.finish("c1", RESULT, NOW)
        with pytest.raises(LedgerError):
            ledger.finish("c2", RESULT, NOW)


def test_results_and_rejections_survive_reopen(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        ledger.begin("c1", NOW)
        ledger.finish("c1", RESULT, NOW)
        ledger.begin("c2", NOW)
        ledger.finish("c2", {"status": "rejected"}, NOW, state="rejected", http_status=422)
    with Ledger(tmp_path, now=NOW + 60) as ledger:
        c1, c2 = ledger.get("c1"), ledger.get("c2")
        assert c1 is not None and c1.result == RESULT
        assert c2 is not None and (c2.state, c2.http_status) == ("rejected", 422)
        assert ledger.interrupted_on_open == []


def test_running_entry_becomes_interrupted_on_open(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        ledger.begin("c1", NOW, "mark")  # the process dies before finish()
    with Ledger(tmp_path, now=NOW + 30) as ledger:
        assert ledger.interrupted_on_open == ["c1"]
        entry = ledger.get("c1")
        assert entry is not None and entry.state == "interrupted" and entry.finished_at == NOW + 30
        assert entry.result is not None
        assert (entry.result["status"], entry.result["output"]) == ("error", INTERRUPTED_OUTPUT)
        assert ledger.begin("c1", NOW + 31) == entry


def test_seen_ids_persist_and_expire_after_twice_the_window(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        assert ledger.add_if_new("m1", NOW) is True
        assert ledger.add_if_new("m1", NOW + 1) is False
    with Ledger(tmp_path, now=NOW + 10) as ledger:
        assert ledger.add_if_new("m1", NOW + 10) is False
        assert ledger.add_if_new("m1", NOW + KEEP_SEEN_S + 1) is True


def test_old_results_are_pruned_but_running_entries_are_not(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW, keep_results_s=100) as ledger:
        ledger.begin("old", NOW)
        ledger.finish("old", RESULT, NOW)
    with Ledger(tmp_path, now=NOW + 101, keep_results_s=100) as ledger:
        assert ledger.get("old") is None


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW), pytest.raises(LedgerError, match="in use"):
        Ledger(tmp_path, now=NOW)
    Ledger(tmp_path, now=NOW).close()  # released on close


def test_durability_settings(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW):
        db = sqlite3.connect(tmp_path / DB_NAME)
        try:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()


def test_lazy_ledger_owns_the_directory_from_start_and_opens_at_first_use(tmp_path: Path) -> None:
    lazy = LazyLedger(tmp_path, clock=lambda: NOW)
    try:
        assert not lazy.is_open and not (tmp_path / DB_NAME).exists()
        with pytest.raises(LedgerError, match="in use"):  # the lock is taken before any command
            Ledger(tmp_path, now=NOW)
        assert lazy.begin("c1", NOW, "restart") is None
        assert lazy.is_open and (tmp_path / DB_NAME).exists()
        lazy.finish("c1", RESULT, NOW + 1)
        entry = lazy.get("c1")
        assert entry is not None and entry.state == "done" and entry.result == RESULT
    finally:
        lazy.close()
    with Ledger(tmp_path, now=NOW + 2) as reopened:  # released on close
        assert reopened.get("c1") is not None


def test_lazy_ledger_recovers_interrupted_entries_when_it_opens(tmp_path: Path) -> None:
    with Ledger(tmp_path, now=NOW) as ledger:
        ledger.begin("c1", NOW, "restart")  # the agent "dies" mid-run
    lazy = LazyLedger(tmp_path, clock=lambda: NOW + 60)
    try:
        entry = lazy.get("c1")
        assert entry is not None and entry.state == "interrupted"
        assert entry.result is not None and entry.result["output"] == INTERRUPTED_OUTPUT
    finally:
        lazy.close()


def test_lazy_ledger_that_cannot_open_fails_closed_and_retries(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).mkdir()  # not a database file: sqlite3 cannot open it
    lazy = LazyLedger(tmp_path, clock=lambda: NOW)
    try:
        with pytest.raises(LedgerError, match="cannot open command ledger"):
            lazy.begin("c1", NOW)
        with pytest.raises(LedgerError, match="cannot open command ledger"):
            lazy.add_if_new("m1", NOW)
        assert not lazy.is_open
        (tmp_path / DB_NAME).rmdir()
        assert lazy.begin("c1", NOW) is None  # the next command tries again, with the lock still held
    finally:
        lazy.close()
