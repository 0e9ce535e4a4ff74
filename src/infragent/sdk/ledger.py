"""The SDK's command ledger: each command id runs at most once, and its result is kept to answer re-sends.

Why this exists: the responder delivers a command at least once. Its dispatcher re-sends the same
command id after a 5xx or a lost answer, and a responder that took over from a stopped one re-sends
the command that one had sent; each re-send is signed afresh (new ``webhook-timestamp``). An
in-memory replay cache keyed on the id alone answered such a re-send with a 401 ``replay``, so the
server recorded a command that had run as "rejected", and forgot everything on an app restart,
when a captured message could be played again. The ledger keeps the two questions apart, as the
agent's (``agent/ledger.py``) does:

* **replay** is about the *signed message*: ``{webhook-id}.{webhook-timestamp}`` is remembered for
  twice the signature window (600 s). A byte-identical copy is refused (401 ``replay``), across
  restarts too, because the keys are on disk.
* **once** is about the *command id*: ``begin()`` durably records the id as ``running`` before the
  handler starts; a fresh signature over a known id (only a holder of the secret can make one) gets
  the stored result with ``"duplicate": true`` and the handler does not run again. Results are kept
  7 days.

Why SQLite (stdlib ``sqlite3``, WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``): the rows are tiny and
written a few times per command, and SQLite makes "check and insert" atomic across the threads of one
process *and* across processes. Unlike the agent, the SDK takes no exclusive lock on the directory:
an app often runs several worker processes behind one webhook URL, and they must share one ledger.
So there is no "mark everything running as interrupted" at open (a sibling worker may be running
it). Instead a ``running`` row older than the handler timeout plus a margin is known to be dead
(handlers are bounded by that timeout) and is answered as interrupted, never run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from infragent.errors import StoreError
from infragent.signing import TOLERANCE_S

logger = logging.getLogger(__name__)

DB_NAME = "sdk-commands.sqlite3"
MEMORY = ":memory:"
KEEP_RESULTS_S = 7 * 24 * 3600.0
KEEP_SEEN_S = 2.0 * TOLERANCE_S
#: Old rows are pruned at most this often (on ``begin``), not on every call.
PRUNE_EVERY_S = 3600.0

EntryState = Literal["running", "done", "rejected", "interrupted"]
FinalState = Literal["done", "rejected"]

INTERRUPTED_OUTPUT = "interrupted: the app stopped while this command was running; it was not run again"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    command_id  TEXT PRIMARY KEY,
    action      TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    http_status INTEGER,
    result      TEXT
);
CREATE INDEX IF NOT EXISTS commands_started ON commands (started_at);
CREATE TABLE IF NOT EXISTS seen_messages (
    message_key TEXT PRIMARY KEY,
    seen_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_messages_at ON seen_messages (seen_at);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One command id as the ledger knows it; ``result`` is None while it is still running."""

    command_id: str
    action: str
    state: EntryState
    started_at: float
    finished_at: float | None
    http_status: int | None
    result: dict[str, Any] | None


def message_key(msg_id: str, timestamp: str) -> str:
    """The replay key of one signed message: a re-signed copy of the same id gets another key."""
    return f"{msg_id}.{timestamp}"


class CommandLedger:
    """Durable at-most-once ledger and replay store of one app (or of its workers, sharing the file).

    ``path`` is the SQLite file, or ``":memory:"`` for a ledger that lives as long as the object
    (tests, or an app that accepts losing it on restart). Thread-safe: one connection behind a lock.
    Raises ``StoreError`` when the file cannot be opened or written; the webhook then answers 503 and
    runs nothing.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        keep_results_s: float = KEEP_RESULTS_S,
        keep_seen_s: float = KEEP_SEEN_S,
    ) -> None:
        self.path = path
        self.keep_results_s = keep_results_s
        self.keep_seen_s = keep_seen_s
        try:
            if str(path) != MEMORY:
                # It holds the outputs of actions: readable by the app's user only (SQLite gives its
                # -wal and -shm files the mode of the database file).
                Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SDK command ledger {path}: {exc}") from exc
        self._mutex = threading.Lock()
        self._pruned_at = float("-inf")

    @classmethod
    def in_directory(cls, data_dir: Path) -> CommandLedger:
        """The ledger file in an app's data directory (created if missing)."""
        return cls(data_dir / DB_NAME)

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    def __enter__(self) -> CommandLedger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- replay (implements signing.SeenIds over message keys) ---------------------------------

    def add_if_new(self, key: str, now: float) -> bool:
        """Remember a message key; False when it was seen within ``keep_seen_s``. Durable on return."""
        with self._mutex, self._transaction():
            self._db.execute("DELETE FROM seen_messages WHERE seen_at < ?", (now - self.keep_seen_s,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen_messages (message_key, seen_at) VALUES (?, ?)", (key, now)
            )
            return cursor.rowcount == 1

    # -- at most once --------------------------------------------------------------------------

    def begin(self, command_id: str, action: str, now: float, *, stale_after_s: float) -> Entry | None:
        """Record ``command_id`` as running and return None; or return what is known of it already.

        A ``running`` entry started more than ``stale_after_s`` ago belonged to a process that
        stopped mid-run (a live one finishes every run within the handler timeout): it becomes
        ``interrupted`` and is returned as such, so the command is never run a second time.
        """
        with self._mutex, self._transaction():
            row = self._db.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,)).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO commands (command_id, action, state, started_at)"
                    " VALUES (?, ?, 'running', ?)",
                    (command_id, action, now),
                )
                entry = None
            else:
                entry = _entry(row)
                if entry.state == "running" and entry.started_at < now - stale_after_s:
                    entry = self._interrupt(entry, now)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._prune(now)
        return entry

    def finish(
        self,
        command_id: str,
        result: Mapping[str, Any],
        now: float,
        *,
        state: FinalState = "done",
        http_status: int = 200,
    ) -> None:
        """Store the final answer of a ``running`` entry; finishing it twice raises StoreError."""
        with self._mutex, self._transaction():
            cursor = self._db.execute(
                "UPDATE commands SET state = ?, finished_at = ?, http_status = ?, result = ?"
                " WHERE command_id = ? AND state = 'running'",
                (state, now, http_status, json.dumps(dict(result), sort_keys=True), command_id),
            )
            if cursor.rowcount != 1:
                raise StoreError(f"command {command_id!r} is not running; cannot finish it")

    def get(self, command_id: str) -> Entry | None:
        with self._mutex:
            row = self._db.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,)).fetchone()
        return None if row is None else _entry(row)

    # -- housekeeping --------------------------------------------------------------------------

    def _interrupt(self, entry: Entry, now: float) -> Entry:
        result = {"status": "error", "output": INTERRUPTED_OUTPUT}
        self._db.execute(
            "UPDATE commands SET state = 'interrupted', finished_at = ?, http_status = 200, result = ?"
            " WHERE command_id = ?",
            (now, json.dumps(result, sort_keys=True), entry.command_id),
        )
        logger.warning("command %s was running when its process stopped: interrupted", entry.command_id)
        return Entry(entry.command_id, entry.action, "interrupted", entry.started_at, now, 200, result)

    def _prune(self, now: float) -> None:
        with self._mutex, self._transaction():
            self._db.execute(
                "DELETE FROM commands WHERE state != 'running' AND started_at < ?",
                (now - self.keep_results_s,),
            )
            self._db.execute("DELETE FROM seen_messages WHERE seen_at < ?", (now - self.keep_seen_s,))
        self._pruned_at = now

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: read-then-write cannot interleave with another thread or process."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"SDK command ledger unavailable: {exc}") from exc
        try:
            yield
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"SDK command ledger write failed: {exc}") from exc
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"SDK command ledger write failed: {exc}") from exc


def _entry(row: tuple[Any, ...]) -> Entry:
    command_id, action, state, started_at, finished_at, http_status, result = row
    return Entry(
        command_id=command_id,
        action=action,
        state=cast(EntryState, state),
        started_at=started_at,
        finished_at=finished_at,
        http_status=http_status,
        result=None if result is None else json.loads(result),
    )
