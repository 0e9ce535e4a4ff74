"""The scheduler thread: every ``schedule_tick_s`` it claims the due runs of scheduled runbooks.

Why every server process runs one: a schedule must run while any server is up, and the claim
(``store/schedules.claim_due``) makes each due run one process's, whatever the number of processes
and however their ticks fall. So there is no leader to elect and nothing to hand over when a process
dies: the next tick of any survivor finds what is due. The claim creates the run (``runbook_runs``);
the responder's executor takes it from there like any other run.

Why the runbooks are loaded here, once: a schedule names a step runbook (``runbooks_path``, read by
``responder/step_file.py``), and the claim needs the runbook itself to start its run. A file that
does not load stops the server at startup with every mistake at its line and column; a schedule
naming a runbook this server does not load fails its run with that reason in the audit.

An idle tick is one read (``has_due``), not a write transaction: on SQLite a write takes the
database's one writer lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Final

from infragent.config import Settings
from infragent.responder.step_file import load_step_runbooks
from infragent.responder.steps import StepRunbook
from infragent.store import schedules
from infragent.store.schedules import ScheduledRun
from infragent.store.sql import SqlStore

logger = logging.getLogger(__name__)

#: Schedules claimed per transaction; a full batch is followed at once by another.
BATCH: Final = 100
#: How long a failed tick (the database down) waits before the next try, at least.
ERROR_BACKOFF_S: Final = 5.0


def default_worker_id() -> str:
    """``host:pid:nonce``: who claimed a run, in ``schedule_runs.claimed_by`` and the audit."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def load_runbooks(settings: Settings) -> dict[str, StepRunbook]:
    """The step runbooks of ``runbooks_path`` by name (none when it is not set); ``ConfigError``
    naming every mistake when the file does not load."""
    if settings.runbooks_path is None:
        return {}
    return {rb.name: rb for rb in load_step_runbooks(settings.runbooks_path)}


class Scheduler:
    """Claims due scheduled runs on a thread; ``run_once`` is one tick (tests call it directly)."""

    def __init__(
        self,
        store: SqlStore,
        runbooks: Mapping[str, StepRunbook],
        *,
        tick_s: float,
        clock: Callable[[], float],
        worker_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.runbooks = dict(runbooks)
        self.tick_s = tick_s
        self.clock = clock
        self.worker_id = (worker_id or default_worker_id())[:200]
        #: called after a tick started runs (the executor's wake-up, once it has one)
        self.on_started = on_started
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def runbook_names(self) -> list[str]:
        return sorted(self.runbooks)

    def run_once(self, now: float) -> list[ScheduledRun]:
        """Claim what is due at ``now`` (in batches until none is full); the runs this process took."""
        claimed: list[ScheduledRun] = []
        while True:
            with self.store.read() as conn:
                if not schedules.has_due(conn, now):
                    break
            with self.store.write() as conn:
                batch = schedules.claim_due(conn, now, self.worker_id, BATCH, self.runbooks)
            claimed.extend(batch)
            if len(batch) < BATCH:
                break
        for run in claimed:
            if run.run_id is not None:
                logger.info(
                    "schedule %s: started run %s of %s (due %.0f)",
                    run.schedule.name,
                    run.run_id,
                    run.schedule.runbook,
                    run.due_at,
                )
        if self.on_started is not None and any(r.run_id for r in claimed):
            self.on_started()
        return claimed

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop; a claim under way commits or rolls back whole (one transaction)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once(self.clock())
            except Exception:  # a loop boundary: the next tick tries again
                logger.exception("claiming scheduled runs failed; retrying in %.0f s", ERROR_BACKOFF_S)
                self._stopping.wait(max(ERROR_BACKOFF_S, self.tick_s))
                continue
            self._stopping.wait(self.tick_s)
