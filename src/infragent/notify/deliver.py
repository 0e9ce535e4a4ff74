"""The delivery worker: claims due deliveries, sends them concurrently, records every attempt.

``run_due(now)`` claims up to ``notify_batch`` due deliveries (``store/deliveries.claim_due``:
pending and due, or sending with an expired lease) and, in the same transaction, loads each
one's channel with its secrets and the thread references known for its incidents; the claim
commits (status ``sending``, leased to this worker, attempt counted) BEFORE anything is sent.
The sends run on a thread pool of ``notify_workers``; each result is recorded in its own
transaction, and only while this worker still holds that claim (``deliveries.finish`` is fenced
by owner and attempt number): an attempt row, then

* ``delivered``: delivered, with the thread references the channel created;
* ``retry`` (429, 5xx, transport): pending again after ``backoff.jittered_delay(attempts - 1,
  base, cap, rng, Retry-After)`` — unless that passes the delivery's deadline
  (``notify_retry_for_s`` after it was created): dead, "gave up after N attempts over S s: …";
* ``failed`` (other 4xx, refused address, bad configuration): dead at once.

A dead-lettered delivery gets an audit entry ``notify.delivery.dead`` (channel, kind, attempts,
error: adapters never put a secret in an error). Thread references are stored on retries too, so
a retry does not post a second Slack root message.

In-app channels have no adapter: "sending" one writes an inbox row for each member of the tenant
whose role is in the channel's ``roles`` (every role when unset; disabled users get none) and an
audit entry ``notify.inapp`` ``{delivery_id, incident_ids, title}`` that the live stream tails,
all in the transaction that marks it delivered.

Rendering (``notify/render.py``, with the route's template in ``message.template``) happens just
before each send. ``run_due`` returns once the claimed deliveries are handed to the pool; it claims
no more than the pool can start soon (twice its size in flight), so a lease is not spent queuing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import sqlalchemy as sa

from infragent.backoff import jittered_delay
from infragent.config import Settings
from infragent.notify.errors import NotifyNotFoundError
from infragent.notify.failpoints import Failpoints
from infragent.notify.model import Channel, ChannelConfig, ChannelKind, DeliveryResult, Message
from infragent.notify.telemetry import NotifyMetrics
from infragent.store import audit, deliveries, notify_config, users
from infragent.store.base import Database

logger = logging.getLogger(__name__)

ChannelFactory = Callable[[ChannelConfig], Channel]
Renderer = Callable[[Message, ChannelKind, float], Message]
#: The actor of the worker's audit entries.
ACTOR = "notify"
#: Deliveries in flight (sending or queued for the pool) per pool thread.
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery with what sending it needs, loaded in the claim's transaction."""

    row: deliveries.DeliveryRow
    channel: ChannelConfig | None
    threads: dict[str, str]


class DeliveryWorker:
    def __init__(
        self,
        store: Database,
        settings: Settings,
        channel_factory: ChannelFactory,
        renderer: Renderer,
        worker_id: str,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        *,
        failpoints: Failpoints | None = None,
        metrics: NotifyMetrics | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.channel_factory = channel_factory
        self.renderer = renderer
        self.worker_id = worker_id[:64]
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()  # jitter, not crypto
        self.failpoints = failpoints or Failpoints()
        self.metrics = metrics or NotifyMetrics()
        #: called after each recorded result (the notifier's wake: a slot is free again)
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(settings.notify_workers, thread_name_prefix="notify-send")
        self._in_flight = 0
        self._idle = threading.Condition()

    # -- claiming --------------------------------------------------------------------------------

    def capacity(self) -> int:
        """How many more deliveries to claim now: the batch, bounded by the room in the pool."""
        with self._idle:
            room = IN_FLIGHT_PER_WORKER * self.settings.notify_workers - self._in_flight
        return max(0, min(self.settings.notify_batch, room))

    def run_due(self, now: float) -> int:
        """Claim what is due and hand it to the pool; returns how many were claimed."""
        limit = self.capacity()
        if limit == 0:
            return 0
        with self.store.read() as conn:
            if not deliveries.has_due(conn, now):
                return 0
        with self.store.write() as conn:
            rows = deliveries.claim_due(
                conn,
                self.worker_id,
                self.settings.notify_lease_s,
                now,
                limit,
                per_incident_s=self.settings.notify_timeout_s,
            )
            jobs = []
            for row in rows:
                try:
                    channel: ChannelConfig | None = notify_config.get_channel(
                        conn, row.client_id, row.channel_id
                    )
                except NotifyNotFoundError:
                    channel = None
                ids = [i.id for i in row.message.incidents]
                threads = deliveries.load_threads(conn, row.channel_id, ids) if channel is not None else {}
                jobs.append(Job(row, channel, threads))
        with self._idle:
            self._in_flight += len(jobs)
        for job in jobs:
            self._pool.submit(self._run, job)
        return len(jobs)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is in flight; False if something still was after ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for the sends in flight, then stop the pool (a send still going
        is abandoned: its lease expires and another worker, or this server restarted, takes it)."""
        if not self.wait_idle(timeout_s):
            logger.warning("notification sends still in flight at shutdown; their leases will expire")
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- sending ---------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        try:
            started = self.clock()
            t0 = time.monotonic()
            message, result = self._send(job, started)
            self.metrics.send_seconds.observe(time.monotonic() - t0)
            self._record(job, message, result, started, time.monotonic() - t0)
        except Exception:  # the lease covers it: the delivery is taken again once it expires
            logger.exception("recording notification delivery %s failed", job.row.id)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
            if self.on_done is not None:
                self.on_done()

    def _send(self, job: Job, now: float) -> tuple[Message, DeliveryResult]:
        channel = job.channel
        message = replace(job.row.message, threads=dict(job.threads))
        if channel is None:
            return message, DeliveryResult("failed", error="the channel was deleted")
        if not channel.enabled:
            return message, DeliveryResult("failed", error=f"channel {channel.name!r} is disabled")
        self.failpoints.hit("notify.before_send")
        try:
            message = self.renderer(message, channel.kind, now)
        except Exception as exc:  # noqa: BLE001 - the renderer falls back itself; a last guard, by type only
            logger.error(
                "rendering delivery %s failed (%s); sending it unrendered", job.row.id, type(exc).__name__
            )
        if channel.kind == "inapp":
            result = DeliveryResult("delivered")  # the inbox rows are written with the record
        else:
            try:
                result = self.channel_factory(channel).send(message)
            except Exception as exc:  # noqa: BLE001 - told by type only (below), retried
                # an adapter returns values; one that raised has a bug. Its message may quote a
                # secret (a URL), so only the type is told, and the delivery is retried.
                logger.error("channel %s (%s) raised %s", channel.name, channel.kind, type(exc).__name__)
                result = DeliveryResult(
                    "retry", error=f"the {channel.kind} channel failed: {type(exc).__name__}"
                )
        self.failpoints.hit("notify.after_send")
        return message, result

    # -- recording -------------------------------------------------------------------------------

    def _record(
        self, job: Job, message: Message, result: DeliveryResult, started: float, duration_s: float
    ) -> None:
        row = job.row
        now = self.clock()
        status, next_at, error = self._verdict(row, result, now)
        with self.store.write() as conn:
            if not deliveries.finish(
                conn,
                row.id,
                self.worker_id,
                row.attempts,
                status=status,
                now=now,
                next_attempt_at=next_at,
                last_error=error,
                last_status_code=result.status_code,
            ):
                logger.warning("delivery %s: lease lost before its result was recorded", row.id)
                self.metrics.outcomes.labels("lost").inc()
                return
            deliveries.add_attempt(
                conn,
                row.id,
                row.client_id,
                n=row.attempts,
                started_at=started,
                duration_s=duration_s,
                outcome=result.outcome,
                worker=self.worker_id,
                status_code=result.status_code,
                retry_after_s=result.retry_after_s,
                error=result.error,
            )
            if result.threads and job.channel is not None:
                deliveries.save_threads(conn, row.client_id, job.channel.id, result.threads, now)
            if status == "delivered" and job.channel is not None and job.channel.kind == "inapp":
                self._inbox(conn, job.channel, row, message, now)
            if status == "dead":
                detail = {
                    "channel_id": row.channel_id,
                    "channel": job.channel.name if job.channel is not None else None,
                    "kind": row.kind,
                    "attempts": row.attempts,
                    "error": error,
                }
                audit.append(conn, row.client_id, ACTOR, "notify.delivery.dead", row.id, detail, now)
        self.metrics.outcomes.labels(status if status in ("delivered", "dead") else "retry").inc()

    def _verdict(
        self, row: deliveries.DeliveryRow, result: DeliveryResult, now: float
    ) -> tuple[str, float | None, str | None]:
        """(status, next attempt, last error) for the result of attempt ``row.attempts``."""
        if result.outcome == "delivered":
            return "delivered", None, None
        error = result.error or result.outcome
        if result.outcome == "failed":
            return "dead", None, error
        s = self.settings
        delay = jittered_delay(
            row.attempts - 1, s.notify_backoff_base_s, s.notify_backoff_cap_s, self.rng, result.retry_after_s
        )
        if now + delay > row.deadline_at:
            spent = max(0.0, now - row.created_at)
            tries = f"{row.attempts} attempt{'s' if row.attempts != 1 else ''}"
            return "dead", None, f"gave up after {tries} over {spent:.0f} s: {error}"
        return "pending", now + delay, error

    def _inbox(
        self,
        conn: sa.Connection,
        channel: ChannelConfig,
        row: deliveries.DeliveryRow,
        message: Message,
        now: float,
    ) -> None:
        roles = channel.settings.get("roles") or None
        incident_ids = [i.id for i in message.incidents]
        title = message.title or (message.incidents[0].title if message.incidents else message.kind)
        body = message.text or title
        for user, role in users.tenant_users(conn, row.client_id):
            if user.disabled or (roles is not None and role not in roles):
                continue
            deliveries.add_inbox(
                conn,
                row.client_id,
                user.id,
                row.id,
                kind=row.kind,
                title=title,
                body=body,
                now=now,
                incident_id=incident_ids[0] if len(incident_ids) == 1 else None,
            )
        detail = {"delivery_id": row.id, "incident_ids": incident_ids, "title": title[:300]}
        audit.append(conn, row.client_id, ACTOR, "notify.inapp", row.id, detail, now)
