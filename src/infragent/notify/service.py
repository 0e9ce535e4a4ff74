"""``Notifier``: this server process's notification pipeline and delivery worker, on one thread.

Each round: route the waiting changes (``pipeline.route_changes``), flush the due groups
(``flush.flush_due``), fire due escalation steps (``pipeline.escalate``, at most every
``ESCALATE_EVERY_S``), then claim due deliveries for the send pool (``deliver.run_due``). A round
that found a full batch of anything runs again at once; otherwise the thread waits for a wake or
``notify_tick_s``. Several server processes run one each on a shared database: the claims skip
what another holds (``store/outbox.py``), so they share the work and never do a unit twice.

Wakes. A change written in this process (an incident opened here) wakes the thread when its
transaction has committed: ``outbox.enqueue_change`` marks the connection (``conn.info[CHANGED]``);
an engine ``commit`` listener moves the mark, and the pool's ``checkin`` listener — which runs
after the commit reached the database, unlike ``commit`` itself — wakes the thread. So an
incident opened with ``group_wait`` 0 is routed, flushed and sent within milliseconds. A finished
send wakes it too (a pool slot is free). Changes written by another process are found at the next
tick. One notifier per engine (the mark is taken by the first listener).

Failures. A round that raises (the database restarting) is logged and the loop goes on after a
second; a unit of work that fails alone is set aside without stopping the others (``Quarantine``,
``flush.FAILED_FLUSH_RETRY_S``; a delivery's lease). ``stop`` waits for the sends in flight up to a
bound; their leases cover the rest.

Time. ``clock`` stamps every decision (tests pass their own and drive ``run_once(now)`` without the
thread); waiting uses real time, so a frozen test clock cannot stop the thread.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from infragent.config import Settings
from infragent.notify import pipeline
from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps, deps_from_settings
from infragent.notify.deliver import ChannelFactory, DeliveryWorker, Renderer
from infragent.notify.failpoints import Failpoints
from infragent.notify.flush import flush_due
from infragent.notify.model import Channel, ChannelConfig
from infragent.notify.render import render
from infragent.notify.telemetry import NotifyMetrics
from infragent.store import deliveries, outbox
from infragent.store.base import Database

logger = logging.getLogger(__name__)

#: Escalation steps are looked for at most this often (they are minutes apart).
ESCALATE_EVERY_S = 5.0
#: A failed round is retried after this long.
ERROR_BACKOFF_S = 1.0
#: ``conn.info`` key: a change was committed on this connection; wake at check-in.
_COMMITTED = "infragent.notify_committed"


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Notifier:
    def __init__(
        self,
        store: Database,
        settings: Settings,
        *,
        channel_factory: ChannelFactory,
        renderer: Renderer,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        failpoints: Failpoints | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.metrics = NotifyMetrics(registry)
        self.worker = DeliveryWorker(
            store,
            settings,
            channel_factory,
            renderer,
            self.worker_id,
            clock,
            rng,
            failpoints=failpoints,
            metrics=self.metrics,
            on_done=self.wake,
        )
        self.quarantine = pipeline.Quarantine()
        self._on_close = on_close
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_escalation = float("-inf")
        self._listening = False
        self._asleep = threading.Condition()
        self._sleeping = False

    # -- one round -------------------------------------------------------------------------------

    def run_once(self, now: float) -> bool:
        """One round at ``now``; True when a batch was full (more work may be waiting)."""
        batch = self.settings.notify_batch
        routed = pipeline.route_changes(self.store, self.settings, now, batch, quarantine=self.quarantine)
        flushed = flush_due(self.store, self.settings, now, batch)
        if time.monotonic() >= self._next_escalation:
            self._next_escalation = time.monotonic() + ESCALATE_EVERY_S
            try:
                pipeline.escalate(self.store, self.settings, now)
            except Exception:  # deliveries must still go out when escalation cannot be looked at
                logger.exception(
                    "looking for due escalation steps failed; retrying in %.0f s", ESCALATE_EVERY_S
                )
        room = self.worker.capacity()
        claimed = self.worker.run_due(now)
        return routed >= batch or flushed >= batch or (room > 0 and claimed >= room)

    def escalate_now(self, now: float) -> int:
        """Look for due escalation steps at ``now`` regardless of the last look (tests)."""
        return pipeline.escalate(self.store, self.settings, now)

    # -- the thread ------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._listen()
        self.metrics.bind_pending(self._pending)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop, wait up to ``timeout_s`` for sends in flight, release what it holds."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.close(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Release the pool, the listeners and the channel resources (``stop`` calls it; a test
        that drove ``run_once`` without the thread calls it itself)."""
        self.worker.close(timeout_s)
        self._unlisten()
        self.metrics.unbind_pending()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                more = self.run_once(self.clock())
            except Exception:
                logger.exception("notification round failed; retrying in %.0f s", ERROR_BACKOFF_S)
                self._stopping.wait(ERROR_BACKOFF_S)
                continue
            if not more:
                self._sleep(self.settings.notify_tick_s)

    def _sleep(self, timeout_s: float) -> None:
        with self._asleep:
            self._sleeping = True
            self._asleep.notify_all()
        try:
            self._wake.wait(timeout_s)
        finally:
            with self._asleep:
                self._sleeping = False

    def until_asleep(self, timeout_s: float) -> bool:
        """Block until the thread waits for a wake or its tick (it found no work); False if it did
        not within ``timeout_s``. Lets a test know a wake, not a round already under way, is what
        will pick its change up."""
        with self._asleep:
            return self._asleep.wait_for(lambda: self._sleeping, timeout_s)

    def _pending(self) -> int:
        with self.store.read() as conn:
            return deliveries.pending_count(conn)

    # -- wakes from this process's commits -------------------------------------------------------

    def _on_commit(self, conn: sa.Connection) -> None:
        if conn.info.pop(outbox.CHANGED, None):
            conn.info[_COMMITTED] = True

    def _on_rollback(self, conn: sa.Connection) -> None:
        conn.info.pop(outbox.CHANGED, None)
        conn.info.pop(_COMMITTED, None)

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_COMMITTED, None):
            self._wake.set()

    def _listen(self) -> None:
        if not self._listening:
            engine = self.store.engine
            sa.event.listen(engine, "commit", self._on_commit)
            sa.event.listen(engine, "rollback", self._on_rollback)
            sa.event.listen(engine, "checkin", self._on_checkin)
            self._listening = True

    def _unlisten(self) -> None:
        if self._listening:
            engine = self.store.engine
            sa.event.remove(engine, "commit", self._on_commit)
            sa.event.remove(engine, "rollback", self._on_rollback)
            sa.event.remove(engine, "checkin", self._on_checkin)
            self._listening = False


class _Adapters:
    """The channel adapters' shared dependencies (one guarded HTTP client), made at the first send:
    a server built but never started (a test's app without its lifespan) opens no client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._deps: ChannelDeps | None = None
        self._lock = threading.Lock()

    def build(self, config: ChannelConfig) -> Channel:
        with self._lock:
            if self._deps is None:
                self._deps = deps_from_settings(self.settings)
            deps = self._deps
        return build_channel(config, deps)

    def close(self) -> None:
        with self._lock:
            if self._deps is not None:
                self._deps.http.close()
                self._deps = None


def build_notifier(
    settings: Settings,
    store: Database,
    *,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    worker_id: str | None = None,
    rng: random.Random | None = None,
) -> Notifier:
    """The server's notifier: the real channel adapters over one guarded HTTP client (closed with
    the notifier), the real renderer, and the failpoints of ``environ`` (tests only)."""
    adapters = _Adapters(settings)
    return Notifier(
        store,
        settings,
        channel_factory=adapters.build,
        renderer=render,
        clock=clock,
        registry=registry,
        failpoints=Failpoints.from_environ(environ or {}),
        on_close=adapters.close,
        worker_id=worker_id,
        rng=rng,
    )
