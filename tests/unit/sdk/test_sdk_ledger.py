"""The SDK's command ledger on its own: once per id, replay keys, a dead process's run, sharing, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from infragent.errors import StoreError
from infragent.sdk.ledger import DB_NAME, INTERRUPTED_OUTPUT, CommandLedger, message_key

NOW = 1_750_000_000.0


def test_begin_records_once_and_finish_stores_the_answer(tmp_path: Path) -> None:
    with CommandLedger.in_directory(tmp_path) as ledger:
        assert ledger.begin("c1", "restart", NOW, stale_after_s=40) is None
        running = ledger.begin("c1", "restart", NOW + 1, stale_after_s=40)
        assert running is not None and running.state == "running" and running.result is None
        ledger.finish("c1", {"status": "ok", "output": "done"}, NOW + 2)
        with pytest.raises(StoreError, match="not running"):
            ledger.finish("c1", {"status": "ok"}, NOW + 3)
        done = ledger.begin("c1", "restart", NOW + 4, stale_after_s=40)
    assert done is not None and done.state == "done" and done.http_status == 200
    assert done.result == {"status": "ok", "output": "done"}
    assert (tmp_path / DB_NAME).exists()


def test_a_run_older_than_the_timeout_is_interrupted_and_never_run_again(tmp_path: Path) -> None:
    """A process that died mid-run left a ``running`` row; a re-send after the timeout learns so."""
    with CommandLedger.in_directory(tmp_path) as dead:
        assert dead.begin("c1", "restart", NOW, stale_after_s=40) is None
    with CommandLedger.in_directory(tmp_path) as ledger:
        young = ledger.begin("c1", "restart", NOW + 39, stale_after_s=40)
        old = ledger.begin("c1", "restart", NOW + 41, stale_after_s=40)
        later = ledger.get("c1")
    assert young is not None and young.state == "running"
    assert old is not None and old.state == "interrupted"
    assert old.result == {"status": "error", "output": INTERRUPTED_OUTPUT}
    assert later is not None and later.state == "interrupted"


def test_two_workers_share_one_file(tmp_path: Path) -> None:
    """Worker processes of one app open the same file: an id begun by one is known to the other."""
    with CommandLedger.in_directory(tmp_path) as one, CommandLedger.in_directory(tmp_path) as two:
        assert one.begin("c1", "restart", NOW, stale_after_s=40) is None
        assert two.begin("c1", "restart", NOW, stale_after_s=40) is not None
        assert one.add_if_new(message_key("c1", "1750000000"), NOW)
        assert not two.add_if_new(message_key("c1", "1750000000"), NOW)
        assert two.add_if_new(message_key("c1", "1750000001"), NOW)  # re-signed: another message


def test_replay_keys_expire_after_the_window_but_results_stay(tmp_path: Path) -> None:
    with CommandLedger.in_directory(tmp_path) as ledger:
        assert ledger.add_if_new("k", NOW)
        assert not ledger.add_if_new("k", NOW + ledger.keep_seen_s - 1)
        assert ledger.add_if_new("k", NOW + ledger.keep_seen_s + 1)  # stale messages fail the window anyway
        ledger.begin("c1", "restart", NOW, stale_after_s=40)
        ledger.finish("c1", {"status": "ok"}, NOW)
        assert ledger.begin("c2", "restart", NOW + 2 * 24 * 3600, stale_after_s=40) is None  # prunes
        assert ledger.get("c1") is not None
        ledger.begin("c3", "restart", NOW + ledger.keep_results_s + 1, stale_after_s=40)
        assert ledger.get("c1") is None


def test_an_unusable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the SDK command ledger"):
        CommandLedger.in_directory(blocker / "sub")


def test_the_file_is_private_to_the_apps_user(tmp_path: Path) -> None:
    with CommandLedger.in_directory(tmp_path / "state") as ledger:
        ledger.add_if_new("k", NOW)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / DB_NAME).stat().st_mode & 0o777 == 0o600
