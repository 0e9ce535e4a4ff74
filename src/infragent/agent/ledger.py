"""The agent's command ledger: at most one run per command id, and a replay cache that survives restarts.

Why on disk, and why the id is written *before* the command runs: the server delivers commands at
least once (retries, a pull loop re-fetching after a lost answer), so "run once" has to be decided
here. ``begin()`` durably records the id as ``running`` before anything executes; if the agent dies
mid-run, the next start finds that entry and marks it ``interrupted`` — reported as a failure, never
run a second time, because half-restarting a service twice is worse than asking a human.

Why one small SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``): the two tables are tiny
and written a few times per command, so paying an fsync per write buys crash safety for free in
practice, and SQLite's transactions make "check and insert" atomic across the push server's threads.

Why the replay cache lives here too: ids are remembered for twice the signature window (600 s) so a
captured message cannot be replayed after an agent restart; results are kept much longer (7 days)
because a re-sent command id must return its stored result, not run again. Commands older than that
retention are refused upstream (``CommandProcessor``), so pruning can never re-enable a run.

One process owns the directory at a time (``flock`` on ``commands.lock``): a second agent would
otherwise mark the first one's live commands as interrupted.

Why ``LazyLedger``: ``sqlite3`` costs the agent 1.3 MiB resident (libsqlite3 alone is 1.2 MiB),
more than any other part of checks and actions, for commands that may never come. The agent takes
the directory's lock at start — ownership is decided then, as before — and opens the SQLite file
(importing ``sqlite3``, recovering interrupted entries) when the first command arrives, before
that command's signature is checked against the replay cache. If it cannot be opened, the command
is refused with 503 and nothing runs (fail closed); the next command tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import msgspec

from infragent.errors import StoreError
from infragent.signing import TOLERANCE_S

logger = logging.getLogger(__name__)

DB_NAME = "commands.sqlite3"
LOCK_NAME = "commands.lock"
KEEP_RESULTS_S = 7 * 24 * 3600.0
KEEP_SEEN_S = 2.0 * TOLERANCE_S
#: Old ledger rows are pruned at most this often (on ``begin``), not on every call.
PRUNE_EVERY_S = 3600.0

EntryState = Literal["running", "done", "rejected", "interrupted"]
FinalState = Literal["done", "rejected"]

INTERRUPTED_OUTPUT = "interrupted: the agent stopped while this command was running; it was not run again"

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
CREATE TABLE IF NOT EXISTS seen_ids (
    msg_id  TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_ids_at ON seen_ids (seen_at);
"""


class LedgerError(StoreError):
    """The ledger could not be opened (another agent owns it) or written."""


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


class Ledger:
    """Durable at-most-once ledger plus persistent seen-id store (implements ``signing.SeenIds``).

    Opening it recovers from a crash: every ``running`` entry becomes ``interrupted`` with a
    failure result, at ``now``. Thread-safe; one connection guarded by a lock. ``lock_fd`` is the
    directory lock when the caller already holds it (``LazyLedger``); the ledger owns it once open.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        now: float,
        keep_results_s: float = KEEP_RESULTS_S,
        keep_seen_s: float = KEEP_SEEN_S,
        lock_fd: int | None = None,
    ) -> None:
        import sqlite3  # here, not at the top: see LazyLedger

        self.keep_results_s = keep_results_s
        self.keep_seen_s = keep_seen_s
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(data_dir / LOCK_NAME) if lock_fd is None else lock_fd
        try:
            self._db = sqlite3.connect(
                data_dir / DB_NAME, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            if lock_fd is None:  # a lock handed in stays with the caller, who may try again
                os.close(self._lock_fd)
            raise LedgerError(f"cannot open command ledger in {data_dir}: {exc}") from exc
        self._mutex = threading.Lock()
        self._pruned_at = float("-inf")
        self.interrupted_on_open = self._recover(now)
        self._prune(now)

    def close(self) -> None:
        with self._mutex:
            self._db.close()
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- at-most-once ------------------------------------------------------------------------

    def begin(self, command_id: str, now: float, action: str = "") -> Entry | None:
        """Record ``command_id`` as running and return None; or return the existing entry, untouched.

        The row is committed (fsynced) before this returns, so whatever happens next, the id is
        never run again.
        """
        with self._mutex, self._transaction():
            row = self._db.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,)).fetchone()
            if row is not None:
                return _entry(row)
            self._db.execute(
                "INSERT INTO commands (command_id, action, state, started_at) VALUES (?, ?, 'running', ?)",
                (command_id, action, now),
            )
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._prune(now)
        return None

    def finish(
        self,
        command_id: str,
        result: Mapping[str, Any],
        now: float,
        *,
        state: FinalState = "done",
        http_status: int = 200,
    ) -> None:
        """Store the final result of a ``running`` entry; a second finish is a programming error."""
        with self._mutex, self._transaction():
            cursor = self._db.execute(
                "UPDATE commands SET state = ?, finished_at = ?, http_status = ?, result = ?"
                " WHERE command_id = ? AND state = 'running'",
                (state, now, http_status, _dump(result), command_id),
            )
            if cursor.rowcount != 1:
                raise LedgerError(f"command {command_id!r} is not running; cannot finish it")

    def get(self, command_id: str) -> Entry | None:
        with self._mutex:
            row = self._db.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,)).fetchone()
        return None if row is None else _entry(row)

    # -- signing.SeenIds ---------------------------------------------------------------------

    def add_if_new(self, msg_id: str, now: float) -> bool:
        """Remember ``msg_id``; False when it was seen within ``keep_seen_s``. Durable on return."""
        with self._mutex, self._transaction():
            self._db.execute("DELETE FROM seen_ids WHERE seen_at < ?", (now - self.keep_seen_s,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen_ids (msg_id, seen_at) VALUES (?, ?)", (msg_id, now)
            )
            return cursor.rowcount == 1

    # -- housekeeping ------------------------------------------------------------------------

    def _recover(self, now: float) -> list[str]:
        result = _dump(
            {"status": "error", "output": INTERRUPTED_OUTPUT, "exit_code": None, "duration_ms": None}
        )
        with self._mutex, self._transaction():
            ids = [
                str(row[0])
                for row in self._db.execute("SELECT command_id FROM commands WHERE state = 'running'")
            ]
            self._db.execute(
                "UPDATE commands SET state = 'interrupted', finished_at = ?, http_status = 200, result = ?"
                " WHERE state = 'running'",
                (now, result),
            )
        for command_id in ids:
            logger.warning("command %s was running when the agent stopped; marked interrupted", command_id)
        return ids

    def _prune(self, now: float) -> None:
        with self._mutex, self._transaction():
            self._db.execute(
                "DELETE FROM commands WHERE state != 'running' AND started_at < ?",
                (now - self.keep_results_s,),
            )
            self._db.execute("DELETE FROM seen_ids WHERE seen_at < ?", (now - self.keep_seen_s,))
        self._pruned_at = now

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` so that read-then-write cannot interleave with another writer."""
        import sqlite3  # already loaded by __init__: a dictionary lookup

        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"command ledger unavailable: {exc}") from exc
        try:
            yield
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise LedgerError(f"command ledger write failed: {exc}") from exc
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"command ledger write failed: {exc}") from exc


def _entry(row: tuple[Any, ...]) -> Entry:
    command_id, action, state, started_at, finished_at, http_status, result = row
    return Entry(
        command_id=command_id,
        action=action,
        state=cast(EntryState, state),
        started_at=started_at,
        finished_at=finished_at,
        http_status=http_status,
        result=None if result is None else msgspec.json.decode(result),
    )


def _dump(result: Mapping[str, Any]) -> str:
    """Results as JSON text with sorted keys (msgspec: already loaded, unlike ``json``)."""
    return msgspec.json.encode(dict(result), order="sorted").decode()


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise LedgerError(f"{path.parent} is in use by another agent process") from exc
    return fd


class LazyLedger:
    """A ``Ledger`` that takes the directory lock now and opens the SQLite file at first use.

    Same methods and failures as ``Ledger``: a first use that cannot open the file raises
    ``LedgerError`` (the processor answers 503 and runs nothing) and is tried again next time.
    ``clock`` gives the ``now`` of the crash recovery done on opening.
    """

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.keep_results_s = KEEP_RESULTS_S
        self.keep_seen_s = KEEP_SEEN_S
        self._data_dir = data_dir
        self._clock = clock
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _take_lock(data_dir / LOCK_NAME)
        self._ledger: Ledger | None = None
        self._opening = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._ledger is not None

    def open(self) -> Ledger:
        """The ledger, opened (and recovered) on the first call."""
        ledger = self._ledger
        if ledger is not None:
            return ledger
        with self._opening:
            if self._ledger is None:
                if self._lock_fd is None:
                    raise LedgerError("command ledger is closed")
                self._ledger = Ledger(self._data_dir, now=self._clock(), lock_fd=self._lock_fd)
                logger.info("command ledger opened at %s", self._data_dir / DB_NAME)
            return self._ledger

    def begin(self, command_id: str, now: float, action: str = "") -> Entry | None:
        return self.open().begin(command_id, now, action)

    def finish(
        self,
        command_id: str,
        result: Mapping[str, Any],
        now: float,
        *,
        state: FinalState = "done",
        http_status: int = 200,
    ) -> None:
        self.open().finish(command_id, result, now, state=state, http_status=http_status)

    def get(self, command_id: str) -> Entry | None:
        return self.open().get(command_id)

    def add_if_new(self, msg_id: str, now: float) -> bool:
        return self.open().add_if_new(msg_id, now)

    def close(self) -> None:
        with self._opening:
            if self._ledger is not None:
                self._ledger.close()
            elif self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
            self._ledger = None
            self._lock_fd = None
