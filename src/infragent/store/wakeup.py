"""Wake-ups for the responder when an event is stored, so it reacts in milliseconds, not at the sweep.

Three sources, all setting one ``threading.Event``: an in-process call (server and responder in one
process), PostgreSQL ``LISTEN``/``NOTIFY`` (any process), and, for SQLite across processes, a
50 ms poll of ``PRAGMA data_version``, which changes whenever another connection commits.
The periodic sweep stays as the fallback for anything these miss.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

import psycopg

from infragent.store.engine import normalize_url
from infragent.store.events import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)


class Wakeup:
    """A latch the responder waits on; any source may set it (``responder.ports.Latch``).

    It also counts who sleeps on it, so a test can wait until the responder is idle (``until_asleep``)
    instead of sleeping a guessed time.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._sleepers = 0
        self._changed = threading.Condition()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout_s: float) -> bool:
        with self._changed:
            self._sleepers += 1
            self._changed.notify_all()
        try:
            fired = self._event.wait(timeout_s)
        finally:
            with self._changed:
                self._sleepers -= 1
        self._event.clear()
        return fired

    def until_asleep(self, timeout_s: float) -> bool:
        """Block until someone waits on the latch; False if nobody did within ``timeout_s``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._sleepers > 0, timeout_s)


class _Watcher(threading.Thread):
    def __init__(self, name: str, wakeup: Wakeup) -> None:
        super().__init__(name=name, daemon=True)
        self.wakeup = wakeup
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


class PgListener(_Watcher):
    """LISTENs on the events channel; reconnects after a failure without losing the sweep fallback."""

    def __init__(self, url: str, wakeup: Wakeup) -> None:
        super().__init__("pg-listen", wakeup)
        self.dsn = normalize_url(url).replace("postgresql+psycopg://", "postgresql://", 1)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    self.wakeup.set()  # anything stored while we were not listening
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self.wakeup.set()
            except psycopg.Error:
                logger.exception("LISTEN connection failed; retrying in 1 s")
                self.stopping.wait(1.0)


class SqliteWatcher(_Watcher):
    """Polls ``PRAGMA data_version`` every ``interval_s``: a commit by any other connection changes it."""

    def __init__(self, path: str, wakeup: Wakeup, interval_s: float = 0.05) -> None:
        super().__init__("sqlite-watch", wakeup)
        self.path = path
        self.interval_s = interval_s

    def run(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            self.ready.set()
            while not self.stopping.wait(self.interval_s):
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    self.wakeup.set()
        finally:
            conn.close()


def start_watcher(url: str, wakeup: Wakeup) -> _Watcher | None:
    url = normalize_url(url)
    watcher: _Watcher | None = None
    if url.startswith("postgresql"):
        watcher = PgListener(url, wakeup)
    elif url.startswith("sqlite:///") and not url.endswith(":memory:"):
        watcher = SqliteWatcher(url.split("///", 1)[1], wakeup)
    if watcher is not None:
        watcher.start()
        watcher.ready.wait(5)
    return watcher
